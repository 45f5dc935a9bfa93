"""Per-image records -> summary table (mean with 95% CI), CSV/JSON and plots.

A record is one ``(item, method, target)`` evaluation, a dict with optional
keys ``wsol_success`` (list of bool per alpha), ``pointing_hit`` (bool),
``insertion_auc``/``insertion_curve``, ``deletion_auc``/``deletion_curve``
and ``grid_score``. Confidence intervals are percentile bootstrap intervals
over images (2000 resamples, fixed seed), so that the per-class averaging of
the pointing game and the fixed-alpha WSOL error are resampled as computed.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .localization import localization_error, select_alpha
from .pointing import pointing_accuracy
from .records import Record
from .stats import bootstrap_ci

CURVE_KEYS = ("insertion_curve", "deletion_curve", "curve_fractions")


def _mean(v: Sequence[Any]) -> float:
    return float(np.mean(np.asarray(v, dtype=float)))


def summarize(records: Sequence[Record], alphas: Sequence[float]) -> dict[str, dict[str, Any]]:
    r"""
    Summary per method: for each protocol the estimate with its 95% CI and
    the number of evaluations ``n``; for WSOL also the error per alpha and the
    chosen alpha (tuned on records with ``tune=True`` when there are any).
    """
    out: dict[str, dict[str, Any]] = {}
    methods = sorted({r["method"] for r in records})
    for m in methods:
        rec = [r for r in records if r["method"] == m]
        s: dict[str, Any] = {}
        test = [r for r in rec if "wsol_success" in r and not r.get("tune", False)]
        tune = [r for r in rec if "wsol_success" in r and r.get("tune", False)]
        if test:
            succ = np.array([r["wsol_success"] for r in test], dtype=bool)
            tune_succ = np.array([r["wsol_success"] for r in tune], dtype=bool) if tune else None
            alpha, _ = select_alpha(succ, alphas, tune_succ)
            j = list(alphas).index(alpha)
            est, lo, hi = bootstrap_ci(list(succ[:, j]), lambda v: 1.0 - _mean(v))
            s["wsol_error"] = {"mean": est, "low": lo, "high": hi, "n": len(test)}
            s["wsol_alpha"] = alpha
            s["wsol_alpha_tuned_on_split"] = tune_succ is not None
            s["wsol_error_per_alpha"] = [float(e) for e in localization_error(succ)]
        pts = [r for r in rec if "pointing_hit" in r]
        if pts:
            pairs = [(bool(r["pointing_hit"]), r["target"]) for r in pts]
            est, lo, hi = bootstrap_ci(
                pairs, lambda v: pointing_accuracy([p[0] for p in v], [p[1] for p in v])
            )
            s["pointing_accuracy"] = {"mean": est, "low": lo, "high": hi, "n": len(pts)}
        for key in ("insertion_auc", "deletion_auc", "grid_score", "infidelity", "sensitivity"):
            vals = [float(r[key]) for r in rec if key in r]
            if vals:
                est, lo, hi = bootstrap_ci(vals, _mean)
                s[key] = {"mean": est, "low": lo, "high": hi, "n": len(vals)}
        out[m] = s
    return out


COLUMNS = (
    ("wsol_error", "WSOL error (lower better)"),
    ("pointing_accuracy", "Pointing acc. (higher better)"),
    ("grid_score", "Grid pointing (higher better)"),
    ("insertion_auc", "Insertion AUC (higher better)"),
    ("deletion_auc", "Deletion AUC (lower better)"),
    ("infidelity", "Infidelity (lower better)"),
    ("sensitivity", "Max-sensitivity (lower better)"),
)


def markdown_table(summary: dict[str, dict[str, Any]]) -> str:
    """Markdown table: one row per method, ``mean [low, high] (n)`` cells."""
    cols = [(k, t) for k, t in COLUMNS if any(k in s for s in summary.values())]
    lines = ["| Method | " + " | ".join(t for _, t in cols) + " |"]
    lines.append("|---" * (len(cols) + 1) + "|")
    for m, s in summary.items():
        cells = []
        for k, _ in cols:
            if k not in s:
                cells.append("–")
                continue
            v = s[k]
            cell = f"{v['mean']:.3f} [{v['low']:.3f}, {v['high']:.3f}] (n={v['n']})"
            if k == "wsol_error":
                cell += f", α={s['wsol_alpha']:g}"
            cells.append(cell)
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def wsol_alpha_table(summary: dict[str, dict[str, Any]], alphas: Sequence[float]) -> str:
    """Markdown table of the localisation error for every alpha (empty without WSOL)."""
    rows = {m: s["wsol_error_per_alpha"] for m, s in summary.items() if "wsol_error_per_alpha" in s}
    if not rows:
        return ""
    head = "| Method | " + " | ".join(f"{a:g}" for a in alphas) + " |"
    lines = ["", "WSOL error per α:", "", head]
    lines.append("|---" * (len(alphas) + 1) + "|")
    lines += [f"| {m} | " + " | ".join(f"{e:.3f}" for e in err) + " |" for m, err in rows.items()]
    return "\n".join(lines) + "\n"


def write_records(records: Sequence[Record], out: Path, alphas: Sequence[float]) -> None:
    """``per_image.jsonl`` (everything) and ``per_image.csv`` (no curves)."""
    out.mkdir(parents=True, exist_ok=True)
    with (out / "per_image.jsonl").open("w") as fh:
        for r in records:
            fh.write(json.dumps(r, sort_keys=True) + "\n")
    scalar = sorted({k for r in records for k in r if k not in CURVE_KEYS and k != "wsol_success"})
    wsol_cols = [f"wsol_success@{a:g}" for a in alphas]
    with (out / "per_image.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(scalar + wsol_cols)
        for r in records:
            row = [r.get(k, "") for k in scalar]
            ws = r.get("wsol_success")
            row += [int(b) for b in ws] if ws is not None else [""] * len(wsol_cols)
            w.writerow(row)


def plot_wsol(summary: dict[str, dict[str, Any]], alphas: Sequence[float], path: Path) -> bool:
    """Localisation error vs alpha, one line per method (cf. the paper's Fig. 6)."""
    rows = {m: s["wsol_error_per_alpha"] for m, s in summary.items() if "wsol_error_per_alpha" in s}
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for m, err in rows.items():
        ax.plot(list(alphas), err, marker="o", ms=3, label=m)
    ax.set_xlabel("α (threshold = α · mean saliency)")
    ax.set_ylabel("localization error")
    _save(fig, ax, path)
    return True


def _save(fig: Any, ax: Any, path: Path) -> None:
    """The plots' common finish: a [0, 1] y axis, grid, legend, saved and closed."""
    import matplotlib.pyplot as plt

    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_curves(records: Sequence[Record], mode: str, path: Path) -> bool:
    """Mean insertion or deletion curve per method, AUC in the legend."""
    key = f"{mode}_curve"
    by_method: dict[str, list[list[float]]] = {}
    fracs: dict[str, list[float]] = {}
    for r in records:
        if key in r:
            by_method.setdefault(r["method"], []).append(r[key])
            fracs[r["method"]] = r["curve_fractions"]
    if not by_method:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for m in sorted(by_method):
        lens = {len(c) for c in by_method[m]}
        if len(lens) != 1:  # different image sizes: resample onto a common grid
            grid = np.linspace(0, 1, 101)
            curves = np.array([np.interp(grid, np.linspace(0, 1, len(c)), c) for c in by_method[m]])
            x = grid
        else:
            curves = np.array(by_method[m])
            x = np.array(fracs[m])
        mean = curves.mean(0)
        auc = float(np.mean([r[f"{mode}_auc"] for r in records if r["method"] == m and key in r]))
        ax.plot(x, mean, label=f"{m} (AUC {auc:.3f})")
    ax.set_xlabel(f"fraction of pixels {'deleted' if mode == 'deletion' else 'inserted'}")
    ax.set_ylabel("p(target)")
    _save(fig, ax, path)
    return True


def write_report(
    records: Sequence[Record],
    out: Path,
    alphas: Sequence[float],
    skipped: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    r"""
    Write per-image CSV/JSON, ``summary.json``, ``summary.md`` and the plots.

    Args:
        records (sequence of dict): The method records, in report order.
        out (Path): Output folder.
        alphas (sequence of float): WSOL's alphas.
        skipped (Mapping, optional): ``{image id: reason}`` of the images skipped as
                    unreadable: counted in ``summary.md`` and listed in ``skipped.json``.
    """
    out = Path(out)
    write_records(records, out, alphas)
    summary = summarize(records, alphas)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    skipped = dict(skipped or {})
    (out / "skipped.json").write_text(json.dumps(skipped, indent=2, sort_keys=True) + "\n")
    n_items = len({r["item"] for r in records})
    md = f"Evaluated {n_items} item(s), {len(records)} record(s)."
    if skipped:
        md += f" Skipped {len(skipped)} unreadable image(s): " + ", ".join(sorted(skipped))
        md += " (reasons in skipped.json)."
    md += "\n\n" + markdown_table(summary)
    md += wsol_alpha_table(summary, alphas)
    (out / "summary.md").write_text(md)
    plot_wsol(summary, alphas, out / "wsol_error_vs_alpha.png")
    plot_curves(records, "insertion", out / "insertion_curves.png")
    plot_curves(records, "deletion", out / "deletion_curves.png")
    return summary
