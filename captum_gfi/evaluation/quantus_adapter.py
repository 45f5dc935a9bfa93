"""Every method of the benchmark as a Quantus ``explain_func``.

`Quantus <https://github.com/understandable-machine-intelligence-lab/Quantus>`_
(``pip install -e ".[quantus]"`` in a clone, Quantus 0.6) calls
``explain_func(model=model, inputs=x_batch, targets=y_batch,
**explain_func_kwargs)`` with NumPy ``(N, C, H, W)`` inputs and ``(N,)``
targets and expects NumPy attributions back. :func:`explain_func` runs any
method of :mod:`captum_gfi.evaluation.methods` (GFI included) that way::

    import quantus
    from captum_gfi.evaluation.quantus_adapter import explain_func

    scores = quantus.PointingGame(disable_warnings=True)(
        model=model, x_batch=x, y_batch=y, a_batch=None, s_batch=masks,
        explain_func=explain_func, explain_func_kwargs={"method": "gfi"},
    )

Options of GFI go in the same dictionary, e.g. a cheaper GFI for
``quantus.MaxSensitivity``, which calls ``explain_func`` once per perturbed
sample: ``{"method": "gfi:refined", "target_steps": 5, "seed": 1}``.

NumPy 2.4 removed ``np.trapz``, which Quantus 0.6's ``calculate_auc`` (used
by Selectivity, PixelFlipping, RegionPerturbation and IROF) calls; importing
this module replaces that one function with the same trapezoidal rule on
``np.trapezoid`` (:func:`patch_quantus_auc`) when NumPy lacks ``np.trapz``.

Definitions compared with the benchmark's own metrics
(:mod:`captum_gfi.evaluation.benchmark_metrics`; checked by
``tests/test_quantus_adapter.py``):

- ``quantus.PointingGame`` has no tolerance: a hit when *any* pixel equal to
  the maximum lies in the mask. It equals our
  ``pointing_hits(..., tolerance=0)`` whenever the maximum is unique (ours
  takes the first maximum in row-major order); the benchmark reports
  TorchRay's 15 px tolerance instead.
- ``quantus.AttributionLocalisation(abs=False, positive_attributions=True)``
  is our ``energy_share`` (up to Quantus' ``1e-9`` in the denominator; its
  max-normalisation does not change a ratio). Quantus' default ``abs=True``
  takes ``|a|`` instead of the positive part: the same for the non-negative
  maps of every method but Occlusion.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch
from torch import nn

from .methods import is_method, make_method, resolve_module

__all__ = ["explain_func", "patch_quantus_auc"]


def patch_quantus_auc() -> bool:
    r"""
    Makes Quantus 0.6's ``quantus.helpers.utils.calculate_auc`` work on NumPy >= 2.4,
    which removed the ``np.trapz`` it calls: the function is replaced by the same
    composite trapezoidal rule on ``np.trapezoid`` (NumPy's new name of ``trapz``).
    Called when this module is imported; does nothing where NumPy still has
    ``np.trapz`` or Quantus is not installed.

    Returns:
        bool: whether Quantus' function is (now) the patched one.
    """
    if hasattr(np, "trapz"):
        return False
    try:
        from quantus.helpers import utils
    except ImportError:
        return False
    if getattr(utils.calculate_auc, "_captum_gfi_trapezoid", False):
        return True

    def calculate_auc(values: np.ndarray, dx: int = 1, batched: bool = False) -> np.ndarray:
        """Quantus 0.6's calculate_auc on ``np.trapezoid`` (area under the curve)."""
        return np.trapezoid(np.array(values), dx=dx, axis=1 if batched else -1)

    calculate_auc._captum_gfi_trapezoid = True  # type: ignore[attr-defined]
    utils.calculate_auc = calculate_auc
    return True


patch_quantus_auc()


def _layer(model: nn.Module, value: Any, name: str) -> nn.Module | None:
    if value is None or isinstance(value, nn.Module):
        return value
    if isinstance(value, str):
        return resolve_module(model, value)
    raise TypeError(f"`{name}` must be an nn.Module, a dotted module name or None")


def explain_func(
    model: nn.Module, inputs: np.ndarray, targets: np.ndarray, **kwargs: Any
) -> np.ndarray:
    r"""
    Attribution maps of one benchmark method, NumPy in and out (Quantus 0.6).

    Args:
        model (nn.Module): the classifier (in eval mode), taking the inputs as
                    given (e.g. ``captum_gfi.demo.models.LoadedModel.classifier``
                    for ``[0, 1]`` images).
        inputs (np.ndarray): ``(N, C, H, W)`` images.
        targets (np.ndarray): ``(N,)`` class indices (or a scalar).
        method (str, optional): a method name of the benchmark, e.g. ``"gfi"``,
                    ``"gfi:<setting>"``, ``"gradcam"``, ``"ig"``, ``"center"``.
                    Default: ``"gfi"``
        layer (nn.Module or str, optional): the conv layer of ``gfi`` and
                    ``gradcam`` (module or dotted name); default: the preset of
                    :func:`captum_gfi.presets.resolve_layers` when the
                    architecture is known.
        inversion_layer (nn.Module or str, optional): GFI's ``l0``.
        device (str or torch.device, optional): where to compute; default:
                    the model's device.
        **gfi_options: for ``gfi`` and ``gfi:<setting>``, keyword arguments of
                    ``GuidedFeatureInversion.attribute``: the steps
                    (``inversion_steps``, ``target_steps``), ``seed`` (default 0)
                    and the setting's fields it overrides (``lr``, ``gamma``,
                    ``delta``, ...), or ``setting`` itself.

    Returns:
        attributions (np.ndarray): ``(N, 1, H, W)`` float32 maps.
    """
    method = kwargs.pop("method", "gfi")
    if not isinstance(method, str) or not is_method(method):
        raise ValueError(f"`method` must be a benchmark method name, got {method!r}")
    layer = _layer(model, kwargs.pop("layer", None), "layer")
    inversion_layer = _layer(model, kwargs.pop("inversion_layer", None), "inversion_layer")
    device_arg = kwargs.pop("device", None)
    if kwargs and not method.startswith("gfi"):
        raise TypeError(
            f"explain_func got unexpected keyword arguments {sorted(kwargs)}; only the gfi "
            "methods take options"
        )
    if kwargs:  # checked before any work: GFI's own arguments only
        from captum_gfi.guided_feature_inversion import GuidedFeatureInversion

        accepted = set(inspect.signature(GuidedFeatureInversion.attribute).parameters)
        # the map is all Quantus may get back: no weights, no layer-resolution mask
        fixed = {"self", "inputs", "target", "return_weights", "return_layer_mask"}
        unknown = sorted(set(kwargs) - (accepted - fixed))
        if unknown:
            raise TypeError(
                f"explain_func got unexpected keyword arguments {unknown}; GFI takes the "
                "keyword arguments of GuidedFeatureInversion.attribute, e.g. target_steps, "
                "seed, lr"
            )
    if method == "gradcam" and layer is None:  # GFI resolves its own preset (from_model)
        from captum_gfi.presets import resolve_layers

        layer = resolve_layers(model).layer
    param = next(model.parameters(), None)
    device = torch.device(device_arg) if device_arg is not None else (
        param.device if param is not None else torch.device("cpu")
    )  # fmt: skip
    x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32, device=device)
    if x.dim() != 4:
        raise ValueError(f"`inputs` must be (N, C, H, W), got {tuple(x.shape)}")
    t = torch.as_tensor(np.asarray(targets), dtype=torch.long, device=device).reshape(-1)
    if t.numel() == 1 and x.shape[0] > 1:
        t = t.expand(x.shape[0])
    if t.numel() != x.shape[0]:
        raise ValueError(f"`targets` must hold one class per input, got {t.numel()}")
    attribute = make_method(method, model, layer, inversion_layer, gfi_options=kwargs or None)
    maps = attribute(x, t).detach()
    if maps.shape[1] != 1:
        maps = maps.sum(1, keepdim=True)
    return maps.float().cpu().numpy()
