"""The benchmark pipeline (cases -> records -> report) on synthetic cases and a
tiny net; the real-model command line run is marked slow."""

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor

from captum_gfi.cli import main
from captum_gfi.demo.toy import toy_convnet
from captum_gfi.evaluation import distributed as D
from captum_gfi.evaluation._thumbnails import decode_thumbnail
from captum_gfi.evaluation.benchmark_report import load_records, summarize_benchmark
from captum_gfi.evaluation.benchmark_runner import BenchmarkOptions, plan_cases, run_cases
from captum_gfi.evaluation.methods import resolve_module

S = 32


@dataclass(frozen=True)
class Case:  # the fields of benchmark_data.BenchmarkCase the runner reads
    case_id: str
    kind: str
    split: str
    image: Tensor
    target: int
    mask: Tensor
    box: tuple[int, int, int, int]
    confidence: float
    source: dict[str, Any] = field(default_factory=dict)


def _cases(n: int = 7) -> list[Case]:
    out = []
    for i in range(n):
        g = torch.Generator().manual_seed(i)
        image = torch.rand(3, S, S, generator=g) * 0.2
        x0, y0, w, h = 3 + (5 * i) % 12, 2 + (3 * i) % 14, 14, 12
        image[:, y0 : y0 + h, x0 : x0 + w] = torch.rand(3, h, w, generator=g)
        mask = torch.zeros(S, S, dtype=torch.bool)
        mask[y0 : y0 + h, x0 : x0 + w] = True
        split = "tune" if i % 3 == 0 else "test"
        out.append(Case(f"c{i}", "grid2" if i % 2 else "grid3", split, image, i % 10, mask,
                        (x0, y0, x0 + w, y0 + h), 0.5,
                        {"foreground": f"photo{i}", "photo": f"photo{i % 2}"}))  # fmt: skip
    return out


OPTIONS = BenchmarkOptions(batch_size=3, curve_steps=50, robust_cases=2, gallery_cases=2)


def _run(
    out: Path, methods: list[str], info: D.DistInfo | None = None, options: Any = OPTIONS
) -> int:
    net = toy_convnet()
    return run_cases(_cases(), methods, net, resolve_module(net, "conv2"), None, out, options,
                     model_name="toy", info=info)  # fmt: skip


def test_curves_on_the_first_cases_only(one_thread: None, tmp_path: Path) -> None:
    options = dataclasses.replace(OPTIONS, curve_cases=2, robust_cases=0)
    _run(tmp_path, ["center"], options=options)
    _, records = load_records(tmp_path)
    test_ids = [c.case_id for c in _cases() if c.split == "test"]
    by_item = {r["item"]: r for r in records}
    assert [i for i in test_ids if "insertion_auc" in by_item[i]] == test_ids[:2]
    # the map metrics are on every case
    assert all("energy_share" in by_item[i] and "topk_precision" in by_item[i] for i in test_ids)
    with pytest.raises(ValueError, match="curve_cases"):
        dataclasses.replace(OPTIONS, curve_cases=-1)


def _strip(recs: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if "seconds" not in k} for r in recs]


def test_plan_cases_splits() -> None:
    cases = _cases()
    run, full, rank = plan_cases(cases, "test")
    assert len(run) == 7 and full == {c.case_id for c in cases if c.split == "test"}
    assert rank == {"c1": 0, "c2": 1, "c4": 2, "c5": 3}
    run, full, _ = plan_cases(cases, "tune")
    assert [c.case_id for c in run] == ["c0", "c3", "c6"] and full == {"c0", "c3", "c6"}
    assert plan_cases(cases, "all")[1] == {c.case_id for c in cases}
    run, full, rank = plan_cases(cases, "test-only")  # no tune maps for expensive methods
    assert [c.case_id for c in run] == ["c1", "c2", "c4", "c5"]
    assert full == {"c1", "c2", "c4", "c5"} and rank == {"c1": 0, "c2": 1, "c4": 2, "c5": 3}
    with pytest.raises(ValueError, match="split"):
        plan_cases(cases, "val")


def test_test_only_computes_no_tune_maps(one_thread: None, tmp_path: Path) -> None:
    options = dataclasses.replace(OPTIONS, split="test-only", robust_cases=0)
    assert _run(tmp_path, ["center"], options=options) == 2 * 4  # 4 test cases, no tune
    cases, records = load_records(tmp_path)
    assert [c["item"] for c in cases] == ["c1", "c2", "c4", "c5"]
    assert all(r["split"] == "test" and r["full"] for r in records)
    summary = summarize_benchmark(records)
    assert summary["split"] == "test" and summary["metrics"]["center"]["energy_share"]["n"] == 4
    assert summary["wsol_alpha"]["center"]["tuned_on_split"] is False  # chosen on test


