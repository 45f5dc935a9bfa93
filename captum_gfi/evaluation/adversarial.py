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

:func:`fgsm_records` runs the protocol on benchmark cases and yields one JSON record per
(case, epsilon, method) for the record store of ``captum-gfi evaluate``
(:mod:`~captum_gfi.evaluation.records`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from captum.robust import FGSM
from torch import Tensor, nn

from .._hooks import preserved_model_state
from .benchmark_metrics import energy_share, pointing_hits
from .cases import Case, case_photo, check_image_shapes, model_device
from .pointing import STANDARD_TOLERANCE
from .rank_correlation import spearman
from .records import Record, record_key

__all__ = [
    "DEFAULT_EPSILONS",
    "METRICS",
    "AdversarialResult",
    "fgsm_examples",
    "fgsm_key",
    "fgsm_protocol",
    "fgsm_records",
    "grey_levels",
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
        adversarial = fgsm.perturb(images.detach().clone().requires_grad_(), epsilon, targets)
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


# --------------------------------------------------------------------------- records


def grey_levels(epsilon: float) -> float:
    """``epsilon`` (``[0, 1]`` pixel space) in grey levels of 255, to 6 significant digits
    (``2 / 255`` gives ``2.0``)."""
    return float(f"{float(epsilon) * 255:.6g}")


def fgsm_key(case_id: str, epsilon: float, method: str, target: int) -> str:
    """The record key of ``method`` on a case attacked at ``epsilon`` (pixel space):
    ``record_key(case_id, f"fgsm:{grey_levels(epsilon):g}:{method}", target)``."""
    return record_key(case_id, f"fgsm:{grey_levels(epsilon):g}:{method}", target)


def fgsm_records(
    cases: Sequence[Case],
    methods: Mapping[str, AttributionFn],
    model: nn.Module,
    epsilons: Sequence[float] = DEFAULT_EPSILONS,
    *,
    tolerance: float = STANDARD_TOLERANCE,
    batch_size: int = 8,
    done: Collection[str] = frozenset(),
    lower_bound: float = 0.0,
    upper_bound: float = 1.0,
    model_name: str = "",
) -> Iterator[Record]:
    r"""
    The FGSM protocol on benchmark cases: one record per (case, epsilon, method).

    The cases are taken in fixed batches of ``batch_size`` (in the given order); for each
    batch, :func:`fgsm_protocol` runs once with every method that has a record missing in
    it (at every epsilon), and only the missing records are yielded, so a resumed run
    computes what the first one would have (a method's numbers do not depend on which
    other methods run with it).

    Every record (a JSON-serialisable dict) holds ``key`` (:func:`fgsm_key`), ``record``
    (``"fgsm"``), ``item``, ``method``, ``kind``, ``split``, ``target``, ``model``,
    ``photo`` (when the case's ``source`` names one), ``epsilon`` (pixel space),
    ``epsilon_255`` (:func:`grey_levels`), ``clean_class`` and ``adversarial_class``
    (top-1), ``clean_correct`` and ``flipped`` (clean prediction right, adversarial one
    wrong: the case is kept); a flipped case's record also holds, for the map of the true
    class, ``energy_share`` and ``pointing_hit`` on the adversarial image,
    ``clean_energy_share`` and ``clean_pointing_hit`` on the clean one, and
    ``rank_correlation`` (Spearman, adversarial vs clean map); values rounded to 6
    decimals. A case that did not flip still gets its record (without the metrics), so a
    resumed run knows it was done.

    Args:
        cases (sequence): cases with ``case_id``, ``kind``, ``split``, ``image``
                    ``(C, H, W)`` in ``[lower_bound, upper_bound]``, ``target`` and
                    ``mask`` ``(H, W)`` (and optionally ``source``), all of one size.
        methods (Mapping[str, Callable]): name -> ``attribute(inputs, target)`` on
                    ``model``.
        model (nn.Module): classifier returning logits (left as found).
        epsilons (sequence of float): FGSM step sizes in ``[0, 1]`` pixel space
                    (``--fgsm-epsilons 2,8`` in grey levels: ``[2 / 255, 8 / 255]``).
        tolerance (float): pointing-game tolerance in pixels.
        batch_size (int): cases per protocol call (and images per method call).
        done (collection of str): keys already stored: their records are not yielded.
        model_name (str): stored in every record.

    Yields:
        record (dict): one per (case, epsilon, method) not in ``done``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be an nn.Module, got {type(model).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}")
    if not isinstance(methods, Mapping) or not methods:
        raise ValueError("`methods` must map names to attribute(inputs, target) functions")
    eps = tuple(float(e) for e in epsilons)
    if not eps or not all(e > 0 and math.isfinite(e) for e in eps):
        raise ValueError(f"`epsilons` must be positive, got {tuple(epsilons)}")
    grey = [grey_levels(e) for e in eps]
    if len(set(grey)) != len(grey):
        raise ValueError(f"`epsilons` must differ in grey levels of 255, got {grey}")
    cases = list(cases)
    if not cases:
        return iter(())
    shape = check_image_shapes(cases)
    for c in cases:
        if tuple(c.mask.shape) != shape[1:] or not bool(c.mask.bool().any()):
            raise ValueError(f"case {c.case_id}'s `mask` must be a non-empty {shape[1:]} mask")
        if float(c.image.min()) < lower_bound or float(c.image.max()) > upper_bound:
            raise ValueError(f"case {c.case_id}'s image must lie in [{lower_bound}, "
                             f"{upper_bound}]")  # fmt: skip
    return _fgsm_iter(cases, methods, model, eps, grey, tolerance, batch_size, done,
                      lower_bound, upper_bound, model_name)  # fmt: skip


def _fgsm_iter(
    cases: list[Case],
    methods: Mapping[str, AttributionFn],
    model: nn.Module,
    eps: tuple[float, ...],
    grey: list[float],
    tolerance: float,
    batch_size: int,
    done: Collection[str],
    lower_bound: float,
    upper_bound: float,
    model_name: str,
) -> Iterator[Record]:
    device = model_device(model)

    def r6(v: float) -> float:
        return round(float(v), 6)

    for start in range(0, len(cases), batch_size):
        batch = cases[start : start + batch_size]
        keys = {(i, e, m): fgsm_key(c.case_id, eps[e], m, c.target)
                for i, c in enumerate(batch) for e in range(len(eps)) for m in methods}  # fmt: skip
        missing = [m for m in methods if any(keys[k] not in done for k in keys if k[2] == m)]
        if not missing:
            continue
        x = torch.stack([c.image for c in batch]).to(device)
        t = torch.tensor([int(c.target) for c in batch], device=device)
        g = torch.stack([c.mask for c in batch]).to(device).bool()
        result = fgsm_protocol(model, x, t, g, {m: methods[m] for m in missing}, eps,
                               lower_bound, upper_bound, tolerance, batch_size)  # fmt: skip
        for i, case in enumerate(batch):
            clean_class = int(result.clean_class[i])
            photo = case_photo(case)
            for e in range(len(eps)):
                flipped = bool(result.kept[e, i])
                for m in missing:
                    key = keys[i, e, m]
                    if key in done:
                        continue
                    rec: Record = {
                        "key": key, "record": "fgsm", "item": case.case_id, "method": m,
                        "kind": case.kind, "split": case.split, "target": int(case.target),
                        "model": model_name, "epsilon": eps[e], "epsilon_255": grey[e],
                        "clean_class": clean_class,
                        "adversarial_class": int(result.adversarial_class[e, i]),
                        "clean_correct": clean_class == int(case.target), "flipped": flipped,
                    }  # fmt: skip
                    if photo is not None:
                        rec["photo"] = photo
                    if flipped:
                        adv, clean = result.adversarial[m], result.clean[m]
                        rec["energy_share"] = r6(adv["energy_share"][e, i])
                        rec["pointing_hit"] = bool(adv["pointing_hit"][e, i])
                        rec["rank_correlation"] = r6(adv["rank_correlation"][e, i])
                        rec["clean_energy_share"] = r6(clean["energy_share"][i])
                        rec["clean_pointing_hit"] = bool(clean["pointing_hit"][i])
                    yield rec
