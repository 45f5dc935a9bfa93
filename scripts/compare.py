"""Paired comparison of two methods across benchmark runs, from their ``per_case.csv``.

For each run folder (written by ``captum-gfi evaluate --dataset composites|grids``), the
mean difference A - B on the same test cases with a paired bootstrap 95 % interval
(``captum_gfi.evaluation.stats.paired_bootstrap_ci``), for energy share, pointing,
top-k precision and insertion - deletion AUC, as one Markdown table:

    python scripts/compare.py docs/benchmark/*/* --a gfi:refined --b gradcam

With ``--by-photo`` the interval resamples the foreground photos, then their cases
(``captum_gfi.evaluation.stats.cluster_bootstrap_mean_ci``; needs the ``photo`` column that
reports written since the photo-clustered CI was added have), and the table says how many
photos the cases come from.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from captum_gfi.evaluation.stats import cluster_bootstrap_mean_ci, paired_bootstrap_ci

METRICS: dict[str, str] = {
    "energy_share": "Energy in GT ↑",
    "pointing_hit": "Pointing (15 px) ↑",
    "topk_precision": "Top-k precision ↑",
    "ins_minus_del": "Insertion − deletion ↑",
}


def per_case(folder: Path) -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, str]]:
    """method -> case -> metric -> value, test cases only; and case -> photo."""
    table: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    photos: dict[str, str] = {}
    with open(folder / "per_case.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["split"] != "test" or not row.get("energy_share"):
                continue
            values = {
                "energy_share": float(row["energy_share"]),
                "pointing_hit": float(row["pointing_hit"] == "True"),
                "topk_precision": float(row["topk_precision"]),
            }
            if row.get("insertion_auc"):  # curves may cover the first cases only
                values["ins_minus_del"] = float(row["insertion_auc"]) - float(row["deletion_auc"])
            table[row["method"]][row["item"]] = values
            if row.get("photo"):
                photos[row["item"]] = row["photo"]
    return table, photos


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--a", default="gfi:refined")
    parser.add_argument("--b", default="gradcam")
    parser.add_argument("--by-photo", action="store_true",
                        help="CI resampling foreground photos, then their cases")  # fmt: skip
    args = parser.parse_args()
    header = ["run", "n", "photos"] if args.by_photo else ["run", "n"]
    header += [f"{label} ({args.a} − {args.b})" for label in METRICS.values()]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for folder in args.folders:
        table, photos = per_case(folder)
        if args.a not in table or args.b not in table:
            continue
        cases = sorted(set(table[args.a]) & set(table[args.b]))
        cells = [f"{folder.parent.name} {folder.name}", str(len(cases))]
        n_curves = sum("ins_minus_del" in table[args.a][c] and "ins_minus_del" in table[args.b][c]
                       for c in cases)  # fmt: skip
        if n_curves < len(cases):
            cells[1] += f" ({n_curves} with curves)"
        if args.by_photo:
            if not all(c in photos for c in cases):
                raise SystemExit(f"{folder}/per_case.csv has no photo column: regenerate its "
                                 "report (captum-gfi evaluate ... --report-only)")  # fmt: skip
            cells.append(str(len({photos[c] for c in cases})))
        for metric in METRICS:
            have = [c for c in cases if metric in table[args.a][c] and metric in table[args.b][c]]
            if not have:
                cells.append("–")
                continue
            a = np.array([table[args.a][c][metric] for c in have])
            b = np.array([table[args.b][c][metric] for c in have])
            if args.by_photo:
                diff, low, high = cluster_bootstrap_mean_ci(a - b, [photos[c] for c in have])
            else:
                diff, low, high = paired_bootstrap_ci(a, b)
            cell = f"{diff:+.3f} [{low:+.3f}, {high:+.3f}]"
            cells.append(f"**{cell}**" if low > 0 or high < 0 else cell)
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
