"""Evaluation of attribution maps: the protocols of Du et al. (KDD 2018) and
a few beyond it, data set readers, and the ``captum-gfi evaluate`` runner."""

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
from .perturbation_curves import PerturbationCurve, perturbation_curve
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

__all__ = [
    "PAPER_ALPHAS",
    "STANDARD_TOLERANCE",
    "PerturbationCurve",
    "SODScores",
    "aggregate_sod",
    "box_iou",
    "f_measure",
    "grid_pointing_score",
    "infidelity_score",
    "localization_error",
    "make_grid",
    "mask_to_box",
    "max_point",
    "perturbation_curve",
    "point_in_boxes",
    "pointing_accuracy",
    "pointing_hit",
    "saliency_to_box",
    "salient_object_scores",
    "select_alpha",
    "sensitivity_score",
    "wsol_success",
]
