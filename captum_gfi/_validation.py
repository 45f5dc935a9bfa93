"""Argument checks and degenerate-result warnings for ``GuidedFeatureInversion``.

A setting's fields are checked where the setting is built
(:class:`~captum_gfi.settings.GFISettings` calls the number checks here), so a bad field,
or a bad override passed to ``attribute``, fails before the model is touched.
``attribute`` checks its per-call arguments up front, once, before any hook is installed
or any forward run: a bad call fails with a ``ValueError`` or ``TypeError`` that names the
argument, the value and what is allowed. What needs the model (the target against its
output, the layers' output shapes, training-mode modules and the inputs' channels behind
any ``forward_func``) is checked in, or right after, the first (clean) forward pass. A
result that cannot be informative (a mask constant over the image) gets a
``UserWarning`` saying why and what to do.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from captum._utils.typing import TargetType
from torch import Tensor, nn

from captum_gfi.background import BACKGROUNDS, IMAGENET_MEAN
from captum_gfi.mask import INTERPOLATE_MODES
from captum_gfi.stages import STAGES

#: ``torch.Generator.manual_seed``'s range
SEED_RANGE = (-(2**63), 2**64 - 1)
#: keyword arguments of ``torch.autograd.grad`` a caller may set with ``grad_kwargs``
GRAD_KWARGS = ("retain_graph", "create_graph", "allow_unused", "materialize_grads")

# ------------------------------------------------------------------ constructor


def check_constructor(
    forward_func: Callable[..., Tensor],
    layer: nn.Module,
    inversion_layer: nn.Module | None,
    device_ids: list[int] | None,
) -> None:
    """The constructor's arguments: modules that belong to the model, no DataParallel."""
    for name, module in (("layer", layer), ("inversion_layer", inversion_layer)):
        if module is not None and not isinstance(module, nn.Module):
            raise TypeError(
                f"{name} must be a torch.nn.Module (a submodule of the model), "
                f"got {type(module).__name__}"
            )
    if not callable(forward_func):
        raise TypeError(f"forward_func must be callable, got {type(forward_func).__name__}")
    if device_ids is not None or isinstance(forward_func, nn.DataParallel):
        raise ValueError(
            "DataParallel is not supported: pass the underlying model (model.module) on one "
            "device and device_ids=None; batch the images instead"
        )
    if isinstance(forward_func, nn.Module):
        submodules = {id(m) for m in forward_func.modules()}
        for name, module in (("layer", layer), ("inversion_layer", inversion_layer)):
            if module is not None and id(module) not in submodules:
                raise ValueError(
                    f"{name} ({type(module).__name__}) is not a submodule of the model "
                    "passed as forward_func"
                )


# --------------------------------------------------------------------- inputs


def unpack_inputs(inputs: Any) -> tuple[Tensor, bool]:
    """The image batch, checked, and whether it came as a 1-tuple (Captum's metrics)."""
    is_tuple = isinstance(inputs, tuple)
    if is_tuple:
        if len(inputs) != 1:
            raise ValueError(
                f"inputs must be one image tensor (or a 1-tuple of it), got a tuple of "
                f"{len(inputs)}: models with several inputs are not supported (pass the "
                "others as additional_forward_args, or wrap the model)"
            )
        inputs = inputs[0]
    if not isinstance(inputs, Tensor):
        raise TypeError(f"inputs must be a Tensor, got {type(inputs).__name__}")
    if inputs.dim() != 4:
        extra = (
            " (1-D signals (N, C, L) are not supported; a signal can be passed as an image "
            "of height 1, inputs.unsqueeze(2), to a model that accepts it)"
            if inputs.dim() == 3
            else ""
        )
        raise ValueError(
            f"inputs must be a batch of images of shape (N, C, H, W), got shape "
            f"{tuple(inputs.shape)}{extra}"
        )
    if inputs.shape[0] == 0:
        raise ValueError("inputs is an empty batch (N = 0)")
    if 0 in inputs.shape[1:]:
        raise ValueError(f"inputs has an empty channel or spatial size: {tuple(inputs.shape)}")
    if not inputs.is_floating_point():
        raise TypeError(f"inputs must be a floating-point tensor, got {inputs.dtype}")
    if not bool(torch.isfinite(inputs).all()):
        raise ValueError("inputs contain NaN or infinite values")
    return inputs, is_tuple


# -------------------------------------------------------------------- numbers


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    return float(value)


