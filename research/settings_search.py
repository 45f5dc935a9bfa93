"""The setting search behind ``refined`` (docs/research_settings.md), on the package's own code.

Each candidate of the search is a :class:`captum_gfi.settings.GFISettings`, registered with
:func:`captum_gfi.settings.register_setting` as ``research:<name>``; it runs through
``GuidedFeatureInversion`` and ``captum-gfi evaluate`` (the same cases, metrics, records
and report as every other method), so there is no second implementation of GFI::

    python research/settings_search.py evaluate --dataset composites --model efficientnet-lite0 \
        --methods gradcam,gfi:research:c10_beta4,gfi:research:c10_beta6 --out runs/search

The shipped ``refined`` before its last two changes is registered under the names the
committed benchmark runs used: ``refined_beta4`` (``refined`` until 2026-11-26, the
``gfi:refined`` records committed before then) and ``refined_beta6`` (``refined`` from
2026-11-26 until 2026-12-07, and the ``gfi:refined`` records committed in between: those of
the large photo pool's runs of 2026-12-02 and 2026-12-07 among them). The ``refined``
since 2026-12-07 is ``c10_beta48`` (``gfi:research:c10_beta48`` in those runs' records).
``--no-tf32`` before ``evaluate`` turns TensorFloat-32 off for cuDNN convolutions and CUDA
matrix products, so that a GPU run computes in float32 as the CPU runs do.

``report STORE.json`` prints the table of a store the search wrote before this driver existed
(``docs/research_settings/*.json``): the mean of each metric and the paired difference to
LayerGradCam with its 95 % bootstrap interval (``captum_gfi.evaluation.stats``, 2000
resamples of cases, seed 0), the numbers docs/research_settings.md quotes.

:data:`NOT_SETTINGS` lists the candidates of that search that are no ``GFISettings`` (an
area constraint, a second finer layer, a softmax parameterisation, a mean-colour background,
Algorithm 1 in Grad-CAM's mask form): their numbers live in the committed stores only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from captum_gfi.evaluation.stats import paired_bootstrap_ci
from captum_gfi.settings import SETTINGS, GFISettings, Prior, WeightInit, register_setting

PREFIX = "research:"
METRICS = ("share", "point", "topk", "ins_del")

_REFINED = SETTINGS["refined"]
_PAPER = SETTINGS["paper"]


def _c(steps: int, beta: float = 1.0, **fields: Any) -> GFISettings:
    """Grad-CAM start, Grad-CAM's mask form, ``-log p + lam log p_bg + beta mean(m)``."""
    return dataclasses.replace(_REFINED, target_steps=steps, delta=beta, **fields)


def _b(steps: int) -> GFISettings:
    """Grad-CAM start, Grad-CAM's mask form, the paper's stage-2 objective (Eq. (9))."""
    return _c(steps, 1.0, score="softmax", target_prior=Prior.L1)


#: candidate name (as in docs/research_settings.md) -> setting
CANDIDATES: dict[str, GFISettings] = {
    "paper": _PAPER,
    "gradcam_init_only": _c(0),
    "minmax_gcinit_paperobj": dataclasses.replace(
        _PAPER, init=WeightInit.GRADCAM, inversion_steps=0, target_steps=35
    ),
    "minmax_gcinit_c20": dataclasses.replace(
        _PAPER,
        init=WeightInit.GRADCAM,
        inversion_steps=0,
        target_steps=20,
        score="log_softmax",
        target_prior=Prior.MASK_AREA,
        delta=1.0,
    ),  # fmt: skip
    "relu_gcinit_paperobj": _b(35),
    "b10": _b(10),
    "c70": _c(70),
    "c35": _c(35),
    "c20": _c(20),
    "c10": _c(10),
    "c10_lr3e-2": _c(10, lr=3e-2),
    "c10_beta4": _c(10, 4.0),
    "c10_beta6": _c(10, 6.0),
    "c10_beta8": _c(10, 8.0),
    "c10_beta4_lr3e-2": _c(10, 4.0, lr=3e-2),
    "c10_logit": _c(10, score="logit"),
    "c10_beta4_logit": _c(10, 4.0, score="logit"),
    "c10_beta4_softmax": _c(10, 4.0, score="softmax"),
    "c35_beta4": _c(35, 4.0),
    "c20_beta0.5": _c(20, 0.5),
    "c20_beta2": _c(20, 2.0),
    "c20_beta4": _c(20, 4.0),
    "c20_lam0": _c(20, lam=0.0),
    "c20_lam2": _c(20, lam=2.0),
    "c20_logit": _c(20, score="logit"),
    "c20_softmax": _c(20, score="softmax"),
    "c20_lr3e-2": _c(20, lr=3e-2),
    "c20_lr1e-1": _c(20, lr=1e-1),
    "c20_lr3e-3": _c(20, lr=3e-3),
    "c20_nodecay": _c(20, lr_decay=1.0),
    # 2026-12-02, the large pool's gap to ScoreCAM on energy share (same 21 passes)
    "c10_beta10": _c(10, 10.0),
    "c10_beta16": _c(10, 16.0),
    "c10_beta6_lam2": _c(10, 6.0, lam=2.0),
    "c10_beta6_nonneg": _c(10, 6.0, weight_min=0.0),
    "c10_beta24": _c(10, 24.0),
    "c10_beta32": _c(10, 32.0),
    "c10_beta48": _c(10, 48.0),
    "c10_beta16_lr2e-2": _c(10, 16.0, lr=2e-2),
    "c10_beta64": _c(10, 64.0),
    "c10_beta96": _c(10, 96.0),
    # 2026-12-07, whether a larger step lets a larger area prior sharpen the mask further
    "c10_beta48_lr2e-2": _c(10, 48.0, lr=2e-2),
    "c10_beta48_lr4e-2": _c(10, 48.0, lr=4e-2),
    "c10_beta96_lr2e-2": _c(10, 96.0, lr=2e-2),
    "c10_beta96_lr4e-2": _c(10, 96.0, lr=4e-2),
    "c10_beta192": _c(10, 192.0),
    "c10_beta192_lr2e-2": _c(10, 192.0, lr=2e-2),
    "c10_beta192_lr4e-2": _c(10, 192.0, lr=4e-2),
}

