"""Guided Feature Inversion as a Captum layer attribution method.

Du, Liu, Song, Hu. "Towards Explanation of DNN-based Prediction with Guided
Feature Inversion", KDD 2018. Stage 1 (Algorithm 1) inverts the features of a
late layer l0 through a mask built from the channels of a conv layer l1;
stage 2 (Algorithm 2) refines that mask so it keeps the target class's
evidence and removes it from the background.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal, cast, overload

import torch
from captum._utils.common import (
    ExpansionTypes,
    _expand_additional_forward_args,
    _expand_target,
    _format_additional_forward_args,
)
from captum._utils.typing import TargetType
from captum.attr._utils.attribution import LayerAttribution
from captum.log import log_usage
from torch import Tensor, nn
from tqdm import tqdm

from captum_gfi import _validation
from captum_gfi._hooks import LayerTap, model_modules, preserved_model_state
from captum_gfi.background import Normalization, make_background
from captum_gfi.mask import (
    background_input,
    feature_mask,
    guided_input,
    interpolation_matrices,
)
from captum_gfi.objectives import (
    class_discriminative_loss,
    inversion_loss,
    target_score,
)

#: The stages ``attribute`` can run: Algorithm 1 then 2, Algorithm 1 only, Algorithm 2 only.
STAGES = ("both", "inversion", "target")


class GuidedFeatureInversion(LayerAttribution):
    r"""
    Guided Feature Inversion (GFI) explains a CNN's prediction with a soft mask
    over the input. The mask is a non-negative combination of the channels of a
    convolutional layer ``layer`` (:math:`l_1`), min-max normalised and upsampled
    (Eq. (6)-(7)). Its channel weights :math:`\omega` are optimised per example:

    1. *Feature inversion* (Algorithm 1, Eq. (8)): the guided input
       :math:`\Phi = x \odot m + p \odot (1 - m)` (Eq. (2)), with :math:`p` a
       blurred copy of :math:`x`, must reproduce the features of
       ``inversion_layer`` (:math:`l_0`) with as few channels as possible. This
       mask is class-agnostic: it covers every object the network sees.
    2. *Class-discriminative refinement* (Algorithm 2, Eq. (9)): starting from
       stage 1's :math:`\omega`, maximise the target class's probability on
       :math:`\Phi` and minimise it on the background-only input
       :math:`\Phi_{bg} = x \odot (1 - m) + p \odot m` (Eq. (4)).

    The defaults are the paper's (Sec. 4.1.1). The attribution is the final mask,
    shape (N, 1, H, W) with values in [0, 1], so it works directly with
    ``captum.attr.visualization`` and ``captum.metrics``.

    More details: https://arxiv.org/abs/1804.00506
    """

    def __init__(
        self,
        forward_func: Callable[..., Tensor],
        layer: nn.Module,
        inversion_layer: nn.Module | None = None,
        device_ids: list[int] | None = None,
        reshape_transform: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        r"""
        Args:

            forward_func (Callable or torch.nn.Module): The model, or any function
                        calling it, that returns class scores of shape (N, K)
                        (or (N, ...) with tuple targets).
            layer (torch.nn.Module): The base layer :math:`l_1` whose output
                        channels, shape (N, C, h, w), are combined into the mask,
                        e.g. ``conv5_4`` of VGG-19.
            inversion_layer (torch.nn.Module, optional): The layer :math:`l_0`
                        whose features stage 1 inverts, with a 4-D output, e.g.
                        ``pool5`` of VGG-19. Default: ``layer`` itself.
            device_ids (list[int], optional): Captum's argument for DataParallel
                        models; not supported: it must be None, and a
                        ``torch.nn.DataParallel`` model must be passed unwrapped
                        (its ``.module``).
            reshape_transform (Callable, optional): turns the outputs of
                        ``layer`` and ``inversion_layer`` into (N, C, h, w) maps,
                        e.g. the tokens (N, 1 + h*w, C) of a vision transformer
                        (see :func:`captum_gfi.reshape.vit_reshape_transform`). Default:
                        None (the outputs are used as they are).
        """
        _validation.check_constructor(forward_func, layer, inversion_layer, device_ids)
        LayerAttribution.__init__(self, forward_func, layer, device_ids)
        self.inversion_layer: nn.Module = inversion_layer if inversion_layer is not None else layer
        self.reshape_transform = reshape_transform

    @classmethod
    def from_model(cls, model: nn.Module, arch: str | None = None) -> GuidedFeatureInversion:
        """Build GFI with the paper's layers for a known architecture.

        Args:
            model (torch.nn.Module): a torchvision VGG / ResNet / AlexNet, the
                        EfficientNet-Lite0 demo model, or a wrapper containing one.
            arch (str, optional): force a preset name (see
                        ``captum_gfi.presets.PRESETS``) instead of detecting it.
        """
        from captum_gfi.presets import resolve_layers

        preset = resolve_layers(model, arch)
        return cls(model, preset.layer, preset.inversion_layer)

    @property
    def multiplies_by_inputs(self) -> bool:
        return False

    @overload
    def attribute(
        self,
        inputs: Tensor,
        target: TargetType = None,
        additional_forward_args: Any = None,
        *,
        return_weights: Literal[False] = False,
        **kwargs: Any,
    ) -> Tensor: ...

    @overload
    def attribute(
        self,
        inputs: Tensor,
        target: TargetType = None,
        additional_forward_args: Any = None,
        *,
        return_weights: Literal[True],
        **kwargs: Any,
    ) -> tuple[Tensor, Tensor]: ...

    @overload
    def attribute(
        self,
        inputs: tuple[Tensor, ...],
        target: TargetType = None,
        additional_forward_args: Any = None,
        **kwargs: Any,
    ) -> tuple[Tensor, ...] | tuple[tuple[Tensor, ...], Tensor]: ...

    @log_usage(part_of_slo=True)
    def attribute(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        target: TargetType = None,
        additional_forward_args: Any = None,
        *,
        stage: str = "both",
        baseline: str | Tensor = "blur",
        inversion_steps: int = 10,
        target_steps: int = 70,
        lr: float = 1e-2,
        gamma: float = 10.0,
        delta: float = 1.0,
        lam: float = 1.0,
        lr_decay_every: int = 10,
        lr_decay: float = 0.5,
        init_weight: float | Tensor = 0.1,
        score: str = "softmax",
        blur_radius: float = 11.0,
        normalization: Normalization | None = None,
        interpolate_mode: str = "bilinear",
        attribute_to_layer_input: bool = False,
        return_layer_mask: bool = False,
        expand_channels: bool = False,
        return_weights: bool = False,
        show_progress: bool = False,
        seed: int | None = None,
        autocast: bool = False,
        channels_last: bool = False,
    ) -> Any:
        r"""
        Args:

            inputs (Tensor or tuple[Tensor]): Images, shape (N, C, H, W), in the
                        model's input space (normalised as the model expects). A
                        1-tuple is accepted, as Captum's metrics pass, and the
                        attributions are then returned as a 1-tuple too.
            target (int, tuple, Tensor, list, or numpy integer, optional): Output
                        index of the class to explain, in any form Captum accepts:
                        an int or tuple for all examples, or one per example as a
                        list or a 1-D integer tensor; numpy integers and integer
                        arrays (e.g. from ``np.argmax``) too. Required unless
                        ``stage="inversion"``.
            additional_forward_args (Any, optional): Extra arguments passed to
                        ``forward_func`` after the inputs. Tensors with a batch
                        dimension are repeated along it for the 2N batch of stage 2.
            stage (str, optional): ``"both"`` (default): Algorithm 1 then 2;
                        ``"inversion"``: Algorithm 1 only, the class-agnostic
                        inversion mask (no target needed); ``"target"``:
                        Algorithm 2 only, starting from ``init_weight``.
            baseline (str or Tensor, optional): the background :math:`p`:
                        ``"blur"`` (Gaussian blur of the input, the paper's),
                        ``"mean"`` (ImageNet mean colour; pass ``normalization``),
                        ``"noise"`` (Gaussian noise, seeded by ``seed``), or a
                        tensor broadcastable to ``inputs``.
            inversion_steps (int, optional): Adam steps of stage 1. Default: 10.
            target_steps (int, optional): Adam steps of stage 2. Default: 70.
            lr (float, optional): Adam learning rate of both stages. Default: 1e-2.
            gamma (float, optional): L1 weight of Eq. (8). Default: 10.
            delta (float, optional): L1 weight of Eq. (9). Default: 1.
            lam (float, optional): weight of the background term of Eq. (9).
                        Default: 1.
            lr_decay_every (int, optional): stage 2 multiplies the learning rate
                        by ``lr_decay`` every this many steps. Default: 10.
            lr_decay (float, optional): Default: 0.5.
            init_weight (float or Tensor, optional): initial value of every
                        channel weight, or initial weights of shape (N, C) (or
                        broadcastable to it), e.g. the ``return_weights`` of a
                        ``stage="inversion"`` run to continue with
                        ``stage="target"``. Default: 0.1.
            score (str, optional): the class score :math:`f_c`: ``"softmax"``
                        (probability, the paper's), ``"sigmoid"`` (multi-label
                        models) or ``"logit"``.
            blur_radius (float, optional): standard deviation in pixels of the
                        blur background. Default: 11.
            normalization (tuple, optional): ``(mean, std)`` of the model's input
                        normalisation, used by ``baseline="mean"``.
            interpolate_mode (str, optional): upsampling of the mask to the input
                        resolution: ``"bilinear"`` (default), ``"nearest"``,
                        ``"bicubic"`` or ``"area"``.
            attribute_to_layer_input (bool, optional): build the mask from the
                        input of ``layer`` instead of its output. Default: False.
            return_layer_mask (bool, optional): return the mask at ``layer``'s
                        resolution (N, 1, h, w), like ``LayerGradCam``, instead of
                        the input resolution. Default: False.
            expand_channels (bool, optional): repeat the mask over the input's
                        channels, (N, C, H, W): the shape ``captum.metrics.infidelity``
                        requires of attributions. Default: False.
            return_weights (bool, optional): also return the channel weights
                        :math:`\omega`, shape (N, C). Default: False.
            show_progress (bool, optional): show a progress bar over the steps.
            seed (int, optional): seed of the random background (``"noise"``).
                        The optimisation itself is deterministic.
            autocast (bool, optional): run the model's forward passes under
                        ``torch.autocast`` (bfloat16), the mask and the losses
                        in the inputs' dtype. Faster on GPUs; see
                        docs/performance.md for its effect on the masks.
                        Default: False.
            channels_last (bool, optional): feed the model channels-last
                        tensors (pair it with
                        ``model.to(memory_format=torch.channels_last)``).
                        Default: False.

        Returns:
            *Tensor* or (*Tensor*, *Tensor*):
            - **attributions** (*Tensor*): the GFI mask in [0, 1], shape
              (N, 1, H, W), or (N, 1, h, w) with ``return_layer_mask=True``, or
              (N, C, H, W) with ``expand_channels=True``.
            - **weights** (*Tensor*, only with ``return_weights=True``): the
              optimised channel weights, shape (N, C).

        Examples::

            >>> model = torchvision.models.vgg19(weights="IMAGENET1K_V1").eval()
            >>> gfi = GuidedFeatureInversion(model, model.features[35], model.features[36])
            >>> mask = gfi.attribute(images, target=281)  # (N, 1, 224, 224)
        """
        inputs, is_tuple = _validation.unpack_inputs(inputs)
        _validation.check_options(
            inputs, stage=stage, target=target, baseline=baseline, normalization=normalization,
            score=score, interpolate_mode=interpolate_mode, return_layer_mask=return_layer_mask,
            expand_channels=expand_channels, seed=seed,
        )  # fmt: skip
        _validation.check_hyperparameters(
            inversion_steps=inversion_steps, target_steps=target_steps, lr=lr, gamma=gamma,
            delta=delta, lam=lam, lr_decay_every=lr_decay_every, lr_decay=lr_decay,
            init_weight=init_weight, blur_radius=blur_radius, dtype=inputs.dtype,
        )  # fmt: skip
        if stage != "inversion":
            target = _validation.normalize_target(target, inputs.shape[0])
        inputs = inputs.detach()
        args = _format_additional_forward_args(additional_forward_args)
        generator = None
        if seed is not None:
            generator = torch.Generator(device=inputs.device).manual_seed(int(seed))

        modules = model_modules(self.forward_func, self.layer, self.inversion_layer)
        _validation.check_model(modules, inputs, autocast)  # before any hook or forward
        self._autocast, self._channels_last = autocast, channels_last
        try:
            with preserved_model_state(modules):
                # clean pass: f^{l1}(x), f^{l0}(x) and the output, computed once
                with torch.no_grad():
                    base_features, inv_features, output = self._clean_pass(
                        inputs, args, attribute_to_layer_input
                    )
                if stage != "inversion":
                    _validation.check_target_range(target, output)
                background = make_background(
                    inputs,
                    baseline,
                    blur_radius=blur_radius,
                    normalization=normalization,
                    generator=generator,
                )
                size = (inputs.shape[2], inputs.shape[3])
                weights = self._initial_weights(init_weight, base_features, inputs)
                matrices = interpolation_matrices(
                    base_features.shape[2:], size, interpolate_mode, inputs.dtype, inputs.device
                )

                def mask_of(w: Tensor) -> Tensor:  # Eq. (6)-(7) and upsampling
                    return feature_mask(w, base_features, size, interpolate_mode, matrices)[1]

                total = (inversion_steps if stage != "target" else 0) + (
                    target_steps if stage != "inversion" else 0
                )
                # gradients for w even when called under torch.no_grad() (as Captum's metrics do)
                with (
                    torch.enable_grad(),
                    tqdm(
                        total=total, desc=self.get_name(), disable=not show_progress, leave=False
                    ) as bar,
                ):
                    if stage in ("both", "inversion"):
                        weights = self._algorithm1_feature_inversion(
                            inputs, background, mask_of, inv_features, weights, args,
                            steps=inversion_steps, lr=lr, gamma=gamma, bar=bar,
                        )  # fmt: skip
                    if stage in ("both", "target"):
                        weights = self._algorithm2_class_discriminative(
                            inputs, background, mask_of, weights, args, target,
                            steps=target_steps, lr=lr, lam=lam, delta=delta, score=score,
                            lr_decay_every=lr_decay_every, lr_decay=lr_decay, bar=bar,
                        )  # fmt: skip
                with torch.no_grad():
                    layer_mask, mask = feature_mask(weights, base_features, size, interpolate_mode)
                _validation.check_finite_result(weights, layer_mask)
                _validation.warn_if_degenerate(base_features, inputs, background, layer_mask)
        finally:
            self._autocast = self._channels_last = False
        result = layer_mask if return_layer_mask else mask
        if expand_channels:
            result = result.expand(-1, inputs.shape[1], -1, -1)
        formatted: Tensor | tuple[Tensor, ...] = (result,) if is_tuple else result
        if return_weights:
            return formatted, weights
        return formatted

    # ------------------------------------------------------------------ stages
    def _algorithm1_feature_inversion(
        self,
        inputs: Tensor,
        background: Tensor,
        mask_of: Callable[[Tensor], Tensor],
        inv_features: Tensor,
        weights: Tensor,
        args: tuple[Any, ...] | None,
        *,
        steps: int,
        lr: float,
        gamma: float,
        bar: tqdm,
    ) -> Tensor:
        """Algorithm 1: class-agnostic feature inversion, minimising Eq. (8)."""

        def loss_fn(w: Tensor) -> Tensor:
            mask = mask_of(w)  # Eq. (6)-(7)
            guided = guided_input(inputs, background, mask)  # Eq. (2)
            features = self._forward_to_inversion_layer(guided, args)
            return inversion_loss(features, inv_features, w, gamma)  # Eq. (8)

        return _adam_clipped(weights, loss_fn, steps, lr, None, 1.0, bar)

    def _algorithm2_class_discriminative(
        self,
        inputs: Tensor,
        background: Tensor,
        mask_of: Callable[[Tensor], Tensor],
        weights: Tensor,
        args: tuple[Any, ...] | None,
        target: TargetType,
        *,
        steps: int,
        lr: float,
        lam: float,
        delta: float,
        score: str,
        lr_decay_every: int,
        lr_decay: float,
        bar: tqdm,
    ) -> Tensor:
        """Algorithm 2: class-discriminative refinement, minimising Eq. (9).

        The guided and the background-only inputs go through the model as one
        batch of 2N."""
        n = inputs.shape[0]
        args2 = _expand_additional_forward_args(args, 2, ExpansionTypes.repeat)
        target2 = _expand_target(_target_on_device(target, inputs.device), 2, ExpansionTypes.repeat)

        def loss_fn(w: Tensor) -> Tensor:
            mask = mask_of(w)  # Eq. (6)-(7)
            guided = guided_input(inputs, background, mask)  # Eq. (2)
            removed = background_input(inputs, background, mask)  # Eq. (4)
            output = self._forward(torch.cat([guided, removed]), args2).to(inputs.dtype)
            scores = target_score(output, target2, score)
            return class_discriminative_loss(scores[:n], scores[n:], w, lam, delta)  # Eq. (9)

        return _adam_clipped(weights, loss_fn, steps, lr, lr_decay_every, lr_decay, bar)

    # ---------------------------------------------------------------- forwards
    _autocast: bool = False
    _channels_last: bool = False

    def _forward(self, inputs: Tensor, args: tuple[Any, ...] | None) -> Tensor:
        if self._channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with torch.autocast(inputs.device.type, dtype=torch.bfloat16, enabled=self._autocast):
            return self.forward_func(inputs, *args) if args else self.forward_func(inputs)

    def _forward_to_inversion_layer(self, inputs: Tensor, args: tuple[Any, ...] | None) -> Tensor:
        """Run the model only up to ``inversion_layer`` and return its output."""
        with LayerTap([self.inversion_layer], stop=True) as tap:
            self._forward(inputs, args)
        return self._as_map(cast(Tensor, tap.values[0])).to(inputs.dtype)

    def _as_map(self, value: Tensor) -> Tensor:
        return value if self.reshape_transform is None else self.reshape_transform(value)

    def _clean_pass(
        self, inputs: Tensor, args: tuple[Any, ...] | None, layer_input: bool
    ) -> tuple[Tensor, Tensor, Tensor]:
        with LayerTap(
            [self.layer, self.inversion_layer], use_inputs=[layer_input, False], detach=True
        ) as tap:
            output = self._forward(inputs, args)
        names = ("layer", "inversion_layer")
        _validation.check_layer_calls(tap.calls, names)
        values = [
            self._as_map(v).to(inputs.dtype) if isinstance(v, Tensor) else v for v in tap.values
        ]
        _validation.check_clean_pass(values, names, output, inputs)
        return values[0], values[1], output

    @staticmethod
    def _initial_weights(init: float | Tensor, base_features: Tensor, inputs: Tensor) -> Tensor:
        """The start of the channel weights, (N, C): ``init`` everywhere or broadcast."""
        shape = base_features.shape[:2]
        if isinstance(init, Tensor):
            _validation.check_init_weight_shape(init, shape)
            return torch.broadcast_to(init.detach().to(inputs), shape).clone()
        return torch.full(shape, float(init), dtype=inputs.dtype, device=inputs.device)


def _adam_clipped(
    weights: Tensor,
    loss_fn: Callable[[Tensor], Tensor],
    steps: int,
    lr: float,
    decay_every: int | None,
    decay: float,
    bar: tqdm,
) -> Tensor:
    """Adam on the channel weights, clipped to w >= 0 after every step.

    The per-example losses are summed; Adam is element-wise, so every example
    follows exactly the trajectory it would follow alone. The learning rate is
    ``lr * decay ** (t // decay_every)`` at step t (constant if ``decay_every`` is
    None). Gradients are taken with ``torch.autograd.grad`` for the weights only.
    """
    # torch.optim.Adam's update (defaults betas=(0.9, 0.999), eps=1e-8), written out:
    # the same float ops, a third of the Python cost per step and no host-device sync
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    w = weights.detach().clone().requires_grad_(True)
    exp_avg = torch.zeros_like(weights)
    exp_avg_sq = torch.zeros_like(weights)
    for step in range(steps):
        step_lr = lr * decay ** (step // decay_every) if decay_every is not None else lr
        (grad,) = torch.autograd.grad(loss_fn(w).sum(), w)
        t = step + 1
        with torch.no_grad():
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = (exp_avg_sq.sqrt() / math.sqrt(1 - beta2**t)).add_(eps)
            w.addcdiv_(exp_avg, denom, value=-step_lr / (1 - beta1**t))
            w.clamp_(min=0.0)
        bar.update(1)
    return w.detach()


def _target_on_device(target: TargetType, device: torch.device) -> TargetType:
    """The same target in a form Captum's ``_select_targets`` reads with no host-device
    transfer per step: a one-element tensor as an int (no ``.item()`` sync), a list of
    ints and a 1-D tensor as a tensor on ``device`` (no copy per step)."""
    if isinstance(target, Tensor):
        return int(target.item()) if target.numel() == 1 else target.to(device)
    if isinstance(target, list) and target and all(isinstance(t, int) for t in target):
        return torch.tensor(target, device=device)
    return target
