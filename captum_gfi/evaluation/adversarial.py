"""The adversarial test of Du et al. (KDD 2018, Sec. 4.1.3, Fig. 4) as a protocol.

The paper shows that GFI still explains the *true* class of an FGSM adversarial
example: the model predicts another class, but the explanation of the true class
still covers the object. :func:`fgsm_protocol` measures it on cases with an exact
ground-truth mask (the benchmark's composites and grids):

1. every case is attacked with Captum's ``FGSM`` (untargeted, on the cross-entropy of
   the model's logits for the true class, in ``[lower_bound, upper_bound]`` pixel
   space) at each ``epsilon``; Captum leaves pixels whose gradient is below
   ``zero_thresh`` (1e-6) unperturbed, which would spare confidently classified
   images, so the threshold is set to 0: textbook FGSM, ``x + eps * sign(grad)``;
2. a case is kept at an ``epsilon`` when the model classifies the clean image as the
   true class and the adversarial one as another class (the prediction flips);
3. every method explains the true class on the kept adversarial images; reported per
   method: the energy share and the pointing hit of the true object's mask
   (:func:`~captum_gfi.evaluation.benchmark_metrics.energy_share`,
   :func:`~captum_gfi.evaluation.benchmark_metrics.pointing_hits`), the same on the
   clean image, and Spearman's rank correlation between the adversarial and the clean
   map (:func:`~captum_gfi.evaluation.rank_correlation.spearman`).

A method is as robust as the paper claims for GFI when its share and pointing on the
adversarial images stay close to its clean ones and its maps stay correlated with the
clean maps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from captum.robust import FGSM
from torch import Tensor, nn

from .._hooks import preserved_model_state
from .benchmark_metrics import energy_share, pointing_hits
from .pointing import STANDARD_TOLERANCE
from .rank_correlation import spearman

__all__ = [
    "DEFAULT_EPSILONS",
    "METRICS",
    "AdversarialResult",
    "fgsm_examples",
    "fgsm_protocol",
]

AttributionFn = Callable[[Tensor, Tensor], Tensor]
#: FGSM step sizes in ``[0, 1]`` pixel space (1, 2, 4 and 8 grey levels of 255).
DEFAULT_EPSILONS: tuple[float, ...] = (1 / 255, 2 / 255, 4 / 255, 8 / 255)
#: What is measured per kept case and method.
METRICS: tuple[str, ...] = ("energy_share", "pointing_hit", "rank_correlation")


@torch.no_grad()
def _top1(model: nn.Module, inputs: Tensor) -> Tensor:
    """The model's top-1 class of each input."""
    return model(inputs).argmax(dim=1)


def _cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    return F.cross_entropy(logits, target, reduction="none")


def fgsm_examples(
    model: nn.Module,
    images: Tensor,
    targets: Tensor,
    epsilon: float,
    lower_bound: float = 0.0,
    upper_bound: float = 1.0,
) -> Tensor:
    r"""
    Untargeted FGSM adversarial examples (Captum's ``FGSM``, cross-entropy on the
    logits, no gradient threshold), with the model's flags left as found.

    Args:
        model (nn.Module): classifier returning logits.
        images (Tensor): ``(N, C, H, W)`` in ``[lower_bound, upper_bound]``.
        targets (Tensor): ``(N,)`` true classes.
        epsilon (float): step size, > 0.

    Returns:
        adversarial (Tensor): ``clamp(images + epsilon * sign(grad), lower, upper)``.
    """
    if not epsilon > 0:
        raise ValueError(f"`epsilon` must be > 0, got {epsilon}")
    fgsm = FGSM(model, loss_func=_cross_entropy, lower_bound=lower_bound, upper_bound=upper_bound)
    fgsm.zero_thresh = 0.0
    with preserved_model_state([model]):
        adversarial = fgsm.perturb(images.detach().clone(), epsilon, targets)
    return adversarial.detach()


