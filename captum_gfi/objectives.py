"""The two objectives of Guided Feature Inversion, per example.

* Eq. (8)  ``inversion_loss``: class-agnostic feature inversion (Algorithm 1)
      || f^{l0}(Phi(x)) - f^{l0}(x) ||_2^2 + gamma * || w ||_1
* Eq. (9)  ``class_discriminative_loss``: target-class explanation (Algorithm 2)
      - f_c(Phi(x)) + lambda * f_c(Phi_bg(x)) + delta * || w ||_1

Both return one loss per example, shape (N,). Examples are independent, so the
batch is optimised by summing the per-example losses.
"""

from __future__ import annotations

import torch
from captum._utils.common import _select_targets
from captum._utils.typing import TargetType
from torch import Tensor

#: How the model's output is turned into the class score f_c.
SCORES = ("softmax", "sigmoid", "logit")


def class_scores(output: Tensor, score: str = "softmax") -> Tensor:
    """Turn the model's raw output into class scores.

    ``"softmax"`` (the paper's f_c, a probability; normalised over dim 1, the
    class dimension), ``"sigmoid"`` (multi-label models) or ``"logit"`` (raw).
    """
    if score == "softmax":
        return torch.softmax(output, dim=1)
    if score == "sigmoid":
        return torch.sigmoid(output)
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


def inversion_loss(
    guided_features: Tensor, clean_features: Tensor, weights: Tensor, gamma: float
) -> Tensor:
    """Eq. (8): squared L2 distance of the inversion layer's features plus gamma * L1(w)."""
    diff = (guided_features - clean_features).flatten(1)
    return diff.pow(2).sum(dim=1) + gamma * l1_norm(weights)


def class_discriminative_loss(
    guided_score: Tensor,
    background_score: Tensor,
    weights: Tensor,
    lam: float,
    delta: float,
) -> Tensor:
    """Eq. (9): -f_c(Phi) + lambda * f_c(Phi_bg) + delta * L1(w)."""
    return -guided_score + lam * background_score + delta * l1_norm(weights)