def check_steps(name: str, value: Any, minimum: int = 0) -> None:
    """An integer count (``bool`` is not one here) of at least ``minimum``."""
    what = "a non-negative int (0 skips the stage)" if minimum == 0 else "a positive int (>= 1)"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be {what}, got {value!r}")


def check_nonnegative(name: str, value: Any, zero_means: str) -> None:
    """A finite number >= 0; ``zero_means`` says what 0 does."""
    x = _real(name, value)
    if not (math.isfinite(x) and x >= 0):
        raise ValueError(
            f"{name} must be finite and non-negative ({name} >= 0; 0 is allowed: "
            f"{zero_means}), got {value!r}"
        )


def check_lr(lr: Any, name: str = "lr") -> None:
    """Adam's learning rate: a finite number > 0; ``name`` is how the caller spells it."""
    x = _real(name, lr)
    if not (math.isfinite(x) and x > 0):
        raise ValueError(f"{name} must be positive and finite ({name} > 0), got {lr!r}")


def check_lr_for_dtype(lr: float, dtype: torch.dtype) -> None:
    """Adam's first step is lr / (1 - beta1) = 10 lr: it must be a number in ``dtype``
    (the inputs', which the weights and Adam's steps are computed in)."""
    if lr > torch.finfo(dtype).max / 10:
        raise ValueError(
            f"lr = {lr!r} is too large for {dtype} inputs (Adam's first step is 10 x lr): it "
            f"must be at most {torch.finfo(dtype).max / 10:.3g}"
        )


def check_lr_decay(lr_decay: Any) -> None:
    x = _real("lr_decay", lr_decay)
    if not 0 < x <= 1:
        raise ValueError(
            "lr_decay must be in (0, 1] (the learning rate is multiplied by it every "
            f"lr_decay_every steps; 1 = no decay), got {lr_decay!r}"
        )


def check_weight_bounds(weight_min: Any, weight_max: Any) -> None:
    """The clipping bounds of the channel weights: None or finite, ``weight_min <
    weight_max``, ``weight_max > 0``."""
    for name, value in (("weight_min", weight_min), ("weight_max", weight_max)):
        if value is None:
            continue
        x = _real(name, value)
        if not math.isfinite(x):
            raise ValueError(f"{name} must be a finite number or None (no bound), got {value!r}")
    if weight_max is not None and not weight_max > 0:
        raise ValueError(f"weight_max must be positive or None, got {weight_max!r}")
    if weight_min is not None and weight_max is not None and not weight_min < weight_max:
        raise ValueError(
            f"weight_min must be below weight_max (every channel weight is clamped to "
            f"[weight_min, weight_max] after each step), got weight_min={weight_min!r} > "
            f"weight_max={weight_max!r}"
        )


def _bounds(weight_min: float | None, weight_max: float | None) -> str:
    if weight_min == 0 and weight_max is None:
        return "finite and non-negative (the setting's weight_min = 0: w >= 0; 0 is allowed)"
    if weight_min is None and weight_max is None:
        return "finite (the setting's weights are signed and unbounded)"
    low = "-inf" if weight_min is None else f"{weight_min:g}"
    high = "inf" if weight_max is None else f"{weight_max:g}"
    return f"finite and within the setting's bounds [weight_min, weight_max] = [{low}, {high}]"


def check_init_weight(
    init_weight: Any, weight_min: float | None = 0.0, weight_max: float | None = None
) -> None:
    """A finite number, or a real tensor of them (its shape is checked later), within the
    setting's clipping bounds (the paper's w >= 0; none for signed settings)."""
    allowed = _bounds(weight_min, weight_max)
    if isinstance(init_weight, Tensor):
        if init_weight.dtype == torch.bool or init_weight.is_complex():
            raise TypeError(f"init_weight must be a real tensor, got {init_weight.dtype}")
        values = init_weight.detach()
        if not bool(torch.isfinite(values).all()):
            raise ValueError(
                f"init_weight must be {allowed}, got a tensor with NaN or infinite values"
            )
        if values.numel() and weight_min is not None and float(values.min()) < weight_min:
            raise ValueError(
                f"init_weight must be {allowed}, got a tensor with a value below weight_min "
                f"({float(values.min()):g}); pass the setting whose weights these are "
                '(e.g. setting="refined" for its own signed return_weights)'
            )
        if values.numel() and weight_max is not None and float(values.max()) > weight_max:
            raise ValueError(
                f"init_weight must be {allowed}, got a tensor with a value above weight_max "
                f"({float(values.max()):g})"
            )
        return
    x = _real("init_weight", init_weight)
    low = -math.inf if weight_min is None else weight_min
    high = math.inf if weight_max is None else weight_max
    if not (math.isfinite(x) and low <= x <= high):
        raise ValueError(f"init_weight must be {allowed}, got {init_weight!r}")


