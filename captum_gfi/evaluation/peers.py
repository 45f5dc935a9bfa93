"""Peer attribution methods from their own libraries, with the contract of
:func:`~captum_gfi.evaluation.methods.make_method`.

Every factory returns ``attribute(inputs, target) -> (N, 1, H, W)`` maps at input
resolution; each method is the library's own code, called as its authors call it,
not a re-implementation. They need the ``peers`` extra
(``pip install -e ".[peers]"``: ``grad-cam==1.5.7``, ``ttach``, ``torchray==1.0.0.2``).

pytorch-grad-cam 1.5.7 (``grad-cam`` on PyPI), on ``layer`` (the layer of Grad-CAM):

- ``gradcam++``: ``GradCAMPlusPlus`` (Chattopadhyay et al., 2018).
- ``scorecam``: ``ScoreCAM`` (Wang et al., 2020): one forward pass per channel of
  ``layer`` (``batch_size`` masked images per pass).
- ``layercam``: ``LayerCAM`` (Jiang et al., 2021).
- ``xgradcam``: ``XGradCAM`` (Fu et al., 2020).
- ``pgc_gradcam``: the library's own ``GradCAM``: the same method as ``gradcam``
  (Captum's ``LayerGradCam``), kept to check that the two libraries agree.

Every pytorch-grad-cam map is the library's output: ReLU, then min-max scaled to
``[0, 1]`` per image, then resized to the input with OpenCV (bilinear). The library
puts the model in eval mode for the call (its constructor calls ``model.eval()``);
here the flags are restored afterwards.

TorchRay 1.0.0.2 (on the whole model):

- ``extremal_perturbation``: ``extremal_perturbation`` (Fong et al., ICCV 2019) as
  TorchRay's attribution benchmark runs it for its VOC07 pointing table: areas
  ``(0.025, 0.05, 0.1, 0.2)``, 800 iterations, blur perturbation with 8 levels, mask
  step 7 and sigma 21, jitter, ``simple_reward`` (the target's logit), the preserve
  variant, masks resized to the input and smoothed (``smooth=0.09``); the map is the
  sum of the four masks. One image at a time.
- ``rise``: ``rise`` (Petsiuk et al., 2018) at TorchRay's defaults: 8000 random
  masks of 7 x 7 cells kept with ``p=0.5``, seed 0; TorchRay weighs each mask by the
  *sigmoid* of the target's logit (the RISE paper uses the softmax probability).
  Captum 0.9 has no RISE, so TorchRay's is the one used.

:func:`peer_passes` gives the passes through the model per image of each peer.

The model is left as found (``requires_grad``, ``training``, every ``.grad``). The
libraries hook the model for the whole call and see every forward pass, whichever thread
runs it, so peer calls run one at a time, and no other method should run on the same
model in another thread meanwhile.
"""

from __future__ import annotations

import importlib
import threading
import types
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from .._hooks import preserved_model_state

__all__ = [
    "EXTREMAL_AREAS",
    "EXTREMAL_ITERATIONS",
    "EXTREMAL_SMOOTH",
    "GRAD_CAM_METHODS",
    "INSTALL_HINT",
    "PEERS",
    "RISE_BATCH",
    "RISE_CELLS",
    "RISE_KEEP",
    "RISE_MASKS",
    "SCORECAM_BATCH",
    "TORCHRAY_METHODS",
    "PeerPasses",
    "is_peer",
    "layer_channels",
    "library",
    "make_peer",
    "peer_options",
    "peer_passes",
    "require_peers",
]

AttributionFn = Callable[[Tensor, Tensor], Tensor]

