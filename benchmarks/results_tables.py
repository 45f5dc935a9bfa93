"""Compact Markdown tables of benchmark runs for docs/results.md, from their ``summary.json``.

One table per run folder: a row per method with the mean and the number of test cases
behind it for energy share, pointing, top-k precision, WSOL box accuracy, insertion and
deletion AUC, max-sensitivity and CPU seconds per image (the full tables with intervals
are each folder's ``summary.md``):

    python benchmarks/results_tables.py docs/benchmark/*/composites
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


def table(folder: Path) -> str:
    """The Markdown table of one run folder."""
    summary = json.loads((folder / "summary.json").read_text())
    metrics = summary["metrics"]
    lines = ["| Method | " + " | ".join(COLUMNS.values()) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for method in summary["methods"]:
        cells = []
        for key in COLUMNS:
            value = metrics[method].get(key)
            if value is None:
                cells.append("–")
                continue
            mean = value["mean"]
            text = f"{mean:.3g}" if key == "cpu_seconds" else f"{mean:.3f}"
            cells.append(f"{text} ({value['n']})")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    args = parser.parse_args()
    for folder in args.folders:
        config = json.loads((folder / "summary.json").read_text()).get("config", {})
        print(f"{config.get('model', folder.parent.name)}, {config.get('dataset', folder.name)} "
              "(mean (test cases)):\n")  # fmt: skip
        print(table(folder))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