def check_init_weight_shape(init_weight: Tensor, shape: Sequence[int]) -> None:
    """A tensor ``init_weight`` must broadcast to the channel weights' shape (N, C)."""
    try:
        torch.broadcast_to(torch.empty(init_weight.shape, device="meta"), tuple(shape))
    except RuntimeError as err:
        raise ValueError(
            f"init_weight of shape {tuple(init_weight.shape)} does not broadcast to the channel "
            f"weights' shape (N, C) = {tuple(shape)}"
        ) from err


# -------------------------------------------------------------------- choices


def check_inference_mode() -> None:
    """GFI optimises its weights by gradients, which ``torch.inference_mode()`` forbids
    (``torch.enable_grad()`` cannot lift it)."""
    if torch.is_inference_mode_enabled():
        raise RuntimeError(
            "GuidedFeatureInversion.attribute cannot run inside torch.inference_mode(): it "
            "optimises the mask by gradients, which inference mode disables; call it under "
            "torch.no_grad() instead (it takes its own gradients there), or outside"
        )


def _flag(name: str, value: Any) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")


def check_call(
    inputs: Tensor,
    *,
    stage: Any,
    baseline: Any,
    normalization: Any,
    interpolate_mode: Any,
    blur_radius: Any,
    seed: Any,
    grad_kwargs: Any,
    flags: dict[str, Any],
) -> None:
    """The per-call arguments of ``attribute`` (a setting's fields check themselves, in
    :class:`~captum_gfi.settings.GFISettings`): the named choices, the background, the
    seed, ``grad_kwargs`` and the boolean switches in ``flags``."""
    for name, value in flags.items():
        _flag(name, value)
    if flags.get("return_layer_mask") and flags.get("expand_channels"):
        raise ValueError("return_layer_mask and expand_channels cannot both be True")
    if not flags.get("attr_dim_summation", True) and flags.get("expand_channels"):
        raise ValueError(
            "attr_dim_summation=False (one map per channel of layer) and expand_channels=True "
            "cannot be combined"
        )
    if not isinstance(stage, str) or stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    if not isinstance(interpolate_mode, str) or interpolate_mode not in INTERPOLATE_MODES:
        raise ValueError(
            f"interpolate_mode must be one of {INTERPOLATE_MODES}, got {interpolate_mode!r}"
        )
    check_nonnegative("blur_radius", blur_radius, "no blur")
    if seed is not None:
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
            raise TypeError(f"seed must be an int or None, got {type(seed).__name__} {seed!r}")
        if not SEED_RANGE[0] <= int(seed) <= SEED_RANGE[1]:
            raise ValueError(
                f"seed must be in [-2**63, 2**64 - 1] (torch.Generator's range), got {seed!r}"
            )
    if grad_kwargs is not None:
        if not isinstance(grad_kwargs, dict):
            raise TypeError(f"grad_kwargs must be a dict or None, got {type(grad_kwargs).__name__}")
        unknown = sorted(set(map(str, grad_kwargs)) - set(GRAD_KWARGS))
        if unknown:
            raise ValueError(
                f"grad_kwargs may set {GRAD_KWARGS} of torch.autograd.grad, got {unknown}"
            )
    check_baseline(baseline, inputs, normalization)


