"""Cascading model-parameter randomisation (Adebayo et al., "Sanity checks for
saliency maps", NeurIPS 2018; Quantus' MPRT).

An explanation that survives the randomisation of the model's weights explains the
image, not the model. :func:`cascading_randomization` deep-copies the model (the
caller's model is never touched), computes the method's maps with the trained
weights, then randomises the layers one at a time from the top (the logits) down,
cumulatively, and after every step compares the new maps with the trained ones:

- ``spearman``: Spearman's rank correlation of the signed maps;
- ``spearman_abs``: the same of their absolute values (Adebayo et al. report both);
- ``ssim`` (optional, ``ssim=True``): SSIM of the absolute maps, each scaled to
  ``[0, 1]`` by its maximum (scikit-image's ``structural_similarity``, as Adebayo
  et al.).

A layer is randomised by its own ``reset_parameters()`` where it defines one
(PyTorch's default initialisation, as Quantus' MPRT; BatchNorm also resets its
running statistics); a parameter of a module without ``reset_parameters`` is redrawn
from a normal distribution with the trained tensor's mean and standard deviation.
Step ``k`` draws from seed ``seed + k``, so every method meets the same randomised
models; the global random generators are left as found.

Quantus' MPRT (0.6) is not used: it takes numpy batches and a Quantus model wrapper,
randomises in place a model it copies itself, and returns one similarity per layer and
image without the trained maps; this module keeps the method factory of the benchmark
(a method is rebuilt on the randomised copy) and reports the maps' rank correlation.

**Pass/fail rule.** A method *passes* when the mean over images of ``spearman_abs``
after the last step (every listed layer randomised) is below ``threshold`` (0.5): its
maps no longer rank the pixels as the trained model's maps do. A method whose maps stay
similar fails. :attr:`RandomizationResult.mean_curve` (the mean over steps) measures how
fast a method decorrelates, to compare methods on the same layers: lower is faster.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .methods import is_method, make_method, resolve_module
from .peers import is_peer, make_peer
from .rank_correlation import spearman

__all__ = [
    "PASS_THRESHOLD",
    "MethodFactory",
    "RandomizationResult",
    "cascading_randomization",
    "method_factory",
    "top_down_layers",
]

AttributionFn = Callable[[Tensor, Tensor], Tensor]
#: Builds the method on a model (the randomised copy): ``factory(model) -> attribute``.
MethodFactory = Callable[[nn.Module], AttributionFn]
#: The mean ``spearman_abs`` after the last step below which a method passes.
PASS_THRESHOLD = 0.5
_METRICS = ("spearman", "spearman_abs", "ssim")


@dataclass(frozen=True)
class RandomizationResult:
    r"""
    Similarity of the maps of the trained and the cumulatively randomised model.

    Attributes:
        layers (tuple of str): the steps, in order (top first), the names of a step's
                    modules joined by ``+``; after step ``k``, ``layers[:k + 1]`` are
                    randomised.
        spearman (np.ndarray): ``(L, N)`` rank correlation of the signed maps.
        spearman_abs (np.ndarray): ``(L, N)`` rank correlation of the absolute maps.
        ssim (np.ndarray or None): ``(L, N)`` SSIM of the scaled absolute maps.
        constant (np.ndarray): ``(L, N)`` bool: the randomised map was constant.
        threshold (float): the pass threshold of the rule.
    """

    layers: tuple[str, ...]
    spearman: np.ndarray
    spearman_abs: np.ndarray
    ssim: np.ndarray | None
    constant: np.ndarray
    threshold: float = PASS_THRESHOLD

    def mean(self, metric: str = "spearman_abs") -> np.ndarray:
        """Mean over images after every step, ``(L,)``."""
        values = getattr(self, metric, None) if metric in _METRICS else None
        if values is None:
            raise ValueError(
                f"`metric` must be spearman, spearman_abs or ssim (if computed), got {metric!r}"
            )
        return np.asarray(values).mean(1)

    @property
    def final(self) -> float:
        """Mean ``spearman_abs`` with every listed layer randomised."""
        return float(self.mean()[-1])

    @property
    def mean_curve(self) -> float:
        """Mean ``spearman_abs`` over the steps (lower: decorrelates faster)."""
        return float(self.mean().mean())

    @property
    def passed(self) -> bool:
        """The rule of the module docstring: :attr:`final` < :attr:`threshold`."""
        return self.final < self.threshold

    def rows(self) -> list[dict[str, Any]]:
        """One JSON-serialisable row per step: layer, means (and SSIM's if computed)."""
        out = []
        for k, name in enumerate(self.layers):
            row: dict[str, Any] = {
                "step": k + 1,
                "layer": name,
                "spearman": float(self.spearman[k].mean()),
                "spearman_abs": float(self.spearman_abs[k].mean()),
                "constant_maps": int(self.constant[k].sum()),
            }
            if self.ssim is not None:
                row["ssim"] = float(self.ssim[k].mean())
            out.append(row)
        return out


def method_factory(
    name: str,
    layer: str | None = None,
    inversion_layer: str | None = None,
    **peer_options: Any,
) -> MethodFactory:
    r"""
    A :data:`MethodFactory` for a method of
    :func:`~captum_gfi.evaluation.methods.make_method` or a peer of
    :func:`~captum_gfi.evaluation.peers.make_peer`, whose layers are given by their dotted
    paths (found again in every copy).

    Args:
        name (str): the method's name.
        layer (str, optional): path of the layer of GFI and the CAMs.
        inversion_layer (str, optional): path of GFI's ``l0``.
        **peer_options: keyword arguments of ``make_peer`` (a peer only).
    """
    peer = is_peer(name)
    if peer_options and not peer:
        raise ValueError(f"options {sorted(peer_options)} are for the peers, not {name!r}")
    if not peer and not is_method(name):
        raise ValueError(f"`name` must be a method of make_method or a peer, got {name!r}")

    def factory(model: nn.Module) -> AttributionFn:
        found = None if layer is None else resolve_module(model, layer)
        if peer:
            return make_peer(name, model, found, **peer_options)
        inversion = None if inversion_layer is None else resolve_module(model, inversion_layer)
        return make_method(name, model, found, inversion)

    return factory


def top_down_layers(model: nn.Module, inputs: Tensor) -> list[str]:
    r"""
    The modules that hold parameters of their own, from the last one a forward pass
    runs (the logits) to the first: the default cascade.

    Args:
        model (nn.Module): the classifier.
        inputs (Tensor): images it takes (one is run, without gradients).

    Returns:
        names (list of str): dotted module names, top first.
    """
    order: list[str] = []
    handles = []
    for name, module in model.named_modules():
        if any(True for _ in module.parameters(recurse=False)):

            def hook(module: nn.Module, args: Any, output: Any, name: str = name) -> None:
                if name not in order:
                    order.append(name)

            handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(inputs[:1])
    finally:
        for handle in handles:
            handle.remove()
    return order[::-1]


def _randomize(module: nn.Module) -> None:
    for sub in module.modules():
        own = list(sub.parameters(recurse=False))
        if not own:
            continue
        reset = getattr(sub, "reset_parameters", None)
        if callable(reset):
            reset()
            continue
        with torch.no_grad():
            for p in own:
                std = float(p.std()) if p.numel() > 1 else 0.0
                p.normal_(float(p.mean()), std if std > 0 else 1.0)


def _ssim(first: Tensor, second: Tensor) -> np.ndarray:
    try:
        from skimage.metrics import structural_similarity
    except ImportError as err:
        raise ImportError(
            "ssim=True needs scikit-image: `pip install scikit-image` (in the demo extra, "
            '`pip install -e ".[demo]"`)'
        ) from err

    def scaled(maps: Tensor) -> np.ndarray:
        a = maps.detach().abs().flatten(2).cpu().double()
        top = a.amax(2, keepdim=True)
        a = torch.where(top > 0, a / top.clamp(min=1e-300), a)
        return a.reshape(maps.shape[0], -1, *maps.shape[-2:]).sum(1).clamp(max=1).numpy()

    a, b = scaled(first), scaled(second)
    return np.array([structural_similarity(a[i], b[i], data_range=1.0) for i in range(len(a))])


def _constant(maps: Tensor) -> Tensor:
    flat = maps.detach().flatten(1)
    return (flat == flat[:, :1]).all(1).cpu()


def cascading_randomization(
    model: nn.Module,
    method: MethodFactory,
    inputs: Tensor,
    target: Tensor,
    layers: Sequence[str | Sequence[str]] | None = None,
    ssim: bool = False,
    seed: int = 0,
    threshold: float = PASS_THRESHOLD,
) -> RandomizationResult:
    r"""
    Cascading model-parameter randomisation test of one method.

    Args:
        model (nn.Module): the trained classifier (left untouched: a deep copy is
                    randomised).
        method (MethodFactory): ``method(model) -> attribute(inputs, target)``, called on
                    the copy before the first and after every step (see
                    :func:`method_factory`).
        inputs (Tensor): ``(N, C, H, W)`` images.
        target (Tensor): ``(N,)`` classes explained at every step (the trained model's).
        layers (sequence, optional): the steps, top first: a module name, or a sequence
                    of names randomised together in one step (a stage of blocks); each
                    module with all its sub-modules; default :func:`top_down_layers`
                    (one step per module with parameters).
        ssim (bool): also compute the SSIM of the absolute maps (needs scikit-image).
        seed (int): seed of the random weights.
        threshold (float): pass threshold of the rule (module docstring).

    Returns:
        result (RandomizationResult)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be an nn.Module, got {type(model).__name__}")
    if not callable(method):
        raise TypeError("`method` must be a callable factory(model) -> attribute")
    if not isinstance(inputs, Tensor) or inputs.dim() != 4:
        raise ValueError("`inputs` must be a (N, C, H, W) tensor")
    if not 0 < threshold <= 1:
        raise ValueError(f"`threshold` must be in (0, 1], got {threshold}")
    steps: list[tuple[str, ...]] = [
        (step,) if isinstance(step, str) else tuple(step)
        for step in (layers if layers is not None else top_down_layers(model, inputs))
    ]
    if not steps or not all(steps):
        raise ValueError("`layers` must name at least one module in every step")
    flat_names = [name for step in steps for name in step]
    if len(set(flat_names)) != len(flat_names):
        raise ValueError(f"`layers` must not repeat a module, got {flat_names}")
    randomised = copy.deepcopy(model)
    modules = [[resolve_module(randomised, name) for name in step] for step in steps]

    trained = method(randomised)(inputs, target).detach()
    rho, rho_abs, sim, flat = [], [], [], []
    devices = [inputs.device] if inputs.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        for k, group in enumerate(modules):
            torch.manual_seed(seed + k)  # the same weights whichever method runs
            for module in group:
                _randomize(module)
            maps = method(randomised)(inputs, target).detach()
            rho.append(spearman(trained, maps).numpy())
            rho_abs.append(spearman(trained.abs(), maps.abs()).numpy())
            flat.append(_constant(maps).numpy())
            if ssim:
                sim.append(_ssim(trained, maps))
    return RandomizationResult(
        layers=tuple("+".join(step) for step in steps),
        spearman=np.stack(rho),
        spearman_abs=np.stack(rho_abs),
        ssim=np.stack(sim) if ssim else None,
        constant=np.stack(flat),
        threshold=threshold,
    )