#: candidates of the search that no GFISettings expresses, and why
NOT_SETTINGS: dict[str, str] = {
    **{n: "extremal-perturbation area term" for n in ("c10_area0.2", "c20_area0.1", "c20_area0.2")},
    **{
        n: "a second, finer layer"
        for n in (
            "c10_fine10",
            "c10_beta4_fine10",
            "c20_fine10",
            "c20_fine10_w1",
            "fine10_init_only",
        )
    },  # fmt: skip
    **{
        n: "softmax parameterisation of the weights (Opti-CAM)"
        for n in ("softmax_gcinit20", "softmax_const20", "softmax_gcinit10_beta4")
    },
    **{
        n: "mean-colour background (attribute(baseline=...), not a setting)"
        for n in ("c10_mean_bg", "c20_mean_bg", "c10_beta4_mean_bg")
    },
    **{n: "Algorithm 1 in Grad-CAM's mask form" for n in ("c20_stage1", "c10_beta4_stage1")},
}


#: names of the committed benchmark runs -> candidate
RUN_NAMES: dict[str, str] = {"refined_beta4": "c10_beta4", "refined_beta6": "c10_beta6"}


def register_candidates() -> list[str]:
    """Registers every candidate as ``research:<name>``, and :data:`RUN_NAMES`; returns
    the registered names."""
    names = {PREFIX + name: settings for name, settings in CANDIDATES.items()}
    names.update({run: CANDIDATES[name] for run, name in RUN_NAMES.items()})
    for name, settings in names.items():
        register_setting(name, settings, overwrite=True)
    return list(names)


def report_table(store: dict[str, Any]) -> str:
    """The markdown table of a committed search store (see the module docstring)."""
    gc = store["gradcam"]["rows"]
    lines = [
        f"n = {len(gc)}",
        "| method | " + " | ".join(METRICS) + " | passes | s/image |",
        "|---|" + "---|" * (len(METRICS) + 2),
    ]
    for name, rec in store.items():
        cells = []
        for k in METRICS:
            vals = np.array([r[k] for r in rec["rows"]])
            if name == "gradcam":
                cells.append(f"{vals.mean():.3f}")
                continue
            diff, lo, hi = paired_bootstrap_ci(vals, np.array([g[k] for g in gc]))
            cells.append(f"{vals.mean():.3f} ({diff:+.3f} [{lo:+.3f}, {hi:+.3f}])")
        lines.append(
            f"| {name} | {' | '.join(cells)} | {rec['passes']} | {rec['sec_per_image']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:2] == ["--no-tf32", "evaluate"]:
        import torch

        args = args[1:]
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    if args[:1] == ["evaluate"]:
        register_candidates()
        from captum_gfi.cli import main as cli_main

        return cli_main(args)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("evaluate", help="captum-gfi evaluate with the candidates registered")
    rep = sub.add_parser("report", help="the table of a committed search store")
    rep.add_argument("store", type=Path)
    sub.add_parser("list", help="the candidates and the settings they are")
    ns = parser.parse_args(args)
    if ns.command == "report":
        print(report_table(json.loads(ns.store.read_text())))
    else:
        for name, settings in CANDIDATES.items():
            print(f"{PREFIX}{name}: {settings}")
        for name, why in NOT_SETTINGS.items():
            print(f"{name}: not a setting ({why})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