def check_baseline(baseline: Any, inputs: Tensor, normalization: Any) -> None:
    """A known background name, or a finite real tensor broadcastable to ``inputs``;
    ``baseline="mean"`` also needs 3 channels and a valid ``normalization``."""
    if isinstance(baseline, Tensor):
        if baseline.dtype == torch.bool or baseline.is_complex():
            raise TypeError(f"a baseline tensor must be real-valued, got {baseline.dtype}")
        try:
            broadcast = torch.broadcast_shapes(baseline.shape, inputs.shape)
        except RuntimeError:
            broadcast = None
        if broadcast != inputs.shape:
            raise ValueError(
                f"baseline tensor of shape {tuple(baseline.shape)} is not broadcastable "
                f"to inputs of shape {tuple(inputs.shape)}"
            )
        if not bool(torch.isfinite(baseline).all()):
            raise ValueError("baseline tensor contains NaN or infinite values")
        return
    if not isinstance(baseline, str):
        raise TypeError(f"baseline must be a str or a Tensor, got {type(baseline).__name__}")
    if baseline not in BACKGROUNDS:
        raise ValueError(f"baseline must be one of {BACKGROUNDS} or a Tensor, got {baseline!r}")
    if baseline != "mean":
        return
    channels = inputs.shape[1]
    if channels != len(IMAGENET_MEAN):
        raise ValueError(
            f'baseline="mean" needs {len(IMAGENET_MEAN)}-channel inputs, got {channels} '
            "channels; pass the background as a tensor instead"
        )
    if normalization is None:
        return
    message = (
        f"normalization must be (mean, std) with {channels} values each, got {normalization!r}"
    )
    try:
        mean, std = normalization
        mean, std = [float(v) for v in mean], [float(v) for v in std]
    except (TypeError, ValueError) as err:
        raise ValueError(message) from err
    if len(mean) != channels or len(std) != channels:
        raise ValueError(message)
    if not all(math.isfinite(v) for v in mean + std) or not all(s > 0 for s in std):
        raise ValueError(
            f"normalization's mean must be finite and its std > 0, got {normalization!r}"
        )


# --------------------------------------------------------------------- target


def _index(value: Any, where: str) -> int:
    """One class index as a plain int: an int, a numpy integer or a 0-d integer tensor."""
    if isinstance(value, Tensor) and value.dim() == 0:
        if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"target{where} must be an integer index, got a {value.dtype} tensor")
        return int(value.item())
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(
            f"target{where} must be an integer index, got {type(value).__name__} {value!r}"
        )
    return int(value)


def normalize_target(target: Any, n: int) -> TargetType:
    """Any target Captum accepts, plus numpy integers and integer arrays, as plain ints
    (or tuples of them), a list of those, or a 1-D long tensor of one index per example.
    Float or bool targets raise ``TypeError``; a wrong count or shape ``ValueError``.
    The range is checked against the model's output by :func:`check_target_range`."""
    if target is None:
        return None
    if isinstance(target, np.ndarray):
        if not np.issubdtype(target.dtype, np.integer):
            raise TypeError(
                f"target must hold integer class indices, got a numpy {target.dtype} array; "
                "convert it with .astype(int)"
            )
        target = torch.from_numpy(np.ascontiguousarray(target))
    if isinstance(target, Tensor):
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise TypeError(
                f"target must hold integer class indices, got a {target.dtype} tensor; "
                "convert it with .long()"
            )
        if target.numel() == 1:
            return int(target.item())
        if target.dim() != 1 or target.numel() != n:
            raise ValueError(
                f"a target tensor must hold one index or one per example ({n}), got shape "
                f"{tuple(target.shape)}"
            )
        return target.long()
    if isinstance(target, tuple):
        return tuple(_index(t, "") for t in target)
    if isinstance(target, list):
        if len(target) != n:
            raise ValueError(f"target list has {len(target)} entries for {n} inputs")
        return [
            tuple(_index(i, f"[{k}]") for i in t) if isinstance(t, tuple) else _index(t, f"[{k}]")
            for k, t in enumerate(target)
        ]
    if isinstance(target, (bool, np.bool_)) or not isinstance(target, (int, np.integer)):
        raise TypeError(
            "target must be an int, tuple, Tensor, numpy integer (array) or list, got "
            f"{type(target).__name__} {target!r}"
        )
    return int(target)


def check_target_range(target: TargetType, output: Tensor) -> None:
    """Every index of a normalised target within the model output's shape (N, K, ...)."""
    dims = tuple(output.shape[1:])
    shape = f"(N, {', '.join(map(str, dims))})"

    def check_index(index: int | tuple[int, ...], where: str) -> None:
        idx = index if isinstance(index, tuple) else (index,)
        if len(idx) > len(dims):
            raise ValueError(
                f"target{where} must index the model output of shape {shape}, got {index!r}"
            )
        for i, d in zip(idx, dims):
            if not 0 <= i < d:
                raise ValueError(
                    f"target{where} = {index!r} is out of range for a model output of shape "
                    f"{shape}: {d} classes, valid indices 0 to {d - 1}"
                )

    if isinstance(target, (int, tuple)):
        check_index(target, "")
    elif isinstance(target, Tensor):
        classes = dims[0] if dims else 0
        low, high = int(target.min()), int(target.max())
        if low < 0 or high >= classes:
            raise ValueError(
                f"target has values in [{low}, {high}], out of range for {classes} classes "
                f"(valid indices 0 to {classes - 1})"
            )
    elif isinstance(target, list):
        for k, t in enumerate(target):
            check_index(t, f"[{k}]")