#: How to get the libraries the peers come from.
INSTALL_HINT = 'pip install -e ".[peers]"'
#: The pytorch-grad-cam peers, by name: the library's class.
GRAD_CAM_METHODS: dict[str, str] = {
    "gradcam++": "GradCAMPlusPlus",
    "scorecam": "ScoreCAM",
    "layercam": "LayerCAM",
    "xgradcam": "XGradCAM",
    "pgc_gradcam": "GradCAM",
}
#: The TorchRay peers.
TORCHRAY_METHODS: tuple[str, ...] = ("extremal_perturbation", "rise")
#: Every peer name :func:`make_peer` accepts.
PEERS: tuple[str, ...] = (*GRAD_CAM_METHODS, *TORCHRAY_METHODS)
#: TorchRay's attribution benchmark (VOC07) settings of extremal perturbation.
EXTREMAL_AREAS: tuple[float, ...] = (0.025, 0.05, 0.1, 0.2)
EXTREMAL_ITERATIONS = 800
EXTREMAL_SMOOTH = 0.09
#: TorchRay's RISE defaults.
RISE_MASKS = 8000
RISE_CELLS = 7
RISE_KEEP = 0.5
#: Masked images per forward pass of ScoreCAM (the library's default is 16) and of RISE
#: (TorchRay's default is 32); the maps do not depend on it beyond rounding.
SCORECAM_BATCH = 32
RISE_BATCH = 32


@dataclass(frozen=True)
class _Library:
    module: str  # what is imported
    distribution: str  # what pip installs
    version: str  # the pinned version


_GRAD_CAM = _Library("pytorch_grad_cam", "grad-cam", "1.5.7")
_TORCHRAY = _Library("torchray", "torchray", "1.0.0.2")


class PeerPasses(NamedTuple):
    r"""Passes of whole images through the model per image explained.

    Attributes:
        forward (int): images through the model's forward pass.
        backward (int): images through a backward pass.
        iterations (int): optimisation steps (extremal perturbation), else 0.
    """

    forward: int
    backward: int
    iterations: int = 0


def is_peer(name: str) -> bool:
    """Whether ``name`` is one of :data:`PEERS`."""
    return name in PEERS


def library(name: str) -> str:
    """``"grad-cam 1.5.7"`` or ``"torchray 1.0.0.2"``: where the peer ``name`` comes from."""
    lib = _library_of(name)
    return f"{lib.distribution} {lib.version}"


def _library_of(name: str) -> _Library:
    if name in GRAD_CAM_METHODS:
        return _GRAD_CAM
    if name in TORCHRAY_METHODS:
        return _TORCHRAY
    raise ValueError(f"`name` must be one of the peers {', '.join(PEERS)}, got {name!r}")


def peer_options(
    extremal_iterations: int | None = None, rise_masks: int | None = None
) -> dict[str, Any]:
    """The :func:`make_peer` keyword arguments of the TorchRay peers' sizes that are given
    (``max_iter``, ``num_masks``); the libraries' defaults for those left ``None``."""
    opts: dict[str, Any] = {}
    if extremal_iterations is not None:
        opts["max_iter"] = extremal_iterations
    if rise_masks is not None:
        opts["num_masks"] = rise_masks
    return opts


def require_peers(names: Sequence[str]) -> None:
    r"""
    Checks that the libraries of the peers among ``names`` are installed, so that a missing
    extra fails before any model is loaded (the other names are ignored).

    Raises:
        ImportError: Naming the peer, its pinned library and the install command
        (``pip install -e ".[peers]"``).
    """
    for name in names:
        if name in PEERS:
            _import(name, "")


def _import(name: str, submodule: str) -> Any:
    """The peer's library module, or an ImportError that says how to install it."""
    lib = _library_of(name)
    try:
        module = importlib.import_module(f"{lib.module}.{submodule}" if submodule else lib.module)
    except ImportError as err:
        raise ImportError(
            f"method {name!r} comes from {lib.distribution}=={lib.version} (module "
            f"{lib.module!r}), which is not installed: install the peers extra with "
            f"`{INSTALL_HINT}` (or `pip install 'captum-gfi[peers]'`)"
        ) from err
    try:
        found = metadata.version(lib.distribution)
    except metadata.PackageNotFoundError:
        found = None
    if found is not None and found != lib.version:
        warnings.warn(
            f"method {name!r} is pinned to {lib.distribution}=={lib.version}, found {found}; "
            f"its maps may differ (`{INSTALL_HINT}` installs the pinned version)",
            stacklevel=3,
        )
    return module


