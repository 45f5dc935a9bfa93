"""Name -> attribution method factory: the one place that configures each baseline.

Every factory takes the same ``(model, layer, inversion_layer)`` and returns
``attribute(inputs, target) -> (N, 1, H, W)`` maps at input resolution, so
every method goes through the same evaluation pipeline. ``captum-gfi explain``
(its Grad-CAM and IG panels), ``captum-gfi bench`` (its ``gradcam``, ``ig`` and
``occlusion`` rows) and ``captum-gfi evaluate`` all build the baselines here, so
"Grad-CAM" means one configuration everywhere. The configurations are those the
committed evaluation records were computed with, so those records stay
reproducible:

- ``gfi``: Guided Feature Inversion mask in ``[0, 1]`` with the paper's
  setting (10 inversion + 70 target steps, seed 0).
- ``gfi:<setting>``: GFI with a named setting of
  ``GuidedFeatureInversion.attribute(..., setting=<setting>)``;
  ``gfi:paper`` is ``gfi``.
- ``gradcam``: Captum ``LayerGradCam`` on ``layer`` with ReLU, upsampled
  bilinearly to the input size.
- ``ig``: ``IntegratedGradients`` (black baseline, :data:`IG_STEPS` = 32
  steps, internal batches of :data:`IG_INTERNAL_BATCH_SIZE` = 32), absolute value
  of the sum over channels; ``ig_steps`` overrides the steps (quick runs).
- ``saliency``: gradient magnitude, max over channels (Simonyan et al.).
- ``guided_backprop``: ``GuidedBackprop``, absolute value summed over channels.
- ``occlusion``: ``Occlusion`` with square patches of zeros (black) whose side
  is ``input side / 7`` (32 px at 224, so 13 x 13 = 169 positions), stride half
  the side, summed over channels (signed: positive = evidence for the class).
  Coarser than Zeiler & Fergus' sliding window so that it stays affordable in
  a benchmark (one forward pass per position).
- ``center``: a centred Gaussian, ``exp(-d^2 / (2 sigma^2))`` with
  ``sigma = CENTER_SIGMA * side`` (``d`` the distance to the image centre),
  identical for every image and class: the "center" baseline of the pointing
  game (TorchRay; Zhang et al.), whose maximum is the central pixel, spread
  out so that map-based metrics (energy share, top-k, WSOL, insertion and
  deletion) get a map too. It uses neither the model nor the image content.
- the peers of :mod:`~captum_gfi.evaluation.peers` (``gradcam++``, ``scorecam``,
  ``layercam``, ``xgradcam``, ``pgc_gradcam``, ``extremal_perturbation``, ``rise``):
  pytorch-grad-cam's and TorchRay's own code at their authors' settings
  (:func:`~captum_gfi.evaluation.peers.make_peer`'s defaults; the ``peers`` extra).

Every method takes a batch of ``N`` images and ``N`` targets in one call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from captum.attr import (
    GuidedBackprop,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    Occlusion,
    Saliency,
)
from torch import Tensor, nn

from .peers import PEERS, make_peer, peer_passes, require_peers

__all__ = [
    "CENTER_SIGMA",
    "GFI_PAPER_SETTING",
    "IG_INTERNAL_BATCH_SIZE",
    "IG_STEPS",
    "METHODS",
    "OCCLUSION_PER_EVAL",
    "OCCLUSION_WINDOW",
    "AttributionFn",
    "center_map",
    "check_methods",
    "is_method",
    "make_method",
    "method_passes",
    "resolve_module",
]

AttributionFn = Callable[[Tensor, Tensor], Tensor]

#: The method names :func:`make_method` accepts, besides ``gfi:<setting>``.
METHODS: tuple[str, ...] = (
    "gfi", "gradcam", "ig", "saliency", "guided_backprop", "occlusion", "center",
)  # fmt: skip
#: Standard deviation of the ``center`` baseline, as a fraction of the image side.
CENTER_SIGMA: float = 0.25
#: Occlusion window side as a fraction of the input side (32 px at 224 px); stride = half.
OCCLUSION_WINDOW: float = 1.0 / 7.0
#: Occlusion's ``perturbations_per_eval``.
OCCLUSION_PER_EVAL: int = 16
#: IntegratedGradients' ``n_steps`` (from a black baseline).
IG_STEPS: int = 32
#: IntegratedGradients' ``internal_batch_size``.
IG_INTERNAL_BATCH_SIZE: int = 32
#: The GFI setting that ``gfi`` (without ``:<setting>``) runs.
GFI_PAPER_SETTING = "paper"


def is_method(name: str) -> bool:
    """Whether ``name`` is one of :data:`METHODS`, a peer, or ``gfi:<setting>`` (non-empty)."""
    return name in METHODS or name in PEERS or (name.startswith("gfi:") and len(name) > 4)


def check_methods(names: str | Sequence[str], argument: str = "--methods") -> list[str]:
    r"""
    Parse and validate method names.

    Args:
        names (str or sequence of str): a comma list or a sequence of names.
        argument (str): the argument named in the error message.

    Returns:
        names (list of str): the names, in order, without duplicates.

    Raises:
        ValueError: An unknown name.
        ImportError: A peer whose library is not installed (the message says how to
        install the ``peers`` extra).
    """
    items = [v.strip() for v in names.split(",")] if isinstance(names, str) else list(names)
    items = list(dict.fromkeys(v for v in items if v))
    bad = [v for v in items if not is_method(v)]
    if bad or not items:
        raise ValueError(
            f"`{argument}` must name methods among {','.join(METHODS)}, the peers "
            f"{','.join(PEERS)} or gfi:<setting>, "
            f"got {names!r}"
        )
    require_peers(items)
    return items


def center_map(inputs: Tensor, sigma: float = CENTER_SIGMA) -> Tensor:
    r"""
    The ``center`` baseline: a Gaussian centred on the image, ``(N, 1, H, W)``.

    Args:
        inputs (Tensor): ``(N, C, H, W)`` images (only the shape is used).
        sigma (float): standard deviation as a fraction of ``min(H, W)``.

    Returns:
        maps (Tensor): ``exp(-d^2 / (2 (sigma min(H, W))^2))``, ``1`` at the centre.
    """
    if sigma <= 0:
        raise ValueError(f"`sigma` must be > 0, got {sigma}")
    n, _, h, w = inputs.shape
    ys = torch.arange(h, dtype=torch.float32, device=inputs.device) - (h - 1) / 2
    xs = torch.arange(w, dtype=torch.float32, device=inputs.device) - (w - 1) / 2
    s = sigma * min(h, w)
    g = torch.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2 * s * s))
    return g.expand(n, 1, h, w).contiguous()


def _gfi(
    model: nn.Module,
    layer: nn.Module | None,
    inversion_layer: nn.Module | None,
    setting: str = GFI_PAPER_SETTING,
    gfi_options: Mapping[str, Any] | None = None,
) -> AttributionFn:
    from captum_gfi import GuidedFeatureInversion  # type: ignore[attr-defined]

    gfi = (
        GuidedFeatureInversion.from_model(model)
        if layer is None
        else GuidedFeatureInversion(model, layer, inversion_layer=inversion_layer)
    )

    # keyword arguments of GuidedFeatureInversion.attribute (steps, seed, setting fields)
    options = {"setting": setting, "show_progress": False, "seed": 0, **(gfi_options or {})}

    def attribute(inputs: Tensor, target: Tensor) -> Tensor:
        return gfi.attribute(inputs, target=target, **options).detach()

    return attribute


def make_method(
    name: str,
    model: nn.Module,
    layer: nn.Module | None = None,
    inversion_layer: nn.Module | None = None,
    gfi_options: Mapping[str, Any] | None = None,
    *,
    ig_steps: int = IG_STEPS,
    peer_options: Mapping[str, Any] | None = None,
) -> AttributionFn:
    r"""
    Build the attribution function called ``name``.

    Args:
        name (str): one of :data:`METHODS`, a peer, or ``gfi:<setting>``.
        model (nn.Module): classifier taking ``(N, C, H, W)`` images.
        layer (nn.Module, optional): the conv layer used by ``gfi`` (``l1``)
                    and ``gradcam``; required by ``gradcam``.
        inversion_layer (nn.Module, optional): ``gfi``'s ``l0``.
        gfi_options (Mapping[str, Any], optional): keyword arguments of
                    ``GuidedFeatureInversion.attribute`` for ``gfi`` and ``gfi:<setting>``,
                    e.g. ``{"target_steps": 20, "seed": 1}`` (default seed 0); an error for
                    another method.
        ig_steps (int): ``ig``'s number of steps (ignored by the other methods).
                    Default: :data:`IG_STEPS`
        peer_options (Mapping[str, Any], optional): keyword arguments of
                    :func:`~captum_gfi.evaluation.peers.make_peer` for a peer, e.g.
                    ``{"max_iter": 300}`` (extremal perturbation) or ``{"num_masks": 2000}``
                    (RISE); ignored by the other methods.
                    Default: None (the peers' own defaults)

    Returns:
        attribute (Callable): ``attribute(inputs, target) -> (N, 1, H, W)``.
    """
    if isinstance(ig_steps, bool) or not isinstance(ig_steps, int) or ig_steps < 1:
        raise ValueError(f"`ig_steps` must be a positive int, got {ig_steps!r}")
    if name == "gfi":
        return _gfi(model, layer, inversion_layer, gfi_options=gfi_options)
    if name.startswith("gfi:") and len(name) > 4:
        return _gfi(model, layer, inversion_layer, name[4:], gfi_options)
    if gfi_options:
        raise ValueError(f"gfi_options are for the gfi methods, not {name!r}")
    if name in PEERS:
        return make_peer(name, model, layer, **(peer_options or {}))
    if name == "center":

        def center(inputs: Tensor, target: Tensor) -> Tensor:
            return center_map(inputs)

        return center
    if name == "gradcam":
        if layer is None:
            raise ValueError("`layer` is required by method 'gradcam'")
        gc = LayerGradCam(model, layer)

        def gradcam(inputs: Tensor, target: Tensor) -> Tensor:
            a = gc.attribute(inputs, target=target, relu_attributions=True)
            return LayerAttribution.interpolate(a, inputs.shape[-2:], "bilinear").detach()

        return gradcam
    if name == "ig":
        ig = IntegratedGradients(model)

        def integrated_gradients(inputs: Tensor, target: Tensor) -> Tensor:
            a = ig.attribute(
                inputs,
                target=target,
                n_steps=ig_steps,
                internal_batch_size=IG_INTERNAL_BATCH_SIZE,
            )
            return a.sum(1, keepdim=True).abs().detach()

        return integrated_gradients
    if name == "saliency":
        sal = Saliency(model)

        def saliency(inputs: Tensor, target: Tensor) -> Tensor:
            a = sal.attribute(inputs, target=target, abs=True)
            return a.amax(1, keepdim=True).detach()

        return saliency
    if name == "guided_backprop":
        gbp = GuidedBackprop(model)

        def guided_backprop(inputs: Tensor, target: Tensor) -> Tensor:
            return gbp.attribute(inputs, target=target).abs().sum(1, keepdim=True).detach()

        return guided_backprop
    if name == "occlusion":
        occ = Occlusion(model)

        def occlusion(inputs: Tensor, target: Tensor) -> Tensor:
            c = inputs.shape[1]
            side = max(2, round(OCCLUSION_WINDOW * min(inputs.shape[-2:])))
            a = occ.attribute(
                inputs,
                target=target,
                sliding_window_shapes=(c, side, side),
                strides=(c, side // 2, side // 2),
                baselines=0.0,
                perturbations_per_eval=OCCLUSION_PER_EVAL,
            )
            return a.sum(1, keepdim=True).detach()

        return occlusion
    raise ValueError(f"`name` must be one of {METHODS} or gfi:<setting>, got {name!r}")


def method_passes(
    name: str,
    image_size: tuple[int, int],
    *,
    channels: int | None = None,
    ig_steps: int = IG_STEPS,
    peer_options: Mapping[str, Any] | None = None,
) -> tuple[int, int, int]:
    r"""
    Passes of whole images through the model per image explained by :func:`make_method`'s
    method ``name``: ``(forward, backward, iterations)``.

    - ``gfi:<setting>``: the setting's :attr:`~captum_gfi.settings.GFISettings.passes`
      (forward: the clean pass, stage 1's, stage 2's two images per step and the Grad-CAM
      start; backward: all but the clean pass; stage 1's stop at the inversion layer);
      iterations: both stages' steps.
    - ``gradcam``, ``saliency``, ``guided_backprop``: 1 + 1; ``ig``: ``ig_steps`` + ``ig_steps``;
      ``occlusion``: 1 + one forward per window position, no backward; ``center``: none.
    - the peers: :func:`~captum_gfi.evaluation.peers.peer_passes` (``scorecam`` needs the
      CAM layer's ``channels``).

    Args:
        name (str): A method name (:func:`check_methods`).
        image_size (tuple of int): ``(H, W)`` of the inputs (occlusion's windows).
        channels (int, optional): Channels of the CAM layer (``scorecam`` only).
        ig_steps (int): ``ig``'s steps.
        peer_options (Mapping, optional): As in :func:`make_method`.

    Returns:
        tuple[int, int, int]: ``(forward, backward, iterations)`` per image.
    """
    from captum_gfi.settings import get_setting  # type: ignore[attr-defined]

    if name == "gfi" or name.startswith("gfi:"):
        setting = get_setting(name[4:] if name.startswith("gfi:") else GFI_PAPER_SETTING)
        p = setting.passes
        return (p.clean + p.backward, p.backward,
                setting.inversion_steps + setting.target_steps)  # fmt: skip
    if name in PEERS:
        opts = dict(peer_options or {})
        kwargs = {k: opts[k] for k in ("max_iter", "areas", "num_masks") if k in opts}
        passes = peer_passes(name, channels=channels, **kwargs)
        return passes.forward, passes.backward, passes.iterations
    if name in ("gradcam", "saliency", "guided_backprop"):
        return 1, 1, 0
    if name == "ig":
        return ig_steps, ig_steps, 0
    if name == "occlusion":
        h, w = image_size
        side = max(2, round(OCCLUSION_WINDOW * min(h, w)))
        stride = side // 2
        positions = ((h - side) // stride + 1) * ((w - side) // stride + 1)
        return 1 + positions, 0, 0
    if name == "center":
        return 0, 0, 0
    raise ValueError(f"`name` must be one of {METHODS}, a peer or gfi:<setting>, got {name!r}")


def resolve_module(model: nn.Module, path: str) -> nn.Module:
    """The sub-module of ``model`` at dotted ``path`` (e.g. ``"features.28"``)."""
    try:
        return model.get_submodule(path)
    except AttributeError as err:
        raise ValueError(f"`layer` {path!r} is not a sub-module of the model") from err