@dataclass(frozen=True)
class AdversarialResult:
    r"""
    The FGSM protocol's measurements.

    Attributes:
        epsilons (tuple of float): the step sizes, in order.
        targets (np.ndarray): ``(N,)`` true classes.
        clean_class (np.ndarray): ``(N,)`` predictions on the clean images.
        adversarial_class (np.ndarray): ``(E, N)`` predictions on the adversarial ones.
        kept (np.ndarray): ``(E, N)`` bool: clean prediction right, adversarial wrong.
        clean (dict): method -> ``{"energy_share", "pointing_hit"}`` -> ``(N,)`` on the
                    clean images (``nan`` for cases kept at no epsilon).
        adversarial (dict): method -> metric of :data:`METRICS` -> ``(E, N)`` on the
                    adversarial images (``nan`` where not kept).
    """

    epsilons: tuple[float, ...]
    targets: np.ndarray
    clean_class: np.ndarray
    adversarial_class: np.ndarray
    kept: np.ndarray
    clean: dict[str, dict[str, np.ndarray]]
    adversarial: dict[str, dict[str, np.ndarray]]

    def rows(self) -> list[dict[str, Any]]:
        """One JSON-serialisable row per (epsilon, method): ``n`` kept cases and the means
        over them of the adversarial and clean metrics (``None`` when ``n = 0``)."""
        out: list[dict[str, Any]] = []
        for e, eps in enumerate(self.epsilons):
            keep = self.kept[e]
            n = int(keep.sum())
            for name in self.adversarial:

                def mean(values: np.ndarray, keep: np.ndarray = keep, n: int = n) -> float | None:
                    return float(values[keep].mean()) if n else None

                adv, clean = self.adversarial[name], self.clean[name]
                out.append(
                    {
                        "epsilon": eps,
                        "method": name,
                        "n": n,
                        "energy_share": mean(adv["energy_share"][e]),
                        "clean_energy_share": mean(clean["energy_share"]),
                        "pointing": mean(adv["pointing_hit"][e]),
                        "clean_pointing": mean(clean["pointing_hit"]),
                        "rank_correlation": mean(adv["rank_correlation"][e]),
                    }
                )
        return out


def _check(
    images: Tensor,
    targets: Tensor,
    masks: Tensor,
    methods: Mapping[str, AttributionFn],
    epsilons: Sequence[float],
    lower_bound: float,
    upper_bound: float,
) -> None:
    if not isinstance(images, Tensor) or images.dim() != 4:
        raise ValueError("`images` must be a (N, C, H, W) tensor")
    n, _, h, w = images.shape
    if not isinstance(targets, Tensor) or tuple(targets.shape) != (n,):
        raise ValueError(f"`targets` must be a ({n},) tensor of true classes")
    if targets.is_floating_point() or targets.dtype == torch.bool:
        raise TypeError(f"`targets` must hold integer classes, got {targets.dtype}")
    if not isinstance(masks, Tensor) or tuple(masks.shape) != (n, h, w):
        raise ValueError(f"`masks` must be ({n}, {h}, {w}) ground-truth masks")
    if not masks.flatten(1).bool().any(1).all():
        raise ValueError("`masks` must not be empty")
    if not methods or not all(callable(f) for f in methods.values()):
        raise ValueError("`methods` must map names to attribute(inputs, target) functions")
    if not epsilons or not all(e > 0 and math.isfinite(e) for e in epsilons):
        raise ValueError(f"`epsilons` must be positive, got {tuple(epsilons)}")
    if not lower_bound < upper_bound:
        raise ValueError(f"`lower_bound` must be < `upper_bound`, got {lower_bound, upper_bound}")
    if float(images.min()) < lower_bound or float(images.max()) > upper_bound:
        raise ValueError(
            f"`images` must lie in [{lower_bound}, {upper_bound}] (the models of the benchmark "
            "take [0, 1] pixels), got values outside"
        )


def _maps(fn: AttributionFn, inputs: Tensor, targets: Tensor, batch_size: int) -> Tensor:
    parts = [
        fn(inputs[i : i + batch_size], targets[i : i + batch_size]).detach()
        for i in range(0, inputs.shape[0], batch_size)
    ]
    return torch.cat(parts)