def _targets(target: Any, n: int) -> list[int]:
    """One class index per image, as plain ints."""
    if isinstance(target, Tensor):
        if target.is_floating_point() or target.dtype == torch.bool:
            raise TypeError(f"`target` must hold integer class indices, got {target.dtype}")
        values = [int(v) for v in target.reshape(-1).tolist()]
    elif isinstance(target, int) and not isinstance(target, bool):
        values = [target]
    elif isinstance(target, Sequence) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in target
    ):
        values = [int(v) for v in target]
    else:
        raise TypeError(
            f"`target` must be an int, a sequence of ints or an integer tensor, got {target!r}"
        )
    if len(values) == 1:
        values = values * n
    if len(values) != n:
        raise ValueError(f"`target` must hold one class or one per image ({n}), got {len(values)}")
    if min(values) < 0:
        raise ValueError(f"`target` must hold class indices >= 0, got {min(values)}")
    return values


def _check(inputs: Tensor, target: Any) -> list[int]:
    if not isinstance(inputs, Tensor) or inputs.dim() != 4:
        shape = tuple(inputs.shape) if isinstance(inputs, Tensor) else type(inputs).__name__
        raise ValueError(f"`inputs` must be a (N, C, H, W) tensor, got {shape}")
    return _targets(target, inputs.shape[0])


class _Checked(nn.Module):
    """``model`` whose every output is checked to hold the class ``top``: the libraries
    index the output with the target only after their work (RISE: after every mask), so
    an out-of-range target fails here, at the first forward pass, with a clear message."""

    def __init__(self, model: nn.Module, top: int) -> None:
        super().__init__()
        self.model = model
        self.top = top

    def forward(self, x: Tensor) -> Tensor:
        out = self.model(x)
        if out.dim() != 2:
            raise ValueError(
                f"the peers need a classifier returning (N, classes) logits, got {tuple(out.shape)}"
            )
        if self.top >= out.shape[1]:
            raise ValueError(
                f"`target` = {self.top} is out of range for a model output of shape "
                f"{tuple(out.shape)}: valid classes 0 to {out.shape[1] - 1}"
            )
        return out


# The libraries' hooks and patches see every forward pass of the model, whichever thread
# runs it: peer calls run one at a time.
_peer_lock = threading.RLock()


@contextmanager
def _model_kept(model: nn.Module) -> Iterator[None]:
    """One peer call at a time; parameters frozen for the call; ``requires_grad``,
    ``training`` and every parameter's ``.grad`` as found afterwards (pytorch-grad-cam
    calls ``model.eval()`` and ``model.zero_grad()``, TorchRay freezes the parameters and
    leaves them so)."""
    with _peer_lock:
        grads = [(p, p.grad) for p in model.parameters()]
        try:
            with preserved_model_state([model]):
                yield
        finally:
            for p, g in grads:
                p.grad = g


@contextmanager
def _quiet_scorecam(score_cam_module: Any) -> Iterator[None]:
    """pytorch-grad-cam's ScoreCAM draws a tqdm progress bar per batch of masked images:
    silenced for the call (under :func:`_model_kept`'s lock)."""
    saved = score_cam_module.tqdm
    score_cam_module.tqdm = types.SimpleNamespace(tqdm=lambda iterable, **kwargs: iterable)
    try:
        yield
    finally:
        score_cam_module.tqdm = saved