def per_example_scores(output: Tensor) -> Tensor:
    """A model's output with one row per example: (N,) becomes (N, 1), as Captum treats
    a model with one output per example."""
    return output.unsqueeze(1) if output.dim() == 1 else output


def check_output_target(
    target: TargetType, output: Tensor, stage: str, needs_target_for_start: bool
) -> None:
    """After the clean pass: a target that selects exactly one score per example.

    ``target=None`` is Captum's for a model with one output per example ((N,) or (N, 1));
    a model with more needs a target. A segmentation-style output (N, K, H, W) needs an
    index into every dimension (a tuple (k, h, w)), or a model wrapped to return one score
    per class."""
    dims = tuple(output.shape[1:])
    shape = f"(N, {', '.join(map(str, dims))})"
    if target is None:
        if output[0].numel() == 1:
            return
        if stage != "inversion":
            raise ValueError(
                f'target is required for stage="{stage}" (the class to explain): the model '
                f"returns {output[0].numel()} scores per example, shape {shape}; use "
                'stage="inversion" for the class-agnostic mask'
            )
        if needs_target_for_start:
            raise ValueError(
                "this setting starts from Grad-CAM's channel weights (init='gradcam'), which "
                "need a target; pass target=, or init_weight= as a tensor of shape (N, C)"
            )
        return
    if len(dims) <= 1:
        return
    entries: list[Any] = target if isinstance(target, list) else [target]
    if isinstance(target, Tensor) or any(
        not isinstance(t, tuple) or len(t) != len(dims) for t in entries
    ):
        raise ValueError(
            f"the model returns scores of shape {shape} (a segmentation-style output), and "
            f"target={target!r} does not select one score per example: pass a tuple target "
            f"with {len(dims)} indices (one output element), or reduce the output to one "
            "score per class first, e.g. forward_func=lambda x: model(x).sum(dim=(2, 3)) "
            "(the class's evidence over the image) or .mean over a region of interest"
        )


# ---------------------------------------------------------------------- model


def _to_method(dtype: torch.dtype) -> str:
    names = {
        torch.float32: ".float()",
        torch.float16: ".half()",
        torch.float64: ".double()",
        torch.bfloat16: ".bfloat16()",
    }
    return names.get(dtype, f".to({dtype})")


def check_model(modules: Sequence[nn.Module], inputs: Tensor, autocast: bool = False) -> None:
    """Before any forward: the model in eval mode where it matters, and its floating-point
    parameters on the inputs' device and in their dtype (any dtype with ``autocast``,
    which casts the inputs for the forward passes)."""
    check_eval_mode(modules)
    params = [p for root in modules for p in root.parameters() if p.is_floating_point()]
    if not params:
        return
    devices = {p.device for p in params}
    if inputs.device not in devices:
        device = sorted(map(str, devices))[0]
        raise TypeError(
            f"inputs are on {inputs.device} but the model's parameters are on {device}: move "
            f"one to the other, inputs.to('{device}') or model.to('{inputs.device}')"
        )
    dtypes = {p.dtype for p in params}
    if not autocast and inputs.dtype not in dtypes:
        dtype = sorted(dtypes, key=str)[0]
        raise TypeError(
            f"inputs have dtype {inputs.dtype} but the model's parameters are {dtype}: "
            f"convert one to the other, inputs{_to_method(dtype)} or "
            f"model{_to_method(inputs.dtype)} (or run the forward passes with autocast=True)"
        )


