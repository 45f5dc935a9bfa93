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

**Steps of the benchmark.** :func:`cascade_steps` groups a classifier's layers into the
block-level cascade of Adebayo et al. (the logits first, then the head, then one stage of
blocks at a time, the stem last) for any network built of ``nn.Sequential`` /
``nn.ModuleList`` containers of blocks (EfficientNet-Lite, torchvision's ResNets, VGGs and
MobileNets, the toy net); :func:`sanity_records` runs the test on benchmark cases and
yields one JSON record per (case, method) for the record store of ``captum-gfi evaluate``
(:mod:`~captum_gfi.evaluation.records`).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .._hooks import preserved_model_state
from .cases import Case, case_photo, check_image_shapes, model_device
from .methods import is_method, make_method, resolve_module
from .peers import is_peer, make_peer
from .rank_correlation import spearman
from .records import Record, record_key

__all__ = [
    "PASS_THRESHOLD",
    "MethodFactory",
    "RandomizationResult",
    "cascade_steps",
    "cascading_randomization",
    "method_factory",
    "sanity_key",
    "sanity_records",
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


# --------------------------------------------------------------------------- block cascade

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def _has_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def _units(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The blocks of ``model``: its children with parameters, containers expanded."""

    def expand(module: nn.Module, prefix: str) -> list[tuple[str, nn.Module]]:
        found: list[tuple[str, nn.Module]] = []
        for name, child in module.named_children():
            if not _has_parameters(child):
                continue
            if isinstance(child, _CONTAINERS):
                found += expand(child, f"{prefix}{name}.")
            else:
                found.append((f"{prefix}{name}", child))
        return found

    units = expand(model, "")
    # a wrapper (Normalize around the network, say): expand its one child
    while len(units) == 1 and any(_has_parameters(c) for c in units[0][1].children()):
        name, only = units[0]
        units = expand(only, f"{name}.")
    return units


def _output_shape(output: Any) -> tuple[int, ...] | None:
    if isinstance(output, Tensor):
        return tuple(output.shape[1:])
    if isinstance(output, (tuple, list)):
        for item in output:
            if isinstance(item, Tensor):
                return tuple(item.shape[1:])
    return None


def cascade_steps(
    model: nn.Module, inputs: Tensor, max_steps: int | None = None
) -> list[list[str]]:
    r"""
    The block-level cascade of Adebayo et al.: steps of module names, top first.

    The *blocks* are the model's children that hold parameters, with every
    ``nn.Sequential``, ``nn.ModuleList`` and ``nn.ModuleDict`` expanded into its own
    children (and a wrapper with a single such child, e.g.
    :class:`~captum_gfi.demo.models.Normalize`, into that child's). One forward pass of
    ``inputs[:1]`` (in eval mode, without gradients; the model's flags are restored)
    orders them and gives each its output shape. Consecutive blocks with a 4-D output
    (``(N, C, H, W)``) of the same shape form one step (a stage of blocks; the head's
    convolution and its BatchNorm; the stem); a block with another output (the
    classifier's linear layers) is a step of its own. Steps are listed from the last one
    run (the logits) to the first (the stem), and a step's names top first.

    For EfficientNet-Lite (behind ``Normalize``): ``model._fc``; ``model._bn1`` +
    ``model._conv_head``; then the stages of ``model._blocks`` (blocks with the same
    output shape), from block 15 down to block 0; ``model._bn0`` + ``model._conv_stem``
    last. For a torchvision ResNet: ``fc``, ``layer4.1`` + ``layer4.0``, ...,
    ``layer1.*``, ``bn1`` + ``conv1``. Parameters a module holds outside its children (a
    class token, say) are not randomised, and a stem whose output has the shape of the
    first stage's joins that stage.

    Args:
        model (nn.Module): the classifier.
        inputs (Tensor): images it takes (the first one is run).
        max_steps (int, optional): keep the first (top) this many steps.

    Returns:
        steps (list of list of str): for
        :func:`cascading_randomization`'s ``layers``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be an nn.Module, got {type(model).__name__}")
    if not isinstance(inputs, Tensor) or inputs.dim() < 2 or inputs.shape[0] < 1:
        raise ValueError("`inputs` must be a batch of at least one image, (N, C, H, W)")
    if max_steps is not None and (
        isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1
    ):
        raise ValueError(f"`max_steps` must be a positive int or None, got {max_steps!r}")
    units = _units(model)
    if not units:
        raise ValueError("`model` has no sub-module with parameters to randomise")
    order: dict[str, int] = {}
    shapes: dict[str, tuple[int, ...] | None] = {}
    handles = []
    for name, module in units:

        def pre(module: nn.Module, args: Any, name: str = name) -> None:
            order.setdefault(name, len(order))

        def post(module: nn.Module, args: Any, output: Any, name: str = name) -> None:
            shapes.setdefault(name, _output_shape(output))

        handles.append(module.register_forward_pre_hook(pre))
        handles.append(module.register_forward_hook(post))
    try:
        with preserved_model_state([model]), torch.no_grad():
            model.eval()
            model(inputs[:1])
    finally:
        for handle in handles:
            handle.remove()
    groups: list[list[str]] = []
    previous: tuple[int, ...] | None = None
    for name in sorted(order, key=order.__getitem__):
        shape = shapes.get(name)
        if shape is not None and len(shape) == 3 and shape == previous and groups:
            groups[-1].append(name)
        else:
            groups.append([name])
        previous = shape if shape is not None and len(shape) == 3 else None
    steps = [group[::-1] for group in groups[::-1]]
    return steps if max_steps is None else steps[:max_steps]


# --------------------------------------------------------------------------- records


def sanity_key(case_id: str, method: str, target: int) -> str:
    """The record key of the randomisation test of ``method`` on a case:
    ``record_key(case_id, "sanity:" + method, target)``."""
    return record_key(case_id, f"sanity:{method}", target)


def _module_path(model: nn.Module, layer: str | nn.Module | None, argument: str) -> str | None:
    if layer is None:
        return None
    if isinstance(layer, str):
        resolve_module(model, layer)
        return layer
    if isinstance(layer, nn.Module):
        for name, module in model.named_modules():
            if module is layer:
                return name
        raise ValueError(f"`{argument}` is not a sub-module of `model`; pass one of its layers")
    raise TypeError(f"`{argument}` must be a dotted module path or an nn.Module, got {layer!r}")


def sanity_records(
    cases: Sequence[Case],
    methods: Sequence[str],
    model: nn.Module,
    layer: str | nn.Module | None = None,
    inversion_layer: str | nn.Module | None = None,
    steps: Sequence[str | Sequence[str]] | None = None,
    *,
    max_steps: int | None = None,
    seed: int = 0,
    batch_size: int = 8,
    threshold: float = PASS_THRESHOLD,
    done: Collection[str] = frozenset(),
    model_name: str = "",
    peer_options: Mapping[str, Any] | None = None,
) -> Iterator[Record]:
    r"""
    The cascading randomisation test on benchmark cases: one record per (case, method).

    The cases are taken in fixed batches of ``batch_size`` (in the given order) and each
    method runs :func:`cascading_randomization` once per batch on the cases' images and
    targets; a batch is skipped when every record of the method in it is in ``done``, and
    recomputed whole otherwise (only the missing records are yielded), so a resumed run
    sees the batches of the first one. The randomised weights depend on ``seed`` and the
    step only: every method and batch meets the same randomised models.

    Every record (a JSON-serialisable dict) holds ``key`` (:func:`sanity_key`),
    ``record`` (``"sanity"``), ``item`` (the case id), ``method``, ``kind``, ``split``,
    ``target``, ``model`` (``model_name``), ``photo`` (when the case's ``source`` names
    one), ``steps`` (the step names, ``+``-joined), per step ``spearman`` and
    ``spearman_abs`` (rounded to 6 decimals) and ``constant_map`` (the randomised map
    was constant), ``final`` (``spearman_abs`` after the last step), ``passed``
    (``final < threshold``: this case's verdict; a method's verdict is the mean of
    ``final`` over cases, the module's rule), ``threshold``, ``seed`` and ``seconds``
    (wall seconds per case of the batch's test).

    Args:
        cases (sequence): cases with ``case_id``, ``kind``, ``split``, ``image``
                    ``(C, H, W)`` and ``target`` (and optionally ``source``), all of one
                    image size.
        methods (sequence of str): names of
                    :func:`~captum_gfi.evaluation.methods.make_method` or peers.
        model (nn.Module): the trained classifier (left untouched: copies are randomised).
        layer, inversion_layer (str or nn.Module, optional): GFI's and the CAMs' layers,
                    as dotted paths or as sub-modules of ``model``.
        steps (sequence, optional): the cascade (see :func:`cascading_randomization`'s
                    ``layers``); default :func:`cascade_steps` of ``model``.
        max_steps (int, optional): keep the first this many steps of the default cascade.
        seed (int): seed of the random weights.
        batch_size (int): cases per test call.
        threshold (float): the pass threshold.
        done (collection of str): keys already stored: their records are not yielded.
        model_name (str): stored in every record.
        peer_options (Mapping, optional): keyword arguments of ``make_peer`` for the peers.

    Yields:
        record (dict): one per (case, method) not in ``done``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be an nn.Module, got {type(model).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}")
    if not 0 < threshold <= 1:
        raise ValueError(f"`threshold` must be in (0, 1], got {threshold}")
    if isinstance(methods, str) or not methods:
        raise ValueError(f"`methods` must be a non-empty sequence of names, got {methods!r}")
    cases = list(cases)
    if not cases:
        return iter(())
    check_image_shapes(cases)
    layer_path = _module_path(model, layer, "layer")
    inversion_path = _module_path(model, inversion_layer, "inversion_layer")
    options = dict(peer_options or {})
    factories = {
        m: method_factory(m, layer_path, inversion_path, **(options if is_peer(m) else {}))
        for m in dict.fromkeys(methods)
    }
    device = model_device(model)
    if steps is None:
        steps = cascade_steps(model, cases[0].image[None].to(device), max_steps)
    elif max_steps is not None:
        raise ValueError("`max_steps` cuts the default cascade; cut the given `steps` instead")
    names = ["+".join((step,) if isinstance(step, str) else tuple(step)) for step in steps]
    for step in steps:
        for name in (step,) if isinstance(step, str) else step:
            resolve_module(model, name)
    return _sanity_iter(cases, factories, model, steps, names, seed, batch_size, threshold,
                        done, model_name, device)  # fmt: skip


def _sanity_iter(
    cases: list[Case],
    factories: Mapping[str, MethodFactory],
    model: nn.Module,
    steps: Sequence[str | Sequence[str]],
    names: list[str],
    seed: int,
    batch_size: int,
    threshold: float,
    done: Collection[str],
    model_name: str,
    device: torch.device,
) -> Iterator[Record]:
    for start in range(0, len(cases), batch_size):
        batch = cases[start : start + batch_size]
        for method, factory in factories.items():
            keys = [sanity_key(c.case_id, method, c.target) for c in batch]
            if all(k in done for k in keys):
                continue
            x = torch.stack([c.image for c in batch]).to(device)
            t = torch.tensor([int(c.target) for c in batch], device=device)
            t0 = time.perf_counter()
            result = cascading_randomization(
                model, factory, x, t, steps, seed=seed, threshold=threshold
            )
            seconds = (time.perf_counter() - t0) / len(batch)
            for i, (case, key) in enumerate(zip(batch, keys)):
                if key in done:
                    continue
                final = float(result.spearman_abs[-1, i])
                rec: Record = {
                    "key": key, "record": "sanity", "item": case.case_id, "method": method,
                    "kind": case.kind, "split": case.split, "target": int(case.target),
                    "model": model_name, "steps": names,
                    "spearman": [round(float(v), 6) for v in result.spearman[:, i]],
                    "spearman_abs": [round(float(v), 6) for v in result.spearman_abs[:, i]],
                    "constant_map": [bool(v) for v in result.constant[:, i]],
                    "final": round(final, 6), "passed": bool(final < threshold),
                    "threshold": threshold, "seed": seed, "seconds": seconds,
                }  # fmt: skip
                photo = case_photo(case)
                if photo is not None:
                    rec["photo"] = photo
                yield rec