def _grad_cam(
    name: str, model: nn.Module, layer: nn.Module | None, batch_size: int
) -> AttributionFn:
    if layer is None:
        raise ValueError(f"`layer` is required by method {name!r} (the layer of Grad-CAM)")
    if not isinstance(layer, nn.Module):
        raise TypeError(f"`layer` must be an nn.Module, got {type(layer).__name__}")
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}")
    cam_class = getattr(_import(name, ""), GRAD_CAM_METHODS[name])
    targets_module = _import(name, "utils.model_targets")
    score_cam_module = _import(name, "score_cam") if name == "scorecam" else None
    uses_gradients = name != "scorecam"

    def attribute(inputs: Tensor, target: Tensor) -> Tensor:
        classes = _check(inputs, target)
        x = inputs.detach()
        if uses_gradients:  # the parameters are frozen: gradients flow from the inputs
            x = x.clone().requires_grad_(True)
        # the gradient CAMs backpropagate even when called under no_grad (Captum's
        # max-sensitivity explains the perturbed inputs there)
        with _model_kept(model), torch.set_grad_enabled(uses_gradients or torch.is_grad_enabled()):
            cam = cam_class(model=_Checked(model, max(classes)), target_layers=[layer])
            try:
                cam.batch_size = batch_size
                cam_targets = [targets_module.ClassifierOutputTarget(c) for c in classes]
                try:
                    if score_cam_module is not None:
                        with _quiet_scorecam(score_cam_module):
                            maps = cam(input_tensor=x, targets=cam_targets)
                    else:
                        maps = cam(input_tensor=x, targets=cam_targets)
                except (IndexError, TypeError, AttributeError) as err:
                    if cam.activations_and_grads.activations:
                        raise
                    raise ValueError(
                        f"`layer` ({type(layer).__name__}) did not run in the model's forward "
                        f"pass, so {name!r} has no activations: pass a layer of the model"
                    ) from err
            finally:
                cam.activations_and_grads.release()
        return torch.from_numpy(maps).unsqueeze(1).to(inputs.device)

    return attribute


def _extremal(
    model: nn.Module, max_iter: int, areas: Sequence[float], smooth: float
) -> AttributionFn:
    if max_iter < 1:
        raise ValueError(f"`max_iter` must be >= 1, got {max_iter}")
    if not areas or not all(0 < a < 1 for a in areas):
        raise ValueError(f"`areas` must be fractions in (0, 1), got {areas!r}")
    ep = _import("extremal_perturbation", "attribution.extremal_perturbation")

    def attribute(inputs: Tensor, target: Tensor) -> Tensor:
        classes = _check(inputs, target)
        out = []
        # its optimisation needs gradients even when called under no_grad (Captum's
        # max-sensitivity explains the perturbed inputs there)
        with _model_kept(model), torch.enable_grad():
            for i, c in enumerate(classes):
                masks, _ = ep.extremal_perturbation(
                    _Checked(model, c),
                    inputs[i : i + 1].detach(),
                    c,
                    areas=list(areas),
                    perturbation=ep.BLUR_PERTURBATION,
                    max_iter=max_iter,
                    num_levels=8,
                    step=7,
                    sigma=21,
                    jitter=True,
                    variant=ep.PRESERVE_VARIANT,
                    reward_func=ep.simple_reward,
                    resize=True,
                    smooth=smooth,
                )
                out.append(masks.sum(0, keepdim=True))
        return torch.cat(out).detach()

    return attribute


def _rise(model: nn.Module, num_masks: int, batch_size: int, seed: int) -> AttributionFn:
    if num_masks < 1 or batch_size < 1:
        raise ValueError(
            f"`num_masks` and `batch_size` must be >= 1, got {num_masks} and {batch_size}"
        )
    rise = _import("rise", "attribution.rise")

    def attribute(inputs: Tensor, target: Tensor) -> Tensor:
        classes = _check(inputs, target)
        devices = [inputs.device] if inputs.device.type == "cuda" else []
        out = []
        # TorchRay seeds the global generators and restores only the CPU one
        with _model_kept(model), torch.random.fork_rng(devices=devices):
            for i, c in enumerate(classes):  # one image at a time: (1, classes, H, W) each
                sal = rise.rise(
                    _Checked(model, c),
                    inputs[i : i + 1].detach(),
                    seed=seed,
                    num_masks=num_masks,
                    num_cells=RISE_CELLS,
                    batch_size=batch_size,
                    p=RISE_KEEP,
                )
                out.append(sal[:, c : c + 1])
        return torch.cat(out)

    return attribute


