"""``captum-gfi evaluate`` under faults: a run's identity (resuming with other options),
a second writer, unreadable images, corrupt records and caches, bad options; and what
must keep working (a killed run resumes to the records of an uninterrupted one)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from captum_gfi import evaluate
from captum_gfi.cli import main
from captum_gfi.evaluation.run_options import EvaluateOptions

REPO = Path(__file__).resolve().parents[1]
ARGS = ["evaluate", "--dataset", "folder", "--model", "toy", "--image-size", "32",
        "--step", "256", "--no-progress", "--threads", "1", "--methods", "saliency",
        "--protocols", "pointing,deletion"]  # fmt: skip


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    rng = np.random.default_rng(0)
    rows = ["image,label,xmin,ymin,xmax,ymax"]
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(root / f"im{i}.png")
        rows.append(f"im{i}.png,{i % 3},{2 + i},3,30,35")
    (root / "boxes.csv").write_text("\n".join(rows) + "\n")
    return root


def _records(out: Path) -> list[dict[str, Any]]:
    recs = [json.loads(line) for line in (out / "per_image.jsonl").read_text().splitlines()]
    for r in recs:
        r.pop("attr_seconds")
    return recs


def _run(folder: Path, out: Path, *extra: str) -> int:
    return main([*ARGS, "--root", str(folder), "--out", str(out), *extra])


# --------------------------------------------------------------------------- run identity


@pytest.mark.parametrize(
    ("option", "first", "second"),
    [
        ("--substrate", "blur", "zero"),
        ("--model", "toy", "captum_gfi.demo.toy:toy_convnet"),
        ("--image-size", "32", "48"),
        ("--tolerance", "15", "0"),
    ],
)
def test_resuming_with_another_option_is_refused_naming_it(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, first: str,
    second: str,
) -> None:  # fmt: skip
    out = tmp_path / "res"
    assert _run(folder, out, option, first) == 0
    before = (out / "shards" / "rank0.jsonl").read_bytes()
    capsys.readouterr()
    assert _run(folder, out, option, second) == 2
    err = capsys.readouterr().err
    assert f"{option} was" in err and "use another --out" in err and len(err.splitlines()) == 1
    assert (out / "shards" / "rank0.jsonl").read_bytes() == before  # nothing pooled
    assert _run(folder, out, option, first, "--methods", "saliency,gradcam") == 0  # same: fine
    assert {r["method"] for r in _records(out)} == {"saliency", "gradcam"}


def _fake_grids(monkeypatch: pytest.MonkeyPatch, calls: list[int]) -> None:
    """build_cases for grids at the model's input size, without the bundled photos."""
    import captum_gfi.evaluation.benchmark_data as data
    from tests.test_evaluation_benchmark import Stats, _cases

    def build(kind: str, model: Any, n: int, **kw: Any) -> Any:
        calls.append(model.input_size)
        size = model.input_size
        cases = []
        for c in _cases(n):
            image = torch.nn.functional.interpolate(c.image[None], size=(size, size))[0]
            mask = torch.nn.functional.interpolate(c.mask[None, None].float(), size=(size, size))
            cases.append(type(c)(c.case_id, c.kind, c.split, image, c.target,
                                 mask[0, 0].bool(), c.box, c.confidence, c.source))  # fmt: skip
        if kw.get("progress") is not None:
            kw["progress"](n, n)
        return cases, Stats(kept=n, tried=n)

    monkeypatch.setattr(data, "build_cases", build)


GRIDS = ["evaluate", "--dataset", "grids", "--model", "toy", "--image-size", "32", "--n", "4",
         "--methods", "center", "--batch-size", "2", "--curve-steps", "10",
         "--max-sensitivity-cases", "1", "--no-progress", "--threads", "1"]  # fmt: skip


def _set(args: list[str], option: str, value: str) -> list[str]:
    args = list(args)
    args[args.index(option) + 1] = value
    return args


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--image-size", "48"),
        ("--max-sensitivity-cases", "3"),
        ("--curve-steps", "20"),
        ("--split", "all"),
    ],  # fmt: skip
)
def test_benchmark_resume_with_another_option_is_refused_naming_it(
    one_thread: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], option: str, value: str,
) -> None:  # fmt: skip
    calls: list[int] = []
    _fake_grids(monkeypatch, calls)
    out = ["--out", str(tmp_path / "run")]
    assert main(GRIDS + out) == 0
    capsys.readouterr()
    args = _set(GRIDS, option, value) if option in GRIDS else [*GRIDS, option, value]
    assert main(args + out) == 2
    assert f"{option} was" in capsys.readouterr().err
    assert calls == [32]  # refused before any case was built


