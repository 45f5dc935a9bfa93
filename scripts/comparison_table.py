"""The opening table of docs/results.md: every method of one or more benchmark runs on the
same test cases, from their records (``shards/*.jsonl``), with intervals, cost and passes.

    python scripts/comparison_table.py docs/benchmark/efficientnet-lite0/composites-large \\
        [more run folders of the same cases, e.g. an expensive subset] \\
        [the run folders of another model or data set] --reference gfi:refined

Run folders are grouped by the model and data set of their ``config.json``; each group is
one block of rows of the same two tables (a ``data`` column names the group).

Per method: energy share, pointing, top-k precision and insertion − deletion (mean and
95 % bootstrap CI over its test cases), n (test cases), photos (distinct foreground photos
among them), seconds per image (median of the batches' wall seconds; ``cpu_seconds`` with
``--time cpu``) and passes per image (forward / backward / iterations, from the records).
Then the paired difference ``reference − method`` on the cases both have, with its paired
bootstrap CI and the CI that resamples photos (then their cases): **bold** when the
photo-clustered interval excludes 0. Runs are merged by case id; a method present in
several runs keeps the first run's records. ``--methods a,b`` keeps these rows in this
order, ``--label name=shown`` renames one (``--reference`` takes the name shown), and
``--min-cases N`` leaves out the methods with fewer cases (named under the tables).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from captum_gfi.evaluation.benchmark_report import load_records
from captum_gfi.evaluation.stats import bootstrap_mean_ci, paired_difference

METRICS: dict[str, str] = {
    "energy_share": "energy in GT ↑",
    "pointing_hit": "pointing ↑",
    "topk_precision": "top-k precision ↑",
    "ins_del": "insertion − deletion ↑",
}


def _value(rec: dict[str, Any], metric: str) -> float | None:
    if metric == "ins_del":
        if "insertion_auc" not in rec or "deletion_auc" not in rec:
            return None
        return float(rec["insertion_auc"]) - float(rec["deletion_auc"])
    value = rec.get(metric)
    return None if value is None else float(value)


def load(
    folders: Sequence[Path], split: str = "test"
) -> tuple[dict[str, str], dict[str, dict[str, dict[str, Any]]]]:
    """``(photo of each case of ``split``, method -> case id -> record)`` over ``folders``."""
    photos: dict[str, str] = {}
    by_method: dict[str, dict[str, dict[str, Any]]] = {}
    for folder in folders:
        cases, methods = load_records(folder)
        for c in cases:
            if c.get("split") == split:
                photos.setdefault(c["item"], str(c.get("source", {}).get("photo", c["item"])))
        seen_here: dict[str, dict[str, dict[str, Any]]] = {}
        for r in methods:
            if r.get("split") == split and r.get("full", True):
                seen_here.setdefault(r["method"], {})[r["item"]] = r
        for method, recs in seen_here.items():
            by_method.setdefault(method, recs)
    return photos, by_method


def _ci(values: list[float]) -> str:
    mean, low, high = bootstrap_mean_ci(values)
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def _diff(a: list[float], b: list[float], groups: list[str]) -> str:
    d = paired_difference(a, b, groups)
    return f"**{d}**" if d.excludes_zero else str(d)


def groups(folders: Sequence[Path]) -> dict[str, list[Path]]:
    """``"model, data set" -> its run folders``, in the order they are given."""
    out: dict[str, list[Path]] = {}
    for folder in folders:
        config = json.loads((folder / "config.json").read_text())
        out.setdefault(f"{config['model']}, {config['dataset']}", []).append(folder)
    return out


def select(
    by_method: dict[str, dict[str, dict[str, Any]]],
    methods: Sequence[str] | None,
    labels: dict[str, str],
) -> dict[str, dict[str, dict[str, Any]]]:
    """``by_method`` with only ``methods``, in their order (all when None), renamed by
    ``labels`` (record name -> name shown)."""
    names = [m for m in methods if m in by_method] if methods else list(by_method)
    return {labels.get(m, m): by_method[m] for m in names}


def tables(
    folders: Sequence[Path],
    reference: str,
    time: str = "seconds",
    split: str = "test",
    methods: Sequence[str] | None = None,
    labels: dict[str, str] | None = None,
    min_cases: int = 1,
) -> str:
    """The two Markdown tables (methods; paired differences to ``reference``), one block of
    rows per model and data set; ``methods`` picks and orders the rows, ``labels`` renames
    them (``reference`` is a name as shown); a method with fewer than ``min_cases`` cases
    gets no row, and a line under the tables names it with its count."""
    loaded = {}
    omitted = []
    for label, runs in groups(folders).items():
        photos, by_method = load(runs, split)
        chosen = select(by_method, methods, labels or {})
        omitted += [f"{m} ({label}: {len(r)} case{'s' * (len(r) != 1)})"
                    for m, r in chosen.items() if len(r) < min_cases]  # fmt: skip
        chosen = {m: r for m, r in chosen.items() if len(r) >= min_cases}
        loaded[label] = (photos, chosen)
    head = ["data", "method", *METRICS.values(), "n", "photos", "s / image",
            "passes (f / b / it)"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for label, (photos, by_method) in loaded.items():
        lines += _method_rows(label, photos, by_method, time)
    head = ["data", "method", "n", *METRICS.values()]
    shown = reference if "`" in reference else f"`{reference}`"
    lines += ["", f"Paired difference {shown} − method on the cases both have: mean "
              "[paired 95 % CI] / [CI resampling photos]; **bold**: the photo-clustered CI "
              "excludes 0.", "", "| " + " | ".join(head) + " |",
              "|---" * len(head) + "|"]  # fmt: skip
    for label, (photos, by_method) in loaded.items():
        if reference in by_method:
            lines += _paired_rows(label, photos, by_method, reference)
    if omitted:
        lines += ["", f"Not shown (fewer than {min_cases} cases so far): {', '.join(omitted)}."]
    return "\n".join(lines) + "\n"


def _method_rows(
    label: str, photos: dict[str, str], by_method: dict[str, dict[str, dict[str, Any]]], time: str
) -> list[str]:
    lines = []
    for method, recs in by_method.items():
        cells = []
        for metric in METRICS:
            values = [v for r in recs.values() if (v := _value(r, metric)) is not None]
            cells.append(_ci(values) + (f" (n={len(values)})" if len(values) != len(recs) else "")
                         if values else "–")  # fmt: skip
        seconds = statistics.median(float(r.get(time, 0.0)) for r in recs.values())
        first = next(iter(recs.values()))
        passes = (f"{first['passes_forward']} / {first['passes_backward']} / "
                  f"{first['iterations']}" if "passes_forward" in first else "–")  # fmt: skip
        used = {photos.get(i, i) for i in recs}
        lines.append(f"| {label} | {method} | " + " | ".join(cells) + f" | {len(recs)} | "
                     f"{len(used)} | {seconds:.3g} | {passes} |")  # fmt: skip
    return lines


def _paired_rows(
    label: str,
    photos: dict[str, str],
    by_method: dict[str, dict[str, dict[str, Any]]],
    reference: str,
) -> list[str]:
    ref = by_method[reference]
    lines = []
    for method, recs in by_method.items():
        if method == reference:
            continue
        common = [i for i in recs if i in ref]
        cells = []
        for metric in METRICS:
            pairs = [(a, b, photos.get(i, i)) for i in common
                     if (a := _value(ref[i], metric)) is not None
                     and (b := _value(recs[i], metric)) is not None]  # fmt: skip
            if len(pairs) < 2:
                cells.append("–")
                continue
            a, b, g = (list(x) for x in zip(*pairs))
            cells.append(
                _diff(a, b, g) + (f" (n={len(pairs)})" if len(pairs) != len(common) else "")
            )
        lines.append(f"| {label} | {method} | {len(common)} | " + " | ".join(cells) + " |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--reference", default="gfi:refined")
    parser.add_argument("--time", choices=["seconds", "cpu_seconds"], default="seconds")
    parser.add_argument("--split", default="test", help="the cases' split (tune: research)")
    parser.add_argument("--methods", default=None, help="comma list: these rows, in this order")
    parser.add_argument(
        "--label", action="append", default=[], metavar="NAME=SHOWN", help="rename a method"
    )
    parser.add_argument("--min-cases", type=int, default=1, help="rows need this many cases")
    args = parser.parse_args()
    labels = dict(item.split("=", 1) for item in args.label)
    methods = args.methods.split(",") if args.methods else None
    print(tables(args.folders, args.reference, args.time, args.split, methods, labels,
                 args.min_cases), end="")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