def changes_in_training(module: nn.Module) -> bool:
    """A module whose forward in training mode updates state (running statistics of
    batch norm, instance norm with ``track_running_stats``) or draws random numbers
    (dropout)."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return True
    if isinstance(module, nn.modules.instancenorm._InstanceNorm):
        return bool(module.track_running_stats)
    return isinstance(module, (nn.modules.dropout._DropoutNd, nn.AlphaDropout))


def _training_error(module: nn.Module, name: str) -> ValueError:
    return ValueError(
        f"the model is in training mode ({type(module).__name__} '{name}' has "
        "training=True), so BatchNorm statistics and dropout would change during the "
        "optimisation; call model.eval() first"
    )


def check_eval_mode(modules: Sequence[nn.Module]) -> None:
    """BatchNorm and dropout must not be in training mode during the optimisation."""
    for root in modules:
        for name, module in root.named_modules():
            if module.training and changes_in_training(module):
                raise _training_error(module, name or type(root).__name__)


class ForwardCheck:
    """Checks on every module the clean pass reaches, before it runs (installed with
    :func:`captum_gfi._hooks.watch_modules`, so it sees the modules behind any
    ``forward_func``, a lambda around the model included):

    * no module that changes in training mode is in training mode (its running
      statistics would be updated by this very pass);
    * the first convolution gets as many channels as it takes, else the inputs have the
      wrong number of channels (a grey or RGBA image for an RGB model).
    """

    def __init__(self, inputs: Tensor) -> None:
        self.inputs = inputs
        self.first_conv = True

    def __call__(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        if module.training and changes_in_training(module):
            raise _training_error(module, type(module).__name__)
        if self.first_conv and isinstance(module, nn.modules.conv._ConvNd):
            self.first_conv = False
            value = args[0] if args else None
            if isinstance(value, Tensor) and value.dim() >= 2:
                got, want = value.shape[1], module.in_channels
                if got != want and value.shape[2:] == self.inputs.shape[2:]:
                    raise ValueError(
                        f"inputs have {got} channels but the model's first convolution "
                        f"({module}) takes {want}: pass {want}-channel images (e.g. "
                        "x.expand(-1, 3, -1, -1) for grey images, x[:, :3] to drop an "
                        "alpha channel)"
                    )


# ---------------------------------------------------------- the clean pass


def check_layer_calls(calls: Sequence[int], names: Sequence[str]) -> None:
    """Each tapped layer ran exactly once in the clean forward pass."""
    for name, count in zip(names, calls):
        if count == 0:
            raise ValueError(
                f"{name} was not called during the forward pass: it must be a submodule "
                "that forward_func runs"
            )
        if count > 1:
            raise ValueError(
                f"{name} runs {count} times in one forward pass (a shared module?); pick a "
                "module that runs once, such as a conv layer or a block"
            )


def check_clean_pass(
    values: Sequence[Any], names: Sequence[str], output: Any, inputs: Tensor
) -> None:
    """The layers' outputs are finite 4-D maps and the model returns one finite row of
    scores per input."""
    for name, value in zip(names, values):
        if isinstance(value, (tuple, list)):
            raise ValueError(
                f"{name} returns a {type(value).__name__} of {len(value)} values; layers "
                "with tuple outputs are not supported: pick a submodule that returns one "
                "(N, C, h, w) tensor"
            )
        if not isinstance(value, Tensor) or value.dim() != 4:
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(
                f"{name} must produce a 4-D (N, C, h, w) feature map, got {shape}; "
                "choose a convolutional or pooling layer"
            )
        if not bool(torch.isfinite(value).all()):
            raise ValueError(
                f"{name}'s output contains NaN or infinite values for finite inputs: check "
                "the model's weights (float16 models can overflow: try the model in float32)"
            )
    if not isinstance(output, Tensor):
        raise TypeError(
            f"forward_func must return a Tensor of class scores, got {type(output).__name__}"
        )
    for name, value in zip(names, values):
        # Eq. (8)'s data term squares the features: it must be a number in their dtype
        # (half-precision types are left to the overflow check of the result)
        if value.dtype not in (torch.float32, torch.float64):
            continue
        energy = value.detach().flatten(1).double().pow(2).sum(dim=1)
        if float(energy.max()) > torch.finfo(value.dtype).max / 4:
            raise ValueError(
                f"inputs: {name}'s features for these inputs (max |x| = "
                f"{float(inputs.abs().max()):.3g}) reach {float(value.abs().max()):.3g}, so "
                f"the objectives overflow in {value.dtype}; pass inputs in the range the model "
                "was trained on (normalised images, values of order 1)"
            )
    if output.dim() == 0 or output.shape[0] != inputs.shape[0]:
        rows = output.shape[0] if output.dim() else "a scalar, no"
        raise ValueError(f"forward_func returned {rows} rows for {inputs.shape[0]} inputs")
    if not bool(torch.isfinite(output).all()):
        raise ValueError(
            "forward_func returned NaN or infinite scores for finite inputs: check the model's "
            "weights (float16 models can overflow: try the model in float32)"
        )


# ------------------------------------------------------- degenerate results


def _examples(indices: Sequence[int]) -> str:
    shown = ", ".join(map(str, indices[:10]))
    return f"[{shown}{', ...' if len(indices) > 10 else ''}]"


def warn_if_degenerate(
    features: Tensor, inputs: Tensor, background: Tensor, layer_mask: Tensor
) -> None:
    """One ``UserWarning`` naming the examples whose mask is not informative, and why:

    * ``layer``'s map is flat (one pixel, or every channel constant over the image, e.g.
      all zero), so any weighted sum of its channels is constant;
    * the input equals its background, so the mask changes nothing and the objectives
      give the weights no signal (a constant image with the blur background);
    * the final mask is constant anyway (typically every weight clipped to zero).
    """
    n = inputs.shape[0]
    h, w = features.shape[2:]
    spread = (features.amax(dim=(2, 3)) - features.amin(dim=(2, 3))).amax(dim=1)
    flat = (spread <= 1e-6 * features.abs().amax(dim=(1, 2, 3))).tolist()
    gap = (inputs - background).abs().amax(dim=(1, 2, 3))
    same = (gap <= 1e-6 * inputs.abs().amax(dim=(1, 2, 3))).tolist()
    # a normalised map spans exactly [0, 1]; a smaller range means Eq. (7) had nothing to
    # stretch (the map was constant to float precision) and returned zeros
    flat_mask = layer_mask.flatten(1)
    constant = ((flat_mask.amax(dim=1) - flat_mask.amin(dim=1)) < 0.5).tolist()
    flat_idx = [k for k in range(n) if flat[k]]
    same_idx = [k for k in range(n) if same[k] and not flat[k]]
    constant_idx = [k for k in range(n) if constant[k] and not flat[k] and not same[k]]
    reasons = []
    if flat_idx:
        why = (
            f"layer's feature map is {h}x{w}, a single pixel"
            if h * w == 1
            else "every channel of layer's output is constant over the image"
        )
        reasons.append(
            f"for example(s) {_examples(flat_idx)}, {why}, so any weighted sum of its "
            "channels (Eq. (6)) is constant and the min-max normalised mask (Eq. (7)) is all "
            "zeros: use a larger input or an earlier layer (with a larger feature map)"
        )
    if same_idx:
        reasons.append(
            f"for example(s) {_examples(same_idx)}, the input equals its background p "
            '(e.g. a constant image with baseline="blur", or blur_radius=0), so the mask '
            "changes nothing in Eq. (2) and (4) and the optimisation has no signal (the "
            "weights only shrink under the prior): use an image with content, or "
            'another baseline ("mean", "noise" or a tensor)'
        )
    if constant_idx:
        reasons.append(
            f"the mask of example(s) {_examples(constant_idx)} is constant over the image "
            "(all zeros): every channel weight was driven to zero, or the weighted channels "
            "cancel out: try a smaller delta or gamma (a weaker prior), fewer steps or a "
            "smaller lr, or an earlier layer"
        )
    if reasons:
        # stacklevel: this function, attribute, Captum's log_usage wrapper, the caller
        warnings.warn(
            "GuidedFeatureInversion: uninformative mask: " + "; ".join(reasons),
            UserWarning,
            stacklevel=4,
        )


def check_finite_result(weights: Tensor, layer_mask: Tensor, inputs: Tensor | None = None) -> None:
    """The optimised weights and the mask are finite (the loss did not overflow)."""
    bad = (~torch.isfinite(weights)).any(dim=1) | (~torch.isfinite(layer_mask)).flatten(1).any(1)
    if bool(bad.any()):
        idx = [k for k, b in enumerate(bad.tolist()) if b]
        scale = float(inputs.abs().max()) if inputs is not None else 0.0
        if scale > 1e6:
            raise ValueError(
                f"inputs: the optimisation overflowed for example(s) {_examples(idx)}, whose "
                f"values reach {scale:.3g}: pass inputs in the range the model was trained "
                "on (normalised images, values of order 1)"
            )
        raise ValueError(
            "the optimisation produced NaN or infinite channel weights or mask values for "
            f"example(s) {_examples(idx)}: the loss overflowed; lower lr, init_weight, gamma, "
            "delta or lam"
        )
