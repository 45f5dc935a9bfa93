"""The evaluation library: the protocols of Du et al. (KDD 2018) and a few beyond it.

Its entry points, importable from here: the one method factory (:func:`make_method`: GFI
settings and the Captum baselines with one configuration each), the exact-ground-truth
cases (:func:`build_cases`, :func:`case_from_record`) and their metrics (energy share,
pointing, top-k precision, WSOL, insertion/deletion), the localisation, pointing,
perturbation-curve, salient-object and Captum metrics, the bootstrap intervals, and the
bundled photos (:func:`load_photo`). The runners over data sets and cases are
:func:`captum_gfi.evaluation.runner.run_datasets` and
:func:`captum_gfi.evaluation.benchmark_runner.run_benchmark`, given
:class:`~captum_gfi.evaluation.run_options.EvaluateOptions`; the ``captum-gfi evaluate``
command (:mod:`captum_gfi.evaluate`) only parses its arguments into those.
"""

from .benchmark_data import BenchmarkCase, build_cases, case_from_record
from .benchmark_metrics import (
    energy_share,
    insertion_deletion,
    pointing_hits,
    topk_precision,
    wsol_successes,
)
from .captum_metrics import infidelity_score, sensitivity_score
from .localization import (
    PAPER_ALPHAS,
    box_iou,
    localization_error,
    mask_to_box,
    saliency_to_box,
    select_alpha,
    wsol_success,
)
from .methods import METHODS, make_method
from .perturbation_curves import PerturbationCurve, perturbation_curve
from .photos import PHOTO_FILES, load_photo
from .pointing import (
    STANDARD_TOLERANCE,
    grid_pointing_score,
    make_grid,
    max_point,
    point_in_boxes,
    pointing_accuracy,
    pointing_hit,
)
from .saliency_metrics import SODScores, aggregate_sod, f_measure, salient_object_scores
from .stats import bootstrap_mean_ci, cluster_bootstrap_mean_ci, paired_bootstrap_ci

__all__ = [
    "METHODS",
    "PAPER_ALPHAS",
    "PHOTO_FILES",
    "STANDARD_TOLERANCE",
    "BenchmarkCase",
    "PerturbationCurve",
    "SODScores",
    "aggregate_sod",
    "bootstrap_mean_ci",
    "box_iou",
    "build_cases",
    "case_from_record",
    "cluster_bootstrap_mean_ci",
    "energy_share",
    "f_measure",
    "grid_pointing_score",
    "infidelity_score",
    "insertion_deletion",
    "load_photo",
    "localization_error",
    "make_grid",
    "make_method",
    "mask_to_box",
    "max_point",
    "paired_bootstrap_ci",
    "perturbation_curve",
    "point_in_boxes",
    "pointing_accuracy",
    "pointing_hit",
    "pointing_hits",
    "saliency_to_box",
    "salient_object_scores",
    "select_alpha",
    "sensitivity_score",
    "topk_precision",
    "wsol_success",
    "wsol_successes",
]