def test_pipeline_records_resume_and_report_only(one_thread: None, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert _run(out, ["gradcam", "center"]) == 7 + 2 * 7  # case records + method records
    cases, recs = load_records(out)
    assert [c["item"] for c in cases] == [f"c{i}" for i in range(7)]
    by = {(r["item"], r["method"]): r for r in recs}
    test_ids = ["c1", "c2", "c4", "c5"]
    for r in recs:
        assert len(r["wsol_success"]) == 21 and 0 <= r["energy_share"] <= 1
        assert r["seconds"] >= 0 and r["full"] == (r["item"] in test_ids)
        assert ("insertion_auc" in r) == r["full"]  # tune cases only choose alpha
        assert ("sensitivity" in r) == (r["item"] in test_ids[:2])  # first 2 test cases
        assert ("thumb_map" in r) == (r["item"] in test_ids[:2])
    assert by[("c1", "center")]["sensitivity"] == 0.0  # the same map for any input
    thumbs = [c for c in cases if "thumb_input" in c]
    assert [c["item"] for c in thumbs] == test_ids[:2]
    assert decode_thumbnail(thumbs[0]["thumb_input"]).shape == (64, 64, 3)
    assert decode_thumbnail(thumbs[0]["thumb_gt"]).shape == (64, 64)
    assert cases[1]["gt_area"] == 14 * 12 and cases[1]["source"] == {
        "foreground": "photo1", "photo": "photo1"}  # fmt: skip

    # resume: lose a record and tear the last line; only the missing record comes back
    shard = out / "shards" / "rank0.jsonl"
    lines = shard.read_text().splitlines()
    lost = json.loads(lines[-1])
    shard.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:30])
    assert _run(out, ["gradcam", "center"]) == 1
    again = {r["key"]: r for r in load_records(out)[1]}[lost["key"]]
    assert _strip([again]) == _strip([lost])
    assert _run(out, ["gradcam", "center", "saliency"]) == 7  # a new method: only its records

    # --report-only: the report from the shards alone (no model, no cases)
    args = ["evaluate", "--dataset", "composites", "--report-only", "--out", str(out),
            "--methods", "gradcam,center,saliency"]  # fmt: skip
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["split"] == "test" and summary["n_cases"] == 4
    assert summary["methods"] == ["gradcam", "center", "saliency"]
    assert summary["metrics"]["center"]["pointing_hit"]["n"] == 4
    assert summary["metrics"]["center"]["sensitivity"]["n"] == 2
    assert all(a["tuned_on_split"] for a in summary["wsol_alpha"].values())
    p = summary["paired"]["center"]["energy_share"]
    mean = summary["metrics"]
    assert p["diff"] == pytest.approx(
        mean["center"]["energy_share"]["mean"] - mean["gradcam"]["energy_share"]["mean"]
    )
    assert p["low"] <= p["diff"] <= p["high"] and p["better"] in ("yes", "no", "n.s.")
    assert "gradcam" not in summary["paired"]
    for name in ("summary.md", "summary.csv", "paired.csv", "per_case.csv", "records.jsonl",
                 "metrics.png", "gallery.png"):  # fmt: skip
        assert (out / name).stat().st_size > 0
    md = (out / "summary.md").read_text()
    assert "| center |" in md and "Difference to `gradcam`" in md
    assert sorted(summary["by_kind"]) == ["grid2", "grid3"]  # c1, c5 | c2, c4
    assert summary["by_kind"]["grid2"]["n_cases"] == 2 and "kind `grid3`" in md

    # the report is a function of the records: the same summary without the figures' cost
    again = summarize_benchmark(load_records(out)[1], ["gradcam", "center", "saliency"])
    assert json.loads(json.dumps(again["metrics"])) == summary["metrics"]


