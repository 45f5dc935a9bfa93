"""``captum-gfi evaluate`` runs the peers, the randomisation test and the paper's FGSM test
on the benchmark's cases (a small net and fake grids, no bundled photos needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from captum_gfi.cli import main
from tests.test_run_faults import GRIDS, _fake_grids, _set


def _records(out: Path) -> list[dict[str, Any]]:
    lines = (out / "shards" / "rank0.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_randomisation_and_fgsm_from_evaluate(
    one_thread: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_grids(monkeypatch, [])
    out = tmp_path / "run"
    args = _set(GRIDS, "--methods", "center,gradcam") + [
        "--sanity-cases", "2", "--fgsm-epsilons", "8,64", "--fgsm-cases", "2",
        "--out", str(out),
    ]  # fmt: skip
    assert main(args) == 0
    recs = _records(out)
    sanity = [r for r in recs if r.get("record") == "sanity"]
    fgsm = [r for r in recs if r.get("record") == "fgsm"]
    # the first 2 cases of the test split (c1, c2 of the fake grids), every method
    assert sorted((r["item"], r["method"]) for r in sanity) == [
        ("c1", "center"), ("c1", "gradcam"), ("c2", "center"), ("c2", "gradcam")]  # fmt: skip
    assert sorted({r["epsilon_255"] for r in fgsm}) == [8, 64]
    assert len(fgsm) == 2 * 2 * 2  # cases x epsilons x methods
    # the map that ignores the model keeps a rank correlation of 1 and fails
    center = [r for r in sanity if r["method"] == "center"]
    assert all(r["spearman_abs"] == [1.0] * len(r["steps"]) and not r["passed"] for r in center)
    summary = (out / "summary.md").read_text()
    assert "Randomisation test" in summary and "Adversarial (FGSM)" in summary
    # resuming computes nothing new
    before = (out / "shards" / "rank0.jsonl").read_text()
    assert main(args) == 0
    assert (out / "shards" / "rank0.jsonl").read_text() == before


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("--fgsm-epsilons", "300", "`--fgsm-epsilons` must be a comma list of grey levels"),
     ("--fgsm-epsilons", "two", "`--fgsm-epsilons` must be a comma list of grey levels"),
     ("--sanity-cases", "-1", "`sanity_cases` and `fgsm_cases` must be >= 0"),
     ("--rise-masks", "0", "`--rise-masks` must be >= 1"),
     ("--pool", "huge", "`--pool` must be one of default, large"),
     ("--num-cases", "0", "`--num-cases` (`--n`) must be >= 1, got 0"),
     ("--curve-cases", "-1", "`--curve-cases` must be >= 0, got -1"),
     ("--thumbnail-cases", "-1", "`--thumbnail-cases` must be >= 0, got -1"),
     ("--max-cases", "0", "`--max-cases` must be >= 1, got 0")],
)  # fmt: skip
def test_bad_check_options_fail_before_the_model_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    option: str, value: str, message: str,
) -> None:  # fmt: skip
    import captum_gfi.evaluate as evaluate

    def no_model(options: Any) -> Any:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(evaluate, "load_model_spec", no_model)
    assert main([*GRIDS, option, value, "--out", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err


def test_peers_from_evaluate_with_their_passes(
    one_thread: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pytorch_grad_cam")
    pytest.importorskip("torchray")
    _fake_grids(monkeypatch, [])
    out = tmp_path / "run"
    args = _set(GRIDS, "--methods", "gradcam++,rise,extremal_perturbation")
    args += ["--rise-masks", "16", "--extremal-iterations", "3", "--out", str(out)]
    assert main(args) == 0
    recs = [r for r in _records(out) if r.get("record") == "method"]
    passes = {r["method"]: (r["passes_forward"], r["passes_backward"], r["iterations"])
              for r in recs}  # fmt: skip
    assert passes == {"gradcam++": (1, 1, 0), "rise": (17, 0, 0),
                      "extremal_perturbation": (12, 12, 3)}  # fmt: skip
    config = json.loads((out / "config.json").read_text())
    assert (config["rise_masks"], config["extremal_iterations"]) == (16, 3)
    # another RISE size on resume is another run: refused, naming the option
    assert main(_set(args, "--rise-masks", "32")) == 2


def test_a_missing_peer_library_is_named_with_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib

    import captum_gfi.evaluate as evaluate

    real_import = importlib.import_module

    def no_torchray(name: str, package: str | None = None) -> Any:
        if name.split(".")[0] == "torchray":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, package)

    def no_model(options: Any) -> Any:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(importlib, "import_module", no_torchray)
    monkeypatch.setattr(evaluate, "load_model_spec", no_model)
    args = _set(GRIDS, "--methods", "gradcam,rise") + ["--out", str(tmp_path / "run")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "method 'rise' comes from torchray==1.0.0.2" in err
    assert 'pip install -e ".[peers]"' in err
    assert not (tmp_path / "run").exists()


def test_max_cases_evaluates_a_prefix_of_the_built_cases(
    one_thread: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    _fake_grids(monkeypatch, [])
    full, part = tmp_path / "full", tmp_path / "part"
    assert main([*GRIDS, "--out", str(full)]) == 0
    part.mkdir()
    shutil.copy(full / "cases.pt", part / "cases.pt")  # reused: not built again
    assert main([*GRIDS, "--max-cases", "2", "--out", str(part)]) == 0
    items = [r["item"] for r in _records(part) if r.get("record") == "method"]
    assert items == ["c0", "c1"]
    same = {r["key"]: r for r in _records(full) if r.get("record") == "method"}
    for r in _records(part):
        if r.get("record") == "method":
            want = {k: v for k, v in same[r["key"]].items() if "seconds" not in k}
            assert {k: v for k, v in r.items() if "seconds" not in k} == want


def test_thumbnail_cases_sets_how_many_test_cases_keep_their_maps_thumbnails(
    one_thread: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_grids(monkeypatch, [])
    out = tmp_path / "run"
    assert main([*GRIDS, "--thumbnail-cases", "1", "--max-cases", "2", "--out", str(out)]) == 0
    test = [r["item"] for r in _records(out) if r.get("record") == "case" and r["split"] == "test"]
    thumbs = {r["item"] for r in _records(out) if "thumb_map" in r}
    assert thumbs == {test[0]}
    # resumed with more (thumbnails change no metric): the new cases get theirs, the cases
    # done keep their records as they are
    before = [r for r in _records(out)]
    assert main([*GRIDS, "--thumbnail-cases", "4", "--out", str(out)]) == 0
    after = _records(out)
    assert after[: len(before)] == before
    test = [r["item"] for r in after if r.get("record") == "case" and r["split"] == "test"]
    new = {r["item"] for r in after[len(before) :] if r.get("record") == "method"}
    thumbs = {r["item"] for r in after if "thumb_map" in r}
    assert new and thumbs == {test[0]} | (new & set(test))
    cases_with_gt = {r["item"] for r in after if "thumb_gt" in r}
    assert cases_with_gt == thumbs