def fgsm_protocol(
    model: nn.Module,
    images: Tensor,
    targets: Tensor,
    masks: Tensor,
    methods: Mapping[str, AttributionFn],
    epsilons: Sequence[float] = DEFAULT_EPSILONS,
    lower_bound: float = 0.0,
    upper_bound: float = 1.0,
    tolerance: float = STANDARD_TOLERANCE,
    batch_size: int = 8,
) -> AdversarialResult:
    r"""
    The paper's adversarial test (module docstring) on cases with exact masks.

    Args:
        model (nn.Module): classifier returning logits, taking ``images`` as they are.
        images (Tensor): ``(N, C, H, W)`` in ``[lower_bound, upper_bound]``.
        targets (Tensor): ``(N,)`` true classes.
        masks (Tensor): ``(N, H, W)`` bool ground truth of the true object.
        methods (Mapping[str, Callable]): name -> ``attribute(inputs, target)``
                    (:func:`~captum_gfi.evaluation.methods.make_method`,
                    :func:`~captum_gfi.evaluation.peers.make_peer`) on ``model``.
        epsilons (sequence of float): FGSM step sizes.
        tolerance (float): pointing-game tolerance in pixels (TorchRay: 15).
        batch_size (int): images per method call.

    Returns:
        result (AdversarialResult)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be an nn.Module, got {type(model).__name__}")
    _check(images, targets, masks, methods, epsilons, lower_bound, upper_bound)
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}")
    x = images.detach()
    t = targets.to(x.device).long()
    g = masks.to(x.device).bool()
    n = x.shape[0]
    eps = tuple(float(e) for e in epsilons)

    clean_class = _top1(model, x)
    adversarial, adv_class = [], []
    for e in eps:
        xa = fgsm_examples(model, x, t, e, lower_bound, upper_bound)
        adversarial.append(xa)
        adv_class.append(_top1(model, xa))
    adv_classes = torch.stack(adv_class)
    kept = (clean_class == t)[None] & (adv_classes != t[None])
    any_kept = kept.any(0)
    idx = torch.nonzero(any_kept).flatten()

    nan = np.full(n, np.nan)
    clean: dict[str, dict[str, np.ndarray]] = {}
    adv: dict[str, dict[str, np.ndarray]] = {}
    for name, fn in methods.items():
        clean[name] = {"energy_share": nan.copy(), "pointing_hit": nan.copy()}
        adv[name] = {m: np.full((len(eps), n), np.nan) for m in METRICS}
        if idx.numel() == 0:
            continue
        clean_maps = torch.zeros(n, 1, *x.shape[-2:], device=x.device)
        clean_maps[idx] = _maps(fn, x[idx], t[idx], batch_size).to(x.device).float()
        sel = idx.cpu().numpy()
        clean[name]["energy_share"][sel] = energy_share(clean_maps[idx], g[idx]).cpu().numpy()
        clean[name]["pointing_hit"][sel] = (
            pointing_hits(clean_maps[idx], g[idx], tolerance).cpu().numpy().astype(float)
        )
        for e in range(len(eps)):
            k = torch.nonzero(kept[e]).flatten()
            if k.numel() == 0:
                continue
            maps = _maps(fn, adversarial[e][k], t[k], batch_size).to(x.device).float()
            sk = k.cpu().numpy()
            adv[name]["energy_share"][e, sk] = energy_share(maps, g[k]).cpu().numpy()
            adv[name]["pointing_hit"][e, sk] = (
                pointing_hits(maps, g[k], tolerance).cpu().numpy().astype(float)
            )
            adv[name]["rank_correlation"][e, sk] = spearman(maps, clean_maps[k]).numpy()
    return AdversarialResult(
        epsilons=eps,
        targets=t.cpu().numpy(),
        clean_class=clean_class.cpu().numpy(),
        adversarial_class=adv_classes.cpu().numpy(),
        kept=kept.cpu().numpy(),
        clean=clean,
        adversarial=adv,
    )