def test_two_ranks_shard_batches_like_one_process(one_thread: None, tmp_path: Path) -> None:
    single, multi = tmp_path / "single", tmp_path / "multi"
    _run(single, ["gradcam", "center"])
    for rank in (0, 1):
        _run(multi, ["gradcam", "center"], D.DistInfo(rank=rank, world_size=2))
    assert sorted(p.name for p in (multi / "shards").iterdir()) == ["rank0.jsonl", "rank1.jsonl"]
    a, b = load_records(single), load_records(multi)
    assert _strip(a[0]) == _strip(b[0])
    for ra, rb in zip(a[1], b[1], strict=True):
        assert ra.keys() == rb.keys()
        for k in ra:
            if isinstance(ra[k], float) and "seconds" not in k:
                np.testing.assert_allclose(rb[k], ra[k], rtol=1e-5, atol=1e-7)
            elif "seconds" not in k:
                assert ra[k] == rb[k], k


@dataclass
class Stats:
    kept: int
    tried: int


def test_evaluate_command_line_end_to_end_with_a_tiny_net(
    one_thread: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import captum_gfi.evaluation.benchmark_data as data

    calls: list[tuple] = []

    def fake_build_cases(
        kind: str,
        model: Any,
        n: int,
        seed: int = 0,
        min_confidence: float = 0.3,
        max_per_photo: int | None = None,
        max_tries: int | None = None,
        progress: Any = None,
        pool: str = "default",
    ) -> tuple[list[Case], Stats]:
        assert pool == "default"
        calls.append((kind, model.input_size, n, seed, min_confidence, max_tries))
        return _cases(n), Stats(kept=n, tried=n + 2)

    monkeypatch.setattr(data, "build_cases", fake_build_cases)
    out = tmp_path / "cli"
    args = ["evaluate", "--dataset", "grids", "--model", "toy", "--image-size", str(S),
            "--n", "5", "--seed", "3", "--methods", "gradcam,center", "--batch-size", "2",
            "--curve-steps", "50", "--max-sensitivity-cases", "1", "--no-progress",
            "--threads", "1", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    assert calls == [("grids", S, 5, 3, 0.3, None)]
    config = json.loads((out / "config.json").read_text())
    assert config["methods"] == ["gradcam", "center"] and config["input_size"] == S
    assert json.loads((out / "build_stats.json").read_text()) == {"kept": 5, "tried": 7}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["methods"] == ["gradcam", "center"] and summary["n_cases"] == 3  # c1 c2 c4
    assert summary["metrics"]["center"]["sensitivity"]["n"] == 1
    # paired differences also get a CI resampling the photos (c1: photo1; c2, c4: photo0)
    assert summary["paired"]["center"]["energy_share"]["groups"] == 2
    assert "resamples the foreground photos (2 photo(s))" in (out / "summary.md").read_text()
    assert "photo" in (out / "per_case.csv").read_text().splitlines()[0].split(",")
    assert "kept=5" in (out / "summary.md").read_text()
    # adding a method reuses the saved cases (building is not repeated)
    args[args.index("--methods") + 1] = "saliency"
    assert main(args) == 0
    assert len(calls) == 1
    assert json.loads((out / "config.json").read_text())["methods"] == [
        "gradcam", "center", "saliency"]  # fmt: skip
    assert json.loads((out / "build_stats.json").read_text()) == {"kept": 5, "tried": 7}
    # the report covers every method of the folder, not only the one just added
    assert json.loads((out / "summary.json").read_text())["methods"] == [
        "gradcam", "center", "saliency"]  # fmt: skip
    assert "| gradcam |" in (out / "summary.md").read_text()


def test_resuming_into_another_runs_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"dataset": "grids", "model": "x", "n": 5}))
    args = ["evaluate", "--dataset", "composites", "--model", "efficientnet-lite0",
            "--n", "2", "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(args) == 2  # a clear error, not a mixed run


def test_num_cases_is_the_torchrun_safe_spelling_of_n() -> None:
    from torch.distributed.run import get_args_parser

    from captum_gfi.cli import build_parser

    parser = build_parser()
    base = ["evaluate", "--dataset", "composites", "--out", "x"]
    assert parser.parse_args([*base, "--num-cases", "7"]).n == 7
    assert parser.parse_args([*base, "--n", "7"]).n == 7
    assert parser.parse_args(base).n is None  # the default, 200 (12 with --quick), when resolved
    from captum_gfi.evaluation.run_options import EvaluateOptions

    assert EvaluateOptions.from_namespace(parser.parse_args(base)).resolved().n == 200
    # torchrun parses its own options first: `--n` is an ambiguous prefix there, and it
    # leaves `--num-cases` to the script
    launcher = ["--nproc_per_node", "2", "-m", "captum_gfi.cli", *base, "--num-cases", "7"]
    assert get_args_parser().parse_args(launcher).training_script_args[-2:] == ["--num-cases", "7"]
    with pytest.raises(SystemExit):
        get_args_parser().parse_args([*launcher[:-2], "--n", "7"])


def test_num_cases_below_one_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["evaluate", "--dataset", "composites", "--model", "toy", "--num-cases", "0",
            "--out", str(tmp_path / "run"), "--no-progress"]  # fmt: skip
    assert main(args) == 2
    assert "`--num-cases` (`--n`) must be >= 1, got 0" in capsys.readouterr().err


@pytest.mark.slow
def test_command_line_on_lite0_composites(tmp_path: Path) -> None:
    pytest.importorskip("captum_gfi.evaluation.benchmark_data")
    out = tmp_path / "lite0"
    args = ["evaluate", "--dataset", "composites", "--model", "efficientnet-lite0", "--n", "6",
            "--methods", "gradcam,center", "--split", "all", "--curve-steps", "50",
            "--max-sensitivity-cases", "1", "--threads", "1", "--no-progress",
            "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["model"] == "efficientnet-lite0"
    assert summary["metrics"]["gradcam"]["insertion_auc"]["n"] >= 1
    assert (out / "gallery.png").stat().st_size > 0


def test_cached_cases_are_reused_only_for_the_same_data_config(tmp_path: Path) -> None:
    from captum_gfi.evaluation.benchmark_runner import CASES_FILE, _cached_cases

    built: list[int] = []

    def build(n: int) -> Any:
        def make() -> tuple[list[Case], Stats]:
            built.append(n)
            return _cases(n), Stats(kept=n, tried=n)

        return make

    with pytest.raises(RuntimeError, match="missing"):
        _cached_cases(tmp_path, {"n": 3}, None)  # another rank: the main one builds first
    cases, stats = _cached_cases(tmp_path, {"n": 3}, build(3))
    assert (tmp_path / CASES_FILE).is_file() and built == [3] and stats.kept == 3
    again, _ = _cached_cases(tmp_path, {"n": 3}, build(3))
    assert built == [3] and [c.case_id for c in again] == [c.case_id for c in cases]
    assert torch.equal(again[1].image, cases[1].image)
    other, _ = _cached_cases(tmp_path, {"n": 4}, build(4))  # another config: rebuilt
    assert built == [3, 4] and len(other) == 4
    with pytest.raises(RuntimeError, match="another config"):
        _cached_cases(tmp_path, {"n": 3}, None)


def test_records_carry_the_passes_per_image(one_thread: None, tmp_path: Path) -> None:
    # forward, backward and iterations per image, from methods.method_passes
    options = dataclasses.replace(OPTIONS, robust_cases=0, curve_cases=0)
    _run(tmp_path, ["gradcam", "occlusion", "center", "ig"], options=options)
    _, recs = load_records(tmp_path)
    side = max(2, round(32 / 7))  # occlusion's window at 32 px: 5, stride 2 -> 14 x 14
    want = {"gradcam": (1, 1, 0), "occlusion": (1 + 14 * 14, 0, 0), "center": (0, 0, 0),
            "ig": (32, 32, 0)}  # fmt: skip
    assert side == 5
    for r in recs:
        assert (r["passes_forward"], r["passes_backward"], r["iterations"]) == want[r["method"]]


def test_method_passes_of_gfi_and_the_peers() -> None:
    from captum_gfi.evaluation.methods import method_passes

    # refined: the Grad-CAM start (1) + 10 steps of two images = 21 backward, + the clean pass
    assert method_passes("gfi:refined", (224, 224)) == (22, 21, 10)
    assert method_passes("gfi", (224, 224)) == (151, 150, 80)  # 1 + 10 + 2 x 70
    assert method_passes("occlusion", (224, 224)) == (170, 0, 0)  # 13 x 13 windows + 1
    assert method_passes("scorecam", (224, 224), channels=320) == (321, 0, 0)
    assert method_passes("rise", (224, 224), peer_options={"num_masks": 500}) == (501, 0, 0)
    it = method_passes("extremal_perturbation", (224, 224), peer_options={"max_iter": 100})
    assert it == (400, 400, 100)  # 4 areas per iteration
    with pytest.raises(ValueError, match="lime"):
        method_passes("lime", (224, 224))
    with pytest.raises(ValueError, match="extremal_iterations"):
        BenchmarkOptions(extremal_iterations=0)