def test_cases_rebuilt_at_another_size_do_not_reuse_old_records(
    one_thread: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    calls: list[int] = []
    _fake_grids(monkeypatch, calls)
    run = tmp_path / "run"
    assert main(GRIDS + ["--out", str(run)]) == 0
    # a folder of a version that stored no input size, its cases.pt deleted
    config = json.loads((run / "config.json").read_text())
    del config["input_size"]
    (run / "config.json").write_text(json.dumps(config))
    (run / "cases.pt").unlink()
    capsys.readouterr()
    assert main(_set(GRIDS, "--image-size", "48") + ["--out", str(run)]) == 2
    assert "computed on another case (size [32, 32]" in capsys.readouterr().err
    assert calls == [32, 48]
    assert main(GRIDS + ["--out", str(run)]) == 0  # at the old size it resumes


def test_truncated_cases_file_is_rebuilt_with_a_warning(
    one_thread: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    calls: list[int] = []
    _fake_grids(monkeypatch, calls)
    run = tmp_path / "run"
    assert main(GRIDS + ["--out", str(run)]) == 0
    records = (run / "records.jsonl").read_text()
    data = (run / "cases.pt").read_bytes()
    (run / "cases.pt").write_bytes(data[: len(data) // 2])
    capsys.readouterr()
    assert main(GRIDS + ["--out", str(run)]) == 0
    err = capsys.readouterr().err
    assert "cases.pt is unreadable" in err and "rebuilt" in err
    assert calls == [32, 32]
    assert (run / "records.jsonl").read_text() == records  # nothing recomputed


# --------------------------------------------------------------------------- one writer


def _hold_lock(out: Path) -> subprocess.Popen[str]:
    code = ("import sys, time\nfrom captum_gfi.evaluation.records import RunLock\n"
            "RunLock(sys.argv[1]).acquire()\nprint('locked', flush=True)\n"
            "time.sleep(120)\n")  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_second_writer_is_refused_and_a_killed_holder_does_not_block(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "res"
    holder = _hold_lock(out)
    try:
        assert _run(folder, out) == 2
        err = capsys.readouterr().err
        assert f"in use by another evaluate process (pid {holder.pid})" in err
        assert not (out / "shards").exists()
    finally:
        holder.send_signal(signal.SIGKILL)  # kill -9: the OS drops its lock
        holder.wait()
    assert (out / ".lock").exists()
    assert _run(folder, out) == 0


# --------------------------------------------------------------------------- bad images


def test_unreadable_images_are_skipped_with_a_warning_and_counted(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (folder / "im1.png").write_bytes(b"not an image at all")
    good = (folder / "im2.png").read_bytes()
    (folder / "im2.png").write_bytes(good[: len(good) // 2])  # header fine, data truncated
    out = tmp_path / "res"
    for _ in range(2):  # and again on resume
        assert _run(folder, out) == 0
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if "warning: skipped" in line]
        assert len(lines) == 2 and all(line.startswith("captum-gfi evaluate: warning: skipped")
                                       for line in lines)  # fmt: skip
        assert "im1" in lines[0] and "im2" in lines[1]
        summary = (out / "summary.md").read_text()
        assert "Evaluated 2 item(s)" in summary
        assert "Skipped 2 unreadable image(s): im1, im2" in summary
        assert set(json.loads((out / "skipped.json").read_text())) == {"im1", "im2"}
    (folder / "im2.png").write_bytes(good)  # repaired: evaluated, no longer counted
    assert _run(folder, out) == 0
    assert "Skipped 1 unreadable image(s): im1 " in (out / "summary.md").read_text()
    assert {r["item"] for r in _records(out)} == {"im0", "im2", "im3"}


def test_decompression_bomb_is_skipped_with_a_one_line_reason(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2500)  # the others have 48 x 40 pixels
    Image.new("RGB", (80, 80)).save(folder / "im3.png")  # 6400 > 2 x 2500: PIL's error
    Image.new("RGB", (50, 60)).save(folder / "im0.png")  # 3000 > 2500: PIL's warning
    assert _run(folder, tmp_path / "res") == 0
    err = capsys.readouterr().err
    assert err.count("decompression-bomb limit of 2500 pixels") == 2
    summary = (tmp_path / "res" / "summary.md").read_text()
    assert "Skipped 2 unreadable image(s): im0, im3" in summary


# --------------------------------------------------------------------------- corrupt records


def test_corrupt_shard_lines_are_skipped_and_recomputed(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "res"
    assert _run(folder, out) == 0
    want = _records(out)
    shard = out / "shards" / "rank0.jsonl"
    lines = shard.read_bytes().splitlines(keepends=True)
    bad = [b"\xff\xfe not utf-8 \x80\n", b'{"no": "key"}\n', b"[1, 2, 3]\n", b"plain text\n"]
    # a lost record, four lines that are not records, and a NUL-filled tail
    shard.write_bytes(lines[0] + b"".join(bad) + b"".join(lines[2:]) + b"\x00" * 40)
    capsys.readouterr()
    assert _run(folder, out) == 0
    err = capsys.readouterr().err
    assert "skipped 5 line(s) that are not records" in err
    assert _records(out) == want
    assert all(json.loads(line)["key"] for line in shard.read_text().splitlines())  # dropped
    assert _run(folder, out) == 0
    assert "skipped" not in capsys.readouterr().err  # and not reported again


def test_killed_run_resumes_to_the_records_of_an_uninterrupted_one(
    folder: Path, tmp_path: Path
) -> None:
    whole = tmp_path / "whole"
    assert _run(folder, whole, "--methods", "saliency,gradcam") == 0
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "captum_gfi.cli", *ARGS, "--root", str(folder), "--out",
           str(out), "--methods", "saliency,gradcam"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shard = out / "shards" / "rank0.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if shard.is_file() and shard.read_bytes().count(b"\n") >= 2:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL  # killed, not finished
    assert _run(folder, out, "--methods", "saliency,gradcam") == 0
    a, b = _records(whole), _records(out)
    assert [r["key"] for r in a] == [r["key"] for r in b]
    for ra, rb in zip(a, b, strict=True):
        assert ra.keys() == rb.keys()
        for k in ra:  # the same computation in another process: equal up to float noise
            if isinstance(ra[k], float) or (isinstance(ra[k], list) and ra[k]
                                              and isinstance(ra[k][0], float)):  # fmt: skip
                np.testing.assert_allclose(rb[k], ra[k], rtol=1e-5, atol=1e-6)
            else:
                assert ra[k] == rb[k], k


# --------------------------------------------------------------------------- bad options


def test_out_under_a_regular_file_is_a_one_line_error(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("x")
    assert _run(folder, tmp_path / "file" / "res") == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"captum-gfi evaluate: error: `--out` {tmp_path / 'file' / 'res'} "
                           f"lies under {tmp_path / 'file'}, which is a file, not a folder; "
                           "choose another")  # fmt: skip
    assert _run(folder, tmp_path / "file") == 2
    assert "is a file, not a folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("--max-images", "-1", "`--max-images` must be >= 1, got -1"),
     ("--max-images", "0", "`--max-images` must be >= 1, got 0"),
     ("--step", "0", "`--step` must be >= 1"),
     ("--tune-fraction", "1.5", "`--tune-fraction` must be in [0, 1)"),
     ("--min-confidence", "2", "`--min-confidence` must be in [0, 1]")],
)  # fmt: skip
def test_bad_options_fail_before_anything_is_loaded(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], option: str, value: str, message: str,
) -> None:  # fmt: skip
    def no_model(args: Any) -> Any:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(evaluate, "load_model_spec", no_model)
    assert _run(folder, tmp_path / "res", option, value) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "res").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--out", "figure.xyz"], "'xyz' is not a figure format"),
     (["--dpi", "0"], "--dpi must be a positive int, got 0")],
)  # fmt: skip
def test_explain_output_options_fail_before_any_computation(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], extra: list[str],
    message: str,
) -> None:  # fmt: skip
    import captum_gfi.demo.models as models

    def no_model(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(models, "load_model", no_model)
    assert main(["explain", "sample:cat", *extra]) == 2
    assert message in capsys.readouterr().err


# --------------------------------------------------------------------------- quick mode


def test_quick_mode_sets_the_defaults_the_user_did_not_give() -> None:
    from captum_gfi.cli import build_parser

    parser = build_parser()

    def resolved(argv: list[str]) -> EvaluateOptions:
        return EvaluateOptions.from_namespace(parser.parse_args(argv)).resolved()

    base = ["evaluate", "--dataset", "composites", "--quick"]
    opts = resolved(base)
    assert (opts.n, opts.max_sensitivity_cases, opts.curve_steps) == (12, 0, 20)
    # typed values win, even when they equal the plain defaults
    opts = resolved([*base, "--num-cases", "200", "--curve-steps", "50"])
    assert (opts.n, opts.max_sensitivity_cases, opts.curve_steps) == (200, 0, 50)
    opts = resolved(["evaluate", "--dataset", "photos", "--quick", "--step", "224"])
    assert (opts.max_images, opts.step) == (16, 224)
    opts = resolved(["evaluate", "--dataset", "photos"])
    assert (opts.max_images, opts.step, opts.n, opts.image_size) == (None, 224, 200, 224)
    # the library's options are the command's: the same defaults without argparse
    assert EvaluateOptions("photos").resolved() == opts


def test_progress_bars_with_eta_while_building_and_running(
    one_thread: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    _fake_grids(monkeypatch, [])
    args = [a for a in GRIDS if a != "--no-progress"]
    assert main(args + ["--methods", "center,saliency", "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert "building cases: 100%" in err and "4/4" in err
    assert "methods[rank 0]: 100%" in err and "8/8" in err  # 4 cases x 2 methods
    assert main(args + ["--methods", "center,saliency", "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err  # resumed: the cases are reused, every map is done
    assert "building cases" not in err and "8/8" in err


def test_a_run_that_failed_to_start_does_not_pin_its_options(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "res"
    assert main([*ARGS, "--root", str(tmp_path / "typo"), "--out", str(out)]) == 2
    assert not (out / "config.json").exists()
    assert _run(folder, out) == 0  # the corrected --root is not refused
    assert json.loads((out / "config.json").read_text())["root"] == str(folder.resolve())


def test_a_data_set_of_unreadable_images_is_a_one_line_error(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for i in range(4):
        (folder / f"im{i}.png").write_bytes(b"broken")
    assert _run(folder, tmp_path / "res") == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == ("captum-gfi evaluate: error: every image was skipped as unreadable "
                       "(4: im0, im1, im2, ...)")  # fmt: skip