def make_peer(
    name: str,
    model: nn.Module,
    layer: nn.Module | None = None,
    *,
    batch_size: int | None = None,
    max_iter: int = EXTREMAL_ITERATIONS,
    areas: Sequence[float] = EXTREMAL_AREAS,
    smooth: float = EXTREMAL_SMOOTH,
    num_masks: int = RISE_MASKS,
    seed: int = 0,
) -> AttributionFn:
    r"""
    Build the peer method called ``name`` (see the module docstring).

    Args:
        name (str): one of :data:`PEERS`.
        model (nn.Module): classifier taking ``(N, C, H, W)`` images, returning logits.
        layer (nn.Module, optional): the layer of Grad-CAM; required by the
                    pytorch-grad-cam peers, unused by TorchRay's.
        batch_size (int, optional): masked images per forward pass (ScoreCAM: 32,
                    RISE: 32).
        max_iter (int): extremal perturbation's iterations (TorchRay: 800); fewer only
                    for tests.
        areas (sequence of float): extremal perturbation's target areas.
        smooth (float): extremal perturbation's smoothing of the masks.
        num_masks (int): RISE's masks (TorchRay: 8000); fewer only for tests.
        seed (int): RISE's seed.

    Returns:
        attribute (Callable): ``attribute(inputs, target) -> (N, 1, H, W)``.

    Raises:
        ImportError: the peer's library is not installed (install the ``peers`` extra).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be an nn.Module, got {type(model).__name__}")
    if name in GRAD_CAM_METHODS:
        return _grad_cam(name, model, layer, SCORECAM_BATCH if batch_size is None else batch_size)
    if name == "extremal_perturbation":
        return _extremal(model, max_iter, areas, smooth)
    if name == "rise":
        return _rise(model, num_masks, RISE_BATCH if batch_size is None else batch_size, seed)
    raise ValueError(f"`name` must be one of the peers {', '.join(PEERS)}, got {name!r}")


def layer_channels(model: nn.Module, layer: nn.Module, inputs: Tensor) -> int:
    """Channels of ``layer``'s output on ``inputs`` (one forward pass of one image)."""
    found: list[int] = []

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        if not found and isinstance(output, Tensor):
            found.append(int(output.shape[1]))

    handle = layer.register_forward_hook(hook)
    try:
        with torch.no_grad():
            model(inputs[:1])
    finally:
        handle.remove()
    if not found:
        raise ValueError("`layer` did not run in a forward pass of `model`")
    return found[0]


def peer_passes(
    name: str,
    *,
    channels: int | None = None,
    max_iter: int = EXTREMAL_ITERATIONS,
    areas: Sequence[float] = EXTREMAL_AREAS,
    num_masks: int = RISE_MASKS,
) -> PeerPasses:
    r"""
    Images through the model per image explained by the peer ``name``.

    - the gradient CAMs: 1 forward + 1 backward;
    - ``scorecam``: 1 forward for the activations + one per channel of ``layer``
      (:func:`layer_channels`), no backward;
    - ``rise``: 1 forward (TorchRay reads the number of classes) + ``num_masks``;
    - ``extremal_perturbation``: ``max_iter`` steps of ``len(areas)`` masked images,
      forward and backward.

    Args:
        name (str): one of :data:`PEERS`.
        channels (int, optional): channels of the CAM layer; required by ``scorecam``.

    Returns:
        passes (PeerPasses)
    """
    _library_of(name)
    if name == "scorecam":
        if channels is None or channels < 1:
            raise ValueError("`channels` (of the CAM layer) is required by 'scorecam'")
        return PeerPasses(1 + channels, 0)
    if name in GRAD_CAM_METHODS:
        return PeerPasses(1, 1)
    if name == "rise":
        return PeerPasses(1 + num_masks, 0)
    k = len(areas)
    return PeerPasses(max_iter * k, max_iter * k, max_iter)
