"""The two objectives of Guided Feature Inversion, per example.

* Eq. (8)  ``inversion_loss``: class-agnostic feature inversion (Algorithm 1)
      || f^{l0}(Phi(x)) - f^{l0}(x) ||_2^2 + gamma * || w ||_1
* Eq. (9)  ``class_discriminative_loss``: target-class explanation (Algorithm 2)
      - f_c(Phi(x)) + lambda * f_c(Phi_bg(x)) + delta * || w ||_1

Their terms are named members, so a setting (``captum_gfi.settings``) picks them as data:

* ``FeatureLoss``: the data term of stage 1: ``SQUARED_ERROR`` (Eq. (8)) or
  ``RELATIVE_SQUARED_ERROR`` (the authors' main.py l.24-25, divided by || f^{l0}(x) ||^2)
* ``Prior``: the penalty on w: ``L1`` (Eq. (8)-(9)) or ``SQUARED_L2`` (the authors'
  main.py l.17-20, ``alpha_prior(w, 2)`` = sum of w_i^2)

All return one loss per example, shape (N,). Examples are independent, so the
batch is optimised by summing the per-example losses.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

import torch
from captum._utils.common import _select_targets
from captum._utils.typing import TargetType
from torch import Tensor

#: How the model's output is turned into the class score f_c.
SCORES = ("softmax", "log_softmax", "sigmoid", "log_sigmoid", "logit")

#: A softmax over one output unit is constant (1, its log 0): for a model with one
#: output per example (a binary classifier's logit z) the setting's softmax scores are
#: taken over the two logits (0, z), which is the sigmoid of z (its log).
ONE_UNIT_SCORES = {"softmax": "sigmoid", "log_softmax": "log_sigmoid"}


def class_scores(output: Tensor, score: str = "softmax") -> Tensor:
    """Turn the model's raw output into class scores.

    ``"softmax"`` (the paper's f_c, a probability; normalised over dim 1, the
    class dimension), ``"log_softmax"`` (its logarithm: no saturation near 0 or 1),
    ``"sigmoid"`` (multi-label models, and one-output binary classifiers),
    ``"log_sigmoid"`` (its logarithm) or ``"logit"`` (raw).
    """
    if score == "softmax":
        return torch.softmax(output, dim=1)
    if score == "log_softmax":
        return torch.log_softmax(output, dim=1)
    if score == "sigmoid":
        return torch.sigmoid(output)
    if score == "log_sigmoid":
        return torch.nn.functional.logsigmoid(output)
    if score == "logit":
        return output
    raise ValueError(f"score must be one of {SCORES}, got {score!r}")


def target_score(output: Tensor, target: TargetType, score: str = "softmax") -> Tensor:
    """f_c: the score of the target class for every example, shape (N,)."""
    selected = _select_targets(class_scores(output, score), target)
    return selected.reshape(output.shape[0], -1).sum(dim=1)


def l1_norm(weights: Tensor) -> Tensor:
    """|| w ||_1 per example, shape (N,), on the feasible set w >= 0.

    There it equals sum(w), whose gradient is 1 everywhere, at w = 0 included.
    (``abs`` would give a zero gradient at 0, letting noise-level gradients of
    the data term decide the direction of Adam's normalised step for every
    channel the clipping has switched off.)
    """
    return weights.sum(dim=1)


def squared_l2_norm(weights: Tensor) -> Tensor:
    """|| w ||_2^2 per example, shape (N,): the authors' prior (main.py l.17-20,
    ``alpha_prior(w, alpha=2)``, used with weight 5 in stage 1 and 2 in stage 2)."""
    return weights.pow(2).sum(dim=1)


def squared_error(guided_features: Tensor, clean_features: Tensor) -> Tensor:
    """Eq. (8)'s data term: || f^{l0}(Phi) - f^{l0}(x) ||_2^2 per example, a sum over
    all of l0's values."""
    diff = (guided_features - clean_features).flatten(1)
    return diff.pow(2).sum(dim=1)


def relative_squared_error(guided_features: Tensor, clean_features: Tensor) -> Tensor:
    """The authors' data term (main.py l.24-25, ``perceptual_loss``):
    || f^{l0}(Phi) - f^{l0}(x) ||_2^2 / || f^{l0}(x) ||_2^2 per example."""
    reference = clean_features.flatten(1).pow(2).sum(dim=1)
    return squared_error(guided_features, clean_features) / reference


