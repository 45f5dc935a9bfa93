import argparse
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from captum_gfi import evaluate
from captum_gfi.cli import main

REPO = Path(__file__).resolve().parents[1]
ARGS = ["evaluate", "--dataset", "folder", "--model", "toy", "--image-size", "32",
        "--step", "128", "--no-progress", "--threads", "1"]  # fmt: skip


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    rng = np.random.default_rng(0)
    rows = ["image,label,xmin,ymin,xmax,ymax"]
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(root / f"im{i}.png")
        rows.append(f"im{i}.png,{i % 4},{2 + i},3,30,35")
    rows.append("im1.png,7,0,0,20,20")  # a second label: multi-label target
    (root / "boxes.csv").write_text("\n".join(rows) + "\n")
    return root


def _records(out: Path) -> list[dict]:
    recs = [json.loads(line) for line in (out / "per_image.jsonl").read_text().splitlines()]
    for r in recs:
        r.pop("attr_seconds")
    return recs


def test_single_process_report(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "res"
    protocols = ["--protocols", "wsol,pointing,insertion,deletion"]
    rc = main(ARGS + ["--root", str(folder), "--methods", "saliency,gradcam", *protocols,
                      "--out", str(out)])  # fmt: skip
    assert rc == 0
    recs = _records(out)
    assert len(recs) == 2 * 6  # 2 methods x (5 images + 1 extra label)
    assert {r["item"] for r in recs} == {f"im{i}" for i in range(5)}
    assert all(len(r["wsol_success"]) == 21 and "pointing_hit" in r for r in recs)
    assert all(len(r["insertion_curve"]) == 9 for r in recs)  # ceil(1024 / 128) + 1
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"gradcam", "saliency"}
    s = summary["saliency"]
    assert s["insertion_auc"]["low"] <= s["insertion_auc"]["mean"] <= s["insertion_auc"]["high"]
    assert s["pointing_accuracy"]["n"] == 6
    assert "| saliency |" in (out / "summary.md").read_text()
    header = (out / "per_image.csv").read_text().splitlines()[0]
    assert "wsol_success@10" in header and "deletion_auc" in header
    for png in ("wsol_error_vs_alpha.png", "insertion_curves.png", "deletion_curves.png"):
        assert (out / png).stat().st_size > 0


def test_resume_reuses_records_and_survives_torn_line(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "res"
    base = ARGS + ["--root", str(folder), "--protocols", "pointing,deletion", "--out", str(out)]
    assert main(base + ["--methods", "saliency"]) == 0
    shard = out / "shards" / "rank0.jsonl"
    first = shard.read_text().splitlines()
    # simulate an interruption: drop the last record and leave a torn line behind
    shard.write_text("\n".join(first[:-1]) + "\n" + first[-1][:25])
    assert main(base + ["--methods", "saliency,gradcam"]) == 0
    lines = shard.read_text().splitlines()
    assert lines[: len(first) - 1] == first[:-1]  # earlier records are kept, not recomputed
    recs = _records(out)
    assert len(recs) == 12
    again = [r for r in recs if r["key"] == json.loads(first[-1])["key"]][0]
    want = json.loads(first[-1])
    want.pop("attr_seconds")
    assert again == want  # the lost record was recomputed identically
    (out / "per_image.jsonl").unlink()
    assert main(base + ["--methods", "saliency,gradcam", "--report-only"]) == 0
    assert _records(out) == recs and shard.read_text().splitlines() == lines


def test_adding_a_method_reports_every_method_of_the_folder(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "res"
    base = ARGS + ["--root", str(folder), "--protocols", "pointing", "--out", str(out)]
    assert main(base + ["--methods", "saliency"]) == 0
    assert main(base + ["--methods", "gradcam"]) == 0  # added to the folder
    assert {r["method"] for r in _records(out)} == {"saliency", "gradcam"}
    assert set(json.loads((out / "summary.json").read_text())) == {"saliency", "gradcam"}
    # --report-only with --methods: the methods asked for, alone
    assert main(base + ["--methods", "gradcam", "--report-only"]) == 0
    assert {r["method"] for r in _records(out)} == {"gradcam"}


def test_bad_arguments(folder: Path, tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    evaluate.add_arguments(parser)
    args = parser.parse_args(["--dataset", "folder", "--root", str(folder), "--methods", "lime"])
    with pytest.raises(ValueError, match="--methods"):
        evaluate.run(args)
    assert main(["evaluate", "--dataset", "imagenet", "--root", str(tmp_path / "x")]) == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_torchrun_two_gloo_processes_match_single_process(folder: Path, tmp_path: Path) -> None:
    common = ["--root", str(folder), "--methods", "saliency,gradcam",
              "--protocols", "wsol,pointing,insertion,deletion,grid_pointing",
              "--grid-count", "2"]  # fmt: skip
    single = tmp_path / "single"
    assert main(ARGS + common + ["--out", str(single)]) == 0
    multi = tmp_path / "multi"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
           "-m", "captum_gfi.cli", *ARGS, *common, "--out", str(multi)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in (multi / "shards").iterdir()) == ["rank0.jsonl", "rank1.jsonl"]
    a, b = _records(single), _records(multi)
    assert [r["key"] for r in a] == [r["key"] for r in b]
    assert len(b) > 0 and any(r["kind"] == "grid" for r in b)
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for k in ra:
            if isinstance(ra[k], float) or (isinstance(ra[k], list) and ra[k]
                                              and isinstance(ra[k][0], float)):  # fmt: skip
                np.testing.assert_allclose(rb[k], ra[k], rtol=1e-5, atol=1e-6)
            else:
                assert ra[k] == rb[k], k
    sa = json.loads((single / "summary.json").read_text())
    sb = json.loads((multi / "summary.json").read_text())
    assert sa.keys() == sb.keys()
    for m in sa:
        for k in sa[m]:
            if isinstance(sa[m][k], dict):
                np.testing.assert_allclose(sb[m][k]["mean"], sa[m][k]["mean"], rtol=1e-5)
                assert sb[m][k]["n"] == sa[m][k]["n"]


def test_the_library_runner_needs_no_command_line(folder: Path, tmp_path: Path) -> None:
    # run_datasets with EvaluateOptions and a loader of one's own gives the command's records
    from captum_gfi.demo.toy import toy_convnet
    from captum_gfi.evaluation.run_options import EvaluateOptions, ModelSpec
    from captum_gfi.evaluation.runner import run_datasets

    cli_out, lib_out = tmp_path / "cli", tmp_path / "lib"
    common = ["--root", str(folder), "--methods", "saliency,gradcam", "--protocols", "pointing"]
    assert main(ARGS + common + ["--out", str(cli_out)]) == 0

    def loader(options: EvaluateOptions) -> ModelSpec:
        model = toy_convnet().eval()
        return ModelSpec(model, model.conv2)

    options = EvaluateOptions("folder", root=str(folder), model="toy", image_size=32, step=128,
                              methods="saliency,gradcam", protocols="pointing",
                              out=str(lib_out), no_progress=True, threads=1)  # fmt: skip
    assert run_datasets(options, loader) == 0
    assert _records(lib_out) == _records(cli_out)
    with pytest.raises(ValueError, match="run_benchmark"):
        run_datasets(EvaluateOptions("composites", out=str(tmp_path / "c")), loader)
