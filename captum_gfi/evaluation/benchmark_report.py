"""The benchmark's report, from its JSONL records alone (``captum-gfi evaluate
--dataset composites|grids --report-only``).

Written to the output folder:

- ``summary.md`` / ``summary.csv`` / ``summary.json``: per method and metric
  the mean over the evaluated cases with a 95 % percentile bootstrap
  interval (2000 resamples of cases, seed 0) and ``n``; then every method
  minus the reference method (``gradcam`` by default) on the same cases with
  a paired bootstrap interval of the mean difference (``paired.csv``); the
  same again per kind of case when there are several (``grid2``, ``grid3``);
- ``records.jsonl`` (every record, ordered) and ``per_case.csv`` (scalars);
- ``metrics.png``: one panel per metric, a bar per method with CI whiskers;
- ``gallery.png``: the first 8 cases (input, ground truth, each method's map)
  from the thumbnails stored in the records.

When the run also holds the records of the randomisation test
(:func:`~captum_gfi.evaluation.sanity.sanity_records`, ``"record": "sanity"``) or of the
FGSM test (:func:`~captum_gfi.evaluation.adversarial.fgsm_records`, ``"record": "fgsm"``),
``summary.md`` gets a section for each ("Randomisation test", "Adversarial (FGSM)") and
``summary.json`` the entries ``sanity`` and ``adversarial``
(:func:`summarize_sanity`, :func:`summarize_fgsm`); without them both files are as
before.

Metrics are taken over the *evaluated* cases (the ``test`` split unless the
run evaluated only ``tune``). WSOL's box accuracy uses the ``alpha`` that
maximises it on the ``tune`` cases (the paper's protocol, one alpha per
method); when there are no tune cases, alpha is chosen on the evaluated cases
themselves and the report says so.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._thumbnails import decode_thumbnail
from .localization import PAPER_ALPHAS, select_alpha
from .records import Record, read_records
from .stats import bootstrap_mean_ci, cluster_bootstrap_mean_ci, paired_bootstrap_ci

#: ``(key, title, direction)``: +1 higher is better, -1 lower is better.
METRICS: tuple[tuple[str, str, int], ...] = (
    ("energy_share", "Energy in GT", 1),
    ("pointing_hit", "Pointing (15 px)", 1),
    ("topk_precision", "Top-k precision", 1),
    ("wsol", "WSOL box acc.", 1),
    ("insertion_auc", "Insertion AUC", 1),
    ("deletion_auc", "Deletion AUC", -1),
    ("sensitivity", "Max-sensitivity", -1),
    ("infidelity", "Infidelity", -1),
    ("seconds", "Seconds / image", -1),
    ("cpu_seconds", "CPU s / image", -1),
)
REFERENCE = "gradcam"
_THUMB_KEYS = ("thumb_input", "thumb_gt", "thumb_map")


def load_records(out: Path) -> tuple[list[Record], list[Record]]:
    r"""
    ``(case_records, method_records)`` from ``out/shards/*.jsonl``, ordered by
    case index (then method name for method records).
    """
    return _split_records(list(read_records(out).values()))


def _split_records(recs: Sequence[Record]) -> tuple[list[Record], list[Record]]:
    cases = sorted((r for r in recs if r.get("record") == "case"), key=lambda r: r["index"])
    methods = sorted(
        (r for r in recs if r.get("record") == "method"), key=lambda r: (r["index"], r["method"])
    )
    return cases, methods


def _evaluated(records: Sequence[Record]) -> tuple[list[Record], str]:
    full = [r for r in records if r.get("full", True)]
    test = [r for r in full if r.get("split") == "test"]
    if test:
        return test, "test"
    return full, "+".join(sorted({str(r.get("split")) for r in full})) or "none"


def choose_alpha(
    records: Sequence[Record], evaluated: Sequence[Record], alphas: Sequence[float] = PAPER_ALPHAS
) -> tuple[float, bool]:
    r"""
    WSOL's ``alpha`` for one method: tuned on its ``tune`` records when the
    evaluated records are not themselves tune records.

    Returns:
        (alpha, tuned_on_split): the alpha, and whether it came from a
        separate tune split.
    """
    ev_ids = {r["key"] for r in evaluated}
    tune = [r for r in records if r.get("split") == "tune" and r["key"] not in ev_ids]
    succ = np.array([r["wsol_success"] for r in evaluated], dtype=bool)
    if tune:
        tune_succ = np.array([r["wsol_success"] for r in tune], dtype=bool)
        return select_alpha(succ, alphas, tune_succ)[0], True
    return select_alpha(succ, alphas)[0], False


def per_case_values(
    records: Sequence[Record], alphas: Sequence[float] = PAPER_ALPHAS
) -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, dict[str, Any]], str]:
    r"""
    ``values[method][metric][case_id]`` on the evaluated cases, WSOL's alpha
    per method, and the name of the evaluated split.
    """
    by_method: dict[str, list[Record]] = {}
    for r in records:
        by_method.setdefault(r["method"], []).append(r)
    values: dict[str, dict[str, dict[str, float]]] = {}
    alpha_info: dict[str, dict[str, Any]] = {}
    split = "none"
    for m, recs in by_method.items():
        evaluated, split = _evaluated(recs)
        v: dict[str, dict[str, float]] = {key: {} for key, _, _ in METRICS}
        if evaluated:
            alpha, tuned = choose_alpha(recs, evaluated, alphas)
            j = list(alphas).index(alpha)
            alpha_info[m] = {"alpha": alpha, "tuned_on_split": tuned}
            for r in evaluated:
                v["wsol"][r["item"]] = float(r["wsol_success"][j])
                for key, _, _ in METRICS:
                    if key != "wsol" and key in r:
                        v[key][r["item"]] = float(r[key])
        values[m] = v
    return values, alpha_info, split


def summarize_benchmark(
    records: Sequence[Record],
    methods: Sequence[str] | None = None,
    reference: str = REFERENCE,
    alphas: Sequence[float] = PAPER_ALPHAS,
    groups: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    r"""
    Means with bootstrap CIs per method and metric, and paired differences to
    ``reference`` (or to the first method when it is absent).

    Args:
        records (sequence of dict): the method records of a run.
        methods (sequence of str, optional): methods to report, in order
                    (default: every method in the records, in first-seen order).
        reference (str): the method every other one is compared with.
        groups (mapping, optional): case id -> group (the foreground photo). When
                    given, every paired difference also gets a cluster bootstrap CI
                    (:func:`~captum_gfi.evaluation.stats.cluster_bootstrap_mean_ci`)
                    that resamples the groups, then their cases: ``group_low``,
                    ``group_high``, ``groups`` (number of groups) and ``group_better``.

    Returns:
        summary (dict): ``split``, ``reference``, ``methods``, ``wsol_alpha``,
        ``metrics[method][metric] = {mean, low, high, n}`` and
        ``paired[method][metric] = {diff, low, high, n, better}`` where
        ``better`` is ``"yes"``/``"no"`` when the CI excludes 0 in favour /
        against the method, ``"n.s."`` otherwise.
    """

    def verdict(direction: int, lo: float, hi: float) -> str:
        signed_lo, signed_hi = sorted((direction * lo, direction * hi))
        return "yes" if signed_lo > 0 else "no" if signed_hi < 0 else "n.s."

    present = list(dict.fromkeys(r["method"] for r in records))
    order = [m for m in (methods or present) if m in present]
    values, alpha_info, split = per_case_values([r for r in records if r["method"] in order],
                                                alphas)  # fmt: skip
    ref = reference if reference in order else (order[0] if order else reference)
    metrics: dict[str, dict[str, Any]] = {}
    paired: dict[str, dict[str, Any]] = {}
    for m in order:
        metrics[m] = {}
        for key, _, direction in METRICS:
            vals = values[m][key]
            if vals:
                est, lo, hi = bootstrap_mean_ci(list(vals.values()))
                metrics[m][key] = {"mean": est, "low": lo, "high": hi, "n": len(vals)}
            if m == ref:
                continue
            common = [c for c in vals if c in values[ref][key]]
            if not common:
                continue
            d, lo, hi = paired_bootstrap_ci([vals[c] for c in common],
                                            [values[ref][key][c] for c in common])  # fmt: skip
            entry = {"diff": d, "low": lo, "high": hi, "n": len(common),
                     "better": verdict(direction, lo, hi)}  # fmt: skip
            if groups is not None:
                diffs = [vals[c] - values[ref][key][c] for c in common]
                labels = [groups.get(c, c) for c in common]
                _, glo, ghi = cluster_bootstrap_mean_ci(diffs, labels)
                entry.update(group_low=glo, group_high=ghi, groups=len(set(labels)),
                             group_better=verdict(direction, glo, ghi))  # fmt: skip
            paired.setdefault(m, {})[key] = entry
    n_cases = len({c for m in order for c in values[m]["energy_share"]})
    return {"split": split, "reference": ref, "methods": order, "n_cases": n_cases,
            "wsol_alpha": alpha_info, "metrics": metrics, "paired": paired}  # fmt: skip


def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) >= 1000 or (v != 0 and abs(v) < 0.001) else f"{v:.3f}"


def markdown_tables(summary: dict[str, Any]) -> str:
    """The two Markdown tables (means with CIs; paired differences)."""
    metrics = summary["metrics"]
    cols = [(k, t, d) for k, t, d in METRICS if any(k in metrics[m] for m in metrics)]
    arrow = {1: "↑", -1: "↓"}
    lines = [
        "| Method | " + " | ".join(
            f"{t} {arrow[d]} (n={max(metrics[m][k]['n'] for m in metrics if k in metrics[m])})"
            for k, t, d in cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]  # fmt: skip
    for m in summary["methods"]:
        cells = []
        for k, _, _ in cols:
            v = metrics[m].get(k)
            cells.append("–" if v is None else
                         f"{_fmt(v['mean'])} [{_fmt(v['low'])}, {_fmt(v['high'])}]")  # fmt: skip
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    ref = summary["reference"]
    lines += ["", f"Difference to `{ref}` on the same cases (method − {ref}), mean with its "
              "paired bootstrap 95 % CI; **bold**: the CI excludes 0 (✓ better, ✗ worse "
              "given the metric's direction):", ""]  # fmt: skip
    header = ["| Method | " + " | ".join(f"{t} {arrow[d]}" for _, t, d in cols) + " |",
              "|---" * (len(cols) + 1) + "|"]  # fmt: skip

    def paired_rows(prefix: str) -> list[str]:
        """One row per method: the difference with the interval ``<prefix>low``/``high``."""
        rows = []
        for m in summary["methods"]:
            if m == ref:
                continue
            cells = []
            for k, _, _ in cols:
                v = summary["paired"].get(m, {}).get(k)
                if v is None or f"{prefix}low" not in v:
                    cells.append("–")
                    continue
                text = f"{v['diff']:+.3g} [{v[prefix + 'low']:+.3g}, {v[prefix + 'high']:+.3g}]"
                mark = {"yes": " ✓", "no": " ✗"}.get(v[prefix + "better"], "")
                cells.append(f"**{text}**{mark}" if mark else text)
            rows.append(f"| {m} | " + " | ".join(cells) + " |")
        return rows

    lines += header + paired_rows("")
    grouped = [v for per in summary["paired"].values() for v in per.values() if "groups" in v]
    if grouped:
        n_groups = max(v["groups"] for v in grouped)
        lines += ["", f"The same differences with a CI that resamples the foreground photos "
                  f"({n_groups} photo(s)), then their cases: cases built from one photo are "
                  "correlated, so this interval is the honest one when few photos make up "
                  "most cases:", ""]  # fmt: skip
        lines += header + paired_rows("group_")
    alphas = summary["wsol_alpha"]
    if alphas:
        tuned = all(a["tuned_on_split"] for a in alphas.values())
        lines += ["", "WSOL α (threshold = α · mean of the map) "
                  + ("chosen on the tune split: " if tuned else
                     "chosen on the evaluated cases themselves (no tune split; optimistic): ")
                  + ", ".join(f"{m} {a['alpha']:g}" for m, a in alphas.items()) + "."]  # fmt: skip
    return "\n".join(lines) + "\n"


def _ordered(present: Sequence[str], methods: Sequence[str] | None) -> list[str]:
    """The methods of ``present`` in the order of ``methods`` first, then first seen."""
    seen = list(dict.fromkeys(present))
    first = [m for m in (methods or []) if m in seen]
    return first + [m for m in seen if m not in first]


def _ci(values: Sequence[float]) -> dict[str, Any]:
    est, lo, hi = bootstrap_mean_ci(list(values))
    return {"mean": est, "low": lo, "high": hi, "n": len(values)}


def summarize_sanity(
    records: Sequence[Record], methods: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    r"""
    The randomisation test per method, from its ``sanity`` records.

    Args:
        records (sequence of dict): ``"record": "sanity"`` records
                    (:func:`~captum_gfi.evaluation.sanity.sanity_records`).
        methods (sequence of str, optional): the order of the rows (methods not named
                    follow in first-seen order).

    Returns:
        rows (list of dict): one per method and cascade (the records of a method with
        another list of steps make another row): ``method``, ``steps``, ``n`` (cases),
        ``photos`` (distinct photos, ``None`` when the records name none), ``splits``,
        ``spearman_abs`` and ``spearman`` (mean over cases after every step),
        ``final`` (mean ``spearman_abs`` after the last step with its 95 % bootstrap
        CI), ``threshold``, ``passed`` (the method's verdict: ``final`` mean below the
        threshold), ``pass_share`` (the share of cases whose own ``final`` is below) and
        ``constant_last`` (cases whose map was constant after the last step: a constant
        map has rank correlation 0, so it passes without showing anything).
    """
    groups: dict[tuple[str, tuple[str, ...]], list[Record]] = {}
    for r in sorted(records, key=lambda r: str(r["item"])):
        groups.setdefault((r["method"], tuple(r["steps"])), []).append(r)
    order = _ordered([m for m, _ in groups], methods)
    rows: list[dict[str, Any]] = []
    for (method, steps), recs in sorted(groups.items(), key=lambda kv: order.index(kv[0][0])):
        photos = {r["photo"] for r in recs if "photo" in r}
        threshold = float(recs[0].get("threshold", 0.5))
        final = _ci([float(r["final"]) for r in recs])
        rows.append({
            "method": method, "steps": list(steps), "n": len(recs),
            "photos": len(photos) if photos else None,
            "splits": sorted({str(r.get("split")) for r in recs}),
            "spearman_abs": np.mean([r["spearman_abs"] for r in recs], axis=0).tolist(),
            "spearman": np.mean([r["spearman"] for r in recs], axis=0).tolist(),
            "final": final, "threshold": threshold, "passed": final["mean"] < threshold,
            "pass_share": float(np.mean([bool(r["passed"]) for r in recs])),
            "constant_last": sum(bool(r.get("constant_map", [False])[-1]) for r in recs),
        })  # fmt: skip
    return rows


def sanity_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The "Randomisation test" section of ``summary.md`` (:func:`summarize_sanity`)."""
    lines = ["## Randomisation test", "",
             "Cascading model-parameter randomisation (Adebayo et al., NeurIPS 2018): the "
             "model's layers are re-initialised cumulatively from the top, one step at a "
             "time; after each step, Spearman's rank correlation of the absolute maps "
             "with the trained model's, mean over the cases (lower: the map depends more "
             "on the weights). A method passes when the mean after the last step is below "
             f"{rows[0]['threshold']:g}; *pass share*: the share of cases whose own "
             "last-step value is below it; *constant*: cases whose last-step map is "
             "constant (rank correlation 0: it passes without showing anything)."]  # fmt: skip
    cascades = list(dict.fromkeys(tuple(r["steps"]) for r in rows))
    for c, steps in enumerate(cascades):
        part = [r for r in rows if tuple(r["steps"]) == steps]
        title = f" ({c + 1} of {len(cascades)})" if len(cascades) > 1 else ""
        lines += ["", f"Steps{title}: " + "; ".join(f"{k + 1} = `{s}`"
                                                     for k, s in enumerate(steps)) + ".", "",
                  "| Method | n | photos | " + " | ".join(str(k + 1) for k in range(len(steps)))
                  + " | last step [95 % CI] | pass share | constant | verdict |",
                  "|---" * (len(steps) + 7) + "|"]  # fmt: skip
        for r in part:
            f = r["final"]
            photos = "–" if r["photos"] is None else str(r["photos"])
            cells = [_fmt(v) for v in r["spearman_abs"]]
            cells += [
                f"{_fmt(f['mean'])} [{_fmt(f['low'])}, {_fmt(f['high'])}]",
                _fmt(r["pass_share"]),
                str(r["constant_last"]),
                "pass" if r["passed"] else "fail",
            ]
            lines.append(f"| {r['method']} | {r['n']} | {photos} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def summarize_fgsm(
    records: Sequence[Record], methods: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    r"""
    The FGSM test per epsilon and method, from its ``fgsm`` records.

    Args:
        records (sequence of dict): ``"record": "fgsm"`` records
                    (:func:`~captum_gfi.evaluation.adversarial.fgsm_records`).
        methods (sequence of str, optional): the order of the methods.

    Returns:
        rows (list of dict): one per (epsilon, method), epsilons ascending:
        ``epsilon_255``, ``method``, ``n`` (cases attacked), ``photos``, ``flipped``
        (cases whose prediction flipped), and over the flipped cases (absent when none
        flipped) ``energy_share``, ``pointing_hit``, ``rank_correlation`` (adversarial
        map vs clean map), ``clean_energy_share`` and ``clean_pointing_hit``, each
        ``{mean, low, high, n}`` with its 95 % bootstrap CI.
    """
    groups: dict[tuple[float, str], list[Record]] = {}
    for r in sorted(records, key=lambda r: str(r["item"])):
        groups.setdefault((float(r["epsilon_255"]), r["method"]), []).append(r)
    order = _ordered([m for _, m in groups], methods)
    rows: list[dict[str, Any]] = []
    keys = sorted(groups, key=lambda k: (k[0], order.index(k[1])))
    for eps, method in keys:
        recs = groups[eps, method]
        flipped = [r for r in recs if r["flipped"]]
        photos = {r["photo"] for r in recs if "photo" in r}
        row: dict[str, Any] = {"epsilon_255": eps, "method": method, "n": len(recs),
                               "photos": len(photos) if photos else None,
                               "flipped": len(flipped)}  # fmt: skip
        if flipped:
            for key in ("energy_share", "pointing_hit", "rank_correlation",
                        "clean_energy_share", "clean_pointing_hit"):  # fmt: skip
                row[key] = _ci([float(r[key]) for r in flipped])
        rows.append(row)
    return rows


def fgsm_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The "Adversarial (FGSM)" section of ``summary.md`` (:func:`summarize_fgsm`)."""
    lines = ["## Adversarial (FGSM)", "",
             "The paper's adversarial test (Du et al., KDD 2018, Sec. 4.1.3): every case is "
             "attacked by untargeted FGSM at ε grey levels of 255; on the cases whose "
             "prediction flips, each method explains the true class on the adversarial "
             "image. Mean with 95 % bootstrap CI over the flipped cases; *clean*: the same "
             "cases' clean images; *Spearman*: rank correlation of the adversarial and the "
             "clean map.", "",
             "| ε (/255) | Method | flipped / n | Energy in GT ↑ | clean | Pointing ↑ | "
             "clean | Spearman adv. vs clean |", "|---" * 8 + "|"]  # fmt: skip

    def cell(v: dict[str, Any] | None) -> str:
        return "–" if v is None else f"{_fmt(v['mean'])} [{_fmt(v['low'])}, {_fmt(v['high'])}]"

    for r in rows:
        cells = [cell(r.get(k)) for k in ("energy_share", "clean_energy_share", "pointing_hit",
                                          "clean_pointing_hit", "rank_correlation")]  # fmt: skip
        lines.append(f"| {r['epsilon_255']:g} | {r['method']} | {r['flipped']} / {r['n']} | "
                     + " | ".join(cells) + " |")  # fmt: skip
    return "\n".join(lines) + "\n"


def write_csvs(summary: dict[str, Any], records: Sequence[Record], out: Path) -> None:
    """``summary.csv``, ``paired.csv`` and ``per_case.csv``."""
    parts = [("all", summary), *summary.get("by_kind", {}).items()]
    with (out / "summary.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["kind", "method", "metric", "mean", "low", "high", "n"])
        for kind, part in parts:
            for m in part["methods"]:
                for k, v in part["metrics"][m].items():
                    w.writerow([kind, m, k, v["mean"], v["low"], v["high"], v["n"]])
    with (out / "paired.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["kind", "method", "reference", "metric", "diff", "low", "high", "n",
                    "better", "group_low", "group_high", "groups", "group_better"])  # fmt: skip
        for kind, part in parts:
            for m, per in part["paired"].items():
                for k, v in per.items():
                    w.writerow([kind, m, part["reference"], k, v["diff"], v["low"], v["high"],
                                v["n"], v["better"], v.get("group_low", ""),
                                v.get("group_high", ""), v.get("groups", ""),
                                v.get("group_better", "")])  # fmt: skip
    skip = {"wsol_success", "key", "record", *_THUMB_KEYS}
    cols = sorted({k for r in records for k in r if k not in skip})
    with (out / "per_case.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for r in records:
            w.writerow([r.get(k, "") for k in cols])


def plot_metric_bars(summary: dict[str, Any], path: Path) -> bool:
    """One panel per metric: a bar per method (mean) with its 95 % CI whiskers."""
    metrics = summary["metrics"]
    cols = [(k, t, d) for k, t, d in METRICS if any(k in metrics[m] for m in metrics)]
    if not cols:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = summary["methods"]
    ncol = 3
    nrow = -(-len(cols) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 2.8 * nrow), squeeze=False)
    colors = plt.get_cmap("tab10")(np.arange(len(methods)) % 10)
    for ax, (k, title, d) in zip(axes.flat, cols):
        ms = [m for m in methods if k in metrics[m]]
        mean = np.array([metrics[m][k]["mean"] for m in ms])
        err = np.array([[mean[i] - metrics[m][k]["low"], metrics[m][k]["high"] - mean[i]]
                        for i, m in enumerate(ms)]).T  # fmt: skip
        ax.bar(range(len(ms)), mean, yerr=err, capsize=3,
               color=[colors[methods.index(m)] for m in ms])  # fmt: skip
        ax.set_xticks(range(len(ms)), ms, rotation=35, ha="right", fontsize=8)
        ax.set_title(f"{title} ({'higher' if d > 0 else 'lower'} is better)", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        if k in ("seconds", "cpu_seconds"):
            ax.set_yscale("log")
    for ax in list(axes.flat)[len(cols) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def plot_gallery(
    cases: Sequence[Record], records: Sequence[Record], methods: Sequence[str], path: Path,
    n: int = 8,
) -> bool:  # fmt: skip
    """Rows: the first ``n`` cases with thumbnails; columns: input, ground truth, maps."""
    shown = [c for c in cases if "thumb_input" in c][:n]
    if not shown:
        return False
    maps = {(r["item"], r["method"]): r["thumb_map"] for r in records if "thumb_map" in r}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = ["input", "ground truth", *methods]
    fig, axes = plt.subplots(len(shown), len(cols), figsize=(1.3 * len(cols), 1.35 * len(shown)),
                             squeeze=False)  # fmt: skip
    for i, c in enumerate(shown):
        images: list[np.ndarray | None] = [
            decode_thumbnail(c["thumb_input"]),
            decode_thumbnail(c["thumb_gt"]),
        ]
        images += [decode_thumbnail(maps[(c["item"], m)]) if (c["item"], m) in maps else None
                   for m in methods]  # fmt: skip
        for j, im in enumerate(images):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if im is not None:
                ax.imshow(im, cmap=None if im.ndim == 3 else ("gray" if j == 1 else "jet"),
                          vmin=0, vmax=255)  # fmt: skip
            if i == 0:
                ax.set_title(cols[j], fontsize=7)
        axes[i, 0].set_ylabel(f"{c['kind']} #{c['index']}", fontsize=6)
    fig.tight_layout(pad=0.2)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def write_benchmark_report(
    out: Path, methods: Sequence[str] | None = None, reference: str = REFERENCE
) -> dict[str, Any]:
    r"""
    Regenerate the whole report of the run in ``out`` from its shards.

    Args:
        out (Path): the run's output folder (``out/shards/*.jsonl``).
        methods (sequence of str, optional): methods to report, in order
                    (default: the run's ``config.json`` order, else first seen).
        reference (str): the method the paired differences compare with.

    Returns:
        summary (dict): what ``summary.json`` holds.
    """
    out = Path(out)
    everything = list(read_records(out).values())
    cases, records = _split_records(everything)
    if not records:
        raise ValueError(f"no benchmark records in {out / 'shards'}")
    config: dict[str, Any] = {}
    if (out / "config.json").is_file():
        config = json.loads((out / "config.json").read_text())
    stats: dict[str, Any] = {}
    if (out / "build_stats.json").is_file():
        stats = json.loads((out / "build_stats.json").read_text())
    order = list(methods) if methods else config.get("methods")
    # the foreground (composites) or target-cell (grids) photo of each case
    groups = {c["item"]: str(c["source"]["photo"]) for c in cases
              if isinstance(c.get("source"), dict) and "photo" in c["source"]}  # fmt: skip
    for r in records:
        if r["item"] in groups:
            r.setdefault("photo", groups[r["item"]])
    group_map = groups or None
    summary = summarize_benchmark(records, order, reference, groups=group_map)
    kinds = sorted({r["kind"] for r in records})
    if len(kinds) > 1:  # e.g. grid2 and grid3: different chance levels
        summary["by_kind"] = {
            k: summarize_benchmark(
                [r for r in records if r["kind"] == k], order, reference, groups=group_map
            )  # fmt: skip
            for k in kinds
        }
    summary["config"] = config
    summary["build_stats"] = stats
    sanity = summarize_sanity([r for r in everything if r.get("record") == "sanity"], order)
    if sanity:
        summary["sanity"] = sanity
    adversarial = summarize_fgsm([r for r in everything if r.get("record") == "fgsm"], order)
    if adversarial:
        summary["adversarial"] = adversarial
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    with (out / "records.jsonl").open("w") as fh:
        for r in [*cases, *records]:
            fh.write(json.dumps(r, sort_keys=True) + "\n")
    write_csvs(summary, records, out)
    head = ", ".join(f"{k}={config[k]}" for k in ("dataset", "model", "n", "seed") if k in config)
    md = f"Benchmark{' (' + head + ')' if head else ''}: {summary['n_cases']} evaluated "
    md += f"case(s) of split `{summary['split']}`, {len(records)} record(s).\n"
    if stats:
        md += "Build statistics: " + ", ".join(f"{k}={v}" for k, v in stats.items()) + ".\n"
    md += "Mean with 95 % bootstrap CI over cases; n per column is the largest n of a method.\n\n"
    md += markdown_tables(summary)
    for kind, sub in summary.get("by_kind", {}).items():
        md += f"\n### Cases of kind `{kind}` only ({sub['n_cases']} cases)\n\n"
        md += markdown_tables(sub)
    if sanity:
        md += "\n" + sanity_markdown(sanity)
    if adversarial:
        md += "\n" + fgsm_markdown(adversarial)
    (out / "summary.md").write_text(md)
    plot_metric_bars(summary, out / "metrics.png")
    plot_gallery(cases, records, summary["methods"], out / "gallery.png")
    return summary
