"""scripts/comparison_table.py: the opening tables of docs/results.md from run folders, on
hand-made records with known means and differences."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]


def _table() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "comparison_table", REPO / "scripts" / "comparison_table.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(folder: Path, model: str, shares: dict[str, list[float]], split: str = "test") -> Path:
    """A run folder whose cases ``c0..`` (photos ``p0``, ``p1``, ``p0``, ...) have these
    energy shares per method; every other metric is 1 (0 for deletion)."""
    (folder / "shards").mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model": model, "dataset": "composites"}))
    n = len(next(iter(shares.values())))
    lines = []
    for i in range(n):
        item = f"c{i}"
        lines.append({"record": "case", "key": f"{item}|case", "item": item, "index": i,
                      "split": split, "source": {"photo": f"p{i % 2}"}})  # fmt: skip
    for method, values in shares.items():
        for i, v in enumerate(values):
            lines.append({"record": "method", "key": f"c{i}|{method}", "item": f"c{i}",
                          "index": i, "method": method, "split": split, "full": True,
                          "energy_share": v, "pointing_hit": True, "topk_precision": 1.0,
                          "insertion_auc": 1.0, "deletion_auc": 0.0, "seconds": 2.0,
                          "passes_forward": 3, "passes_backward": 2, "iterations": 1})  # fmt: skip
    text = "\n".join(json.dumps(r) for r in lines) + "\n"
    (folder / "shards" / "rank0.jsonl").write_text(text)
    return folder


def test_one_block_per_model_with_labels_order_and_the_paired_differences(tmp_path: Path) -> None:
    table = _table()
    a = _run(tmp_path / "a", "m0", {"x": [0.5, 0.7, 0.6, 0.6], "y": [0.4, 0.5, 0.5, 0.4]})
    b = _run(tmp_path / "b", "m1", {"x": [0.2, 0.2], "y": [0.3, 0.3], "z": [0.9]})
    text = table.tables([a, b], "X", methods=["y", "x", "z"], labels={"x": "X"}, min_cases=2)
    rows = [line for line in text.splitlines() if line.startswith("| m")]
    # the method table: m0's rows, then m1's, in the order asked, renamed; z left out
    assert [r.split(" | ")[:2] for r in rows[:4]] == [
        ["| m0, composites", "y"], ["| m0, composites", "X"],
        ["| m1, composites", "y"], ["| m1, composites", "X"],
    ]  # fmt: skip
    assert rows[0].split(" | ")[2].startswith("0.450 ")  # y's mean energy share on m0
    assert rows[1].split(" | ")[2].startswith("0.600 ")
    assert rows[1].endswith("| 4 | 2 | 2 | 3 / 2 / 1 |")  # n, photos, s / image, passes
    # the paired table: X - y is 0.1 on photo p0's cases and 0.2 on p1's (mean 0.15), so
    # every photo resample is above 0 (bold); on m1 it is -0.1 on both cases
    paired = rows[4:]
    assert paired[0].startswith("| m0, composites | y | 4 | **+0.150 [")
    assert paired[1].startswith("| m1, composites | y | 2 | **-0.100 [-0.100, -0.100]")
    assert "Paired difference `X` − method" in text
    omitted = "Not shown (fewer than 2 cases so far): z (m1, composites: 1 case)."
    assert text.rstrip().endswith(omitted)


def test_the_split_picks_the_cases(tmp_path: Path) -> None:
    table = _table()
    run = _run(tmp_path / "t", "m0", {"x": [0.5, 0.5], "y": [0.25, 0.25]}, split="tune")
    assert "| m0" not in table.tables([run], "x")  # no test cases
    text = table.tables([run], "x", split="tune")
    assert "| m0, composites | y | 2 | **+0.250 [+0.250, +0.250] / [+0.250, +0.250]**" in text
