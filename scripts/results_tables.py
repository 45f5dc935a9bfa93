"""Compact Markdown tables of benchmark runs for docs/results.md, from their ``summary.json``.

One table per run folder: a row per method with the mean and the number of test cases
behind it for energy share, pointing, top-k precision, WSOL box accuracy, insertion and
deletion AUC, max-sensitivity and CPU seconds per image (the full tables with intervals
are each folder's ``summary.md``):

    python scripts/results_tables.py docs/benchmark/*/composites

``--time seconds`` shows the wall seconds per image (synchronised; what a GPU run should
report) in place of the CPU seconds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

COLUMNS: dict[str, str] = {
    "energy_share": "Energy in GT ↑",
    "pointing_hit": "Pointing ↑",
    "topk_precision": "Top-k ↑",
    "wsol": "WSOL ↑",
    "insertion_auc": "Insertion ↑",
    "deletion_auc": "Deletion ↓",
    "sensitivity": "Max-sens. ↓",
    "cpu_seconds": "CPU s / image ↓",
}


TIME_COLUMNS: dict[str, str] = {"cpu_seconds": "CPU s / image ↓", "seconds": "s / image ↓"}


def table(folder: Path, time: str = "cpu_seconds") -> str:
    """The Markdown table of one run folder (``time``: ``"cpu_seconds"`` or ``"seconds"``)."""
    summary = json.loads((folder / "summary.json").read_text())
    metrics = summary["metrics"]
    columns = {k: v for k, v in COLUMNS.items() if k != "cpu_seconds"} | {time: TIME_COLUMNS[time]}
    lines = ["| Method | " + " | ".join(columns.values()) + " |", "|---" * (len(columns) + 1) + "|"]
    for method in summary["methods"]:
        cells = []
        for key in columns:
            value = metrics[method].get(key)
            if value is None:
                cells.append("–")
                continue
            mean = value["mean"]
            text = f"{mean:.3g}" if key in TIME_COLUMNS else f"{mean:.3f}"
            cells.append(f"{text} ({value['n']})")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--time", choices=sorted(TIME_COLUMNS), default="cpu_seconds")
    args = parser.parse_args()
    for folder in args.folders:
        config = json.loads((folder / "summary.json").read_text()).get("config", {})
        print(f"{config.get('model', folder.parent.name)}, {config.get('dataset', folder.name)} "
              "(mean (test cases)):\n")  # fmt: skip
        print(table(folder, args.time))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