def mask_area(mask: Tensor) -> Tensor:
    """mean(m) per example, shape (N,): the share of the input the mask keeps, the
    original form of Eq. (5)'s sparsity prior (on the mask, not on w). Unlike
    ||w||_1 it cannot be lowered by shrinking w when the mask is scale-invariant
    in w (Eq. (7), ReLU / max)."""
    return mask.flatten(1).mean(dim=1)


class FeatureLoss(Enum):
    """The data term of stage 1; call a member on (guided features, clean features).

    ``SQUARED_ERROR``: Eq. (8), :func:`squared_error`; ``RELATIVE_SQUARED_ERROR``: the
    authors' main.py l.24-25, :func:`relative_squared_error`."""

    #: Eq. (8): || f(Phi) - f(x) ||^2
    SQUARED_ERROR = "squared_error"
    #: main.py l.24-25: || f(Phi) - f(x) ||^2 / || f(x) ||^2
    RELATIVE_SQUARED_ERROR = "relative_squared_error"

    def __call__(self, guided_features: Tensor, clean_features: Tensor) -> Tensor:
        return _FEATURE_LOSSES[self](guided_features, clean_features)


class Prior(Enum):
    """The penalty on the channel weights; call a member on (weights (N, C), mask).

    ``L1``: Eq. (8)-(9), :func:`l1_norm`; ``SQUARED_L2``: the authors' main.py l.17-20,
    :func:`squared_l2_norm`; ``MASK_AREA``: :func:`mask_area`, a prior on the mask
    (N, 1, H, W) itself."""

    #: Eq. (8)-(9): || w ||_1 (as sum(w) on w >= 0, see :func:`l1_norm`)
    L1 = "l1"
    #: main.py l.17-20: || w ||_2^2
    SQUARED_L2 = "squared_l2"
    #: mean(m): the area of the mask (Eq. (5)'s prior on the mask)
    MASK_AREA = "mask_area"

    def __call__(self, weights: Tensor, mask: Tensor | None = None) -> Tensor:
        if self is Prior.MASK_AREA and mask is None:
            raise ValueError("the mask_area prior needs the mask")
        return _PRIORS[self](weights, mask)


_FEATURE_LOSSES: dict[FeatureLoss, Callable[[Tensor, Tensor], Tensor]] = {
    FeatureLoss.SQUARED_ERROR: squared_error,
    FeatureLoss.RELATIVE_SQUARED_ERROR: relative_squared_error,
}
_PRIORS: dict[Prior, Callable[[Tensor, Any], Tensor]] = {
    Prior.L1: lambda weights, mask: l1_norm(weights),
    Prior.SQUARED_L2: lambda weights, mask: squared_l2_norm(weights),
    Prior.MASK_AREA: lambda weights, mask: mask_area(mask),
}


def inversion_loss(
    guided_features: Tensor,
    clean_features: Tensor,
    weights: Tensor,
    gamma: float,
    *,
    feature_loss: FeatureLoss = FeatureLoss.SQUARED_ERROR,
    prior: Prior = Prior.L1,
    mask: Tensor | None = None,
) -> Tensor:
    """Eq. (8): squared L2 distance of the inversion layer's features plus gamma * L1(w).

    ``feature_loss`` and ``prior`` replace its two terms (the authors':
    ``RELATIVE_SQUARED_ERROR`` and ``SQUARED_L2`` with gamma = 5); ``mask`` is passed
    to the prior."""
    return feature_loss(guided_features, clean_features) + gamma * prior(weights, mask)


def class_discriminative_loss(
    guided_score: Tensor,
    background_score: Tensor,
    weights: Tensor,
    lam: float,
    delta: float,
    *,
    prior: Prior = Prior.L1,
    mask: Tensor | None = None,
) -> Tensor:
    """Eq. (9): -f_c(Phi) + lambda * f_c(Phi_bg) + delta * L1(w).

    ``prior`` replaces L1(w) (the authors': ``SQUARED_L2`` with delta = 2, main.py
    l.190); ``mask`` is passed to the prior."""
    return -guided_score + lam * background_score + delta * prior(weights, mask)
