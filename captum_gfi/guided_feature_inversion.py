"""Guided Feature Inversion as a Captum layer attribution method.

Du, Liu, Song, Hu. "Towards Explanation of DNN-based Prediction with Guided
Feature Inversion", KDD 2018. Stage 1 (Algorithm 1) inverts the features of a
late layer l0 through a mask built from the channels of a conv layer l1;
stage 2 (Algorithm 2) refines that mask so it keeps the target class's
evidence and removes it from the background.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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
from captum_gfi._hooks import LayerTap, model_modules, preserved_model_state, watch_modules
from captum_gfi.background import Normalization, make_background
from captum_gfi.mask import (
    background_input,
    feature_mask,
    guided_input,
    interpolation_matrices,
)
from captum_gfi.objectives import (
    ONE_UNIT_SCORES,
    class_discriminative_loss,
    inversion_loss,
    target_score,
)
from captum_gfi.settings import GFISettings, WeightInit, resolve_setting
from captum_gfi.stages import STAGES

__all__ = ["STAGES", "GuidedFeatureInversion"]


@dataclass(frozen=True)
class _Run:
    """How one ``attribute`` call runs the model: its per-call options, passed down the
    call (never stored on the instance, so calls from several threads cannot mix)."""

    autocast: bool = False
    channels_last: bool = False
    grad_kwargs: Mapping[str, Any] = field(default_factory=dict)


_PLAIN = _Run()


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

    The defaults are the paper's (Sec. 4.1.1); ``setting=`` picks another named
    variant, e.g. ``"authors"`` (what the authors' released code does), see
    :mod:`captum_gfi.settings`. The attribution is the final mask,
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

        The same object serves every setting: a setting whose layer rule is l1 = l0
        (``"authors"``) builds its mask from ``inversion_layer`` (pool5 of VGG-19,
        the layer main.py uses) and leaves ``layer`` unused.

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
        attribute_to_layer_input: bool = False,
        relu_attributions: bool = False,
        attr_dim_summation: bool = True,
        grad_kwargs: dict[str, Any] | None = None,
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
        attribute_to_layer_input: bool = False,
        relu_attributions: bool = False,
        attr_dim_summation: bool = True,
        grad_kwargs: dict[str, Any] | None = None,
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
        attribute_to_layer_input: bool = False,
        relu_attributions: bool = False,
        attr_dim_summation: bool = True,
        grad_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> tuple[Tensor, ...] | tuple[tuple[Tensor, ...], Tensor]: ...

    @log_usage(part_of_slo=True)
    def attribute(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        target: TargetType = None,
        additional_forward_args: Any = None,
        attribute_to_layer_input: bool = False,
        relu_attributions: bool = False,
        attr_dim_summation: bool = True,
        grad_kwargs: dict[str, Any] | None = None,
        *,
        stage: str = "both",
        setting: str | GFISettings = "paper",
        baseline: str | Tensor = "blur",
        inversion_steps: int | None = None,
        target_steps: int | None = None,
        lr: float | None = None,
        gamma: float | None = None,
        delta: float | None = None,
        lam: float | None = None,
        lr_decay_every: int | None = None,
        lr_decay: float | None = None,
        init_weight: float | Tensor | None = None,
        score: str | None = None,
        blur_radius: float = 11.0,
        normalization: Normalization | None = None,
        interpolate_mode: str = "bilinear",
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
                        arrays (e.g. from ``np.argmax``) too. It must select one score
                        per example: a model with an (N, K, H, W) output needs a tuple
                        (k, h, w), or a ``forward_func`` that reduces the output to
                        (N, K), e.g. ``lambda x: model(x).sum(dim=(2, 3))``. May be None,
                        as in Captum, for a model with one output per example ((N,) or
                        (N, 1)), and with ``stage="inversion"``; required otherwise.
            additional_forward_args (Any, optional): Extra arguments passed to
                        ``forward_func`` after the inputs. Tensors with a batch
                        dimension are repeated along it for the 2N batch of stage 2.
            attribute_to_layer_input (bool, optional): build the mask from the
                        input of ``layer`` instead of its output (the input is read
                        before ``layer`` runs, so an in-place ``layer`` cannot change
                        it). Default: False.
            relu_attributions (bool, optional): as ``LayerGradCam``'s: apply a ReLU
                        to the returned attributions. The mask is in [0, 1], so this is
                        a no-op for it; it clips the per-channel maps of
                        ``attr_dim_summation=False``. Default: False.
            attr_dim_summation (bool, optional): as ``LayerGradCam``'s: True
                        (default) returns the mask; False returns, like LayerGradCam,
                        one map per channel of ``layer`` at its resolution, (N, C, h, w):
                        the terms :math:`\omega_i f^{l_1}_i(x)` of Eq. (6), whose sum over
                        channels is the mask before its normalisation.
            grad_kwargs (dict, optional): as ``LayerGradCam``'s: keyword arguments
                        (``retain_graph``, ``create_graph``, ``allow_unused``,
                        ``materialize_grads``) of every ``torch.autograd.grad`` call GFI
                        makes (the Grad-CAM start and each Adam step). They do not change
                        the result. Default: None.

            The arguments above are ``LayerGradCam.attribute``'s, in its order; the
            ones below are keyword-only.

            stage (str, optional): ``"both"`` (default): Algorithm 1 then 2;
                        ``"inversion"``: Algorithm 1 only, the class-agnostic
                        inversion mask (no target needed); ``"target"``:
                        Algorithm 2 only, starting from ``init_weight``.
            setting (str or GFISettings, optional): the variant of GFI: a name in
                        ``captum_gfi.settings.SETTINGS`` (``"paper"``, the default,
                        ``"authors"`` or ``"refined"``) or a
                        :class:`~captum_gfi.settings.GFISettings`.
                        The arguments below whose default is "the setting's" override
                        its fields of the same name for this call (None: keep the
                        setting's value). With ``"authors"`` the mask is built from
                        ``inversion_layer`` (l1 = l0) and ``stage="both"`` is not the
                        same as ``"inversion"`` followed by ``"target"`` (one Adam
                        state runs across both stages). ``"refined"`` starts from
                        Grad-CAM's channel weights, so it needs ``target`` (one more
                        forward and backward pass).
            baseline (str or Tensor, optional): the background :math:`p`:
                        ``"blur"`` (Gaussian blur of the input, the paper's),
                        ``"mean"`` (ImageNet mean colour; pass ``normalization``),
                        ``"noise"`` (Gaussian noise, seeded by ``seed``), or a
                        tensor broadcastable to ``inputs``.
            inversion_steps (int, optional): Adam steps of stage 1.
                        Default: the setting's (paper: 10; authors: 11).
            target_steps (int, optional): Adam steps of stage 2.
                        Default: the setting's (paper: 70; authors: 69).
            lr (float, optional): Adam learning rate of both stages.
                        Default: the setting's (paper and authors: 1e-2).
            gamma (float, optional): weight of stage 1's prior on the weights,
                        the L1 weight of Eq. (8). Default: the setting's (paper: 10;
                        authors: 5, on the squared L2 norm).
            delta (float, optional): weight of stage 2's prior: the L1 weight of
                        Eq. (9) in the paper's setting (1), the weight of the squared L2
                        norm of :math:`\omega` in the authors' (2), and the mask-area
                        weight :math:`\beta` of :math:`\beta \, \mathrm{mean}(m)` in
                        ``"refined"`` (48). Default: the setting's.
            lam (float, optional): weight of the background term of Eq. (9).
                        Default: the setting's (paper and authors: 1).
            lr_decay_every (int, optional): the learning rate is multiplied by
                        ``lr_decay`` every this many steps (paper: in stage 2 only;
                        authors: from stage 1's first step). Default: the setting's
                        (paper and authors: 10).
            lr_decay (float, optional): Default: the setting's (paper and
                        authors: 0.5).
            init_weight (float or Tensor, optional): initial value of every
                        channel weight, or initial weights of shape (N, C) (or
                        broadcastable to it), e.g. the ``return_weights`` of a
                        ``stage="inversion"`` run to continue with
                        ``stage="target"``, or of any run with the same setting. It must
                        lie within the setting's bounds ``weight_min``, ``weight_max``
                        (paper: w >= 0; refined: signed, unbounded). Given, it replaces
                        the setting's start (Grad-CAM's weights for ``"refined"``).
                        Default: the setting's (paper and authors: 0.1).
            score (str, optional): the class score :math:`f_c`: ``"softmax"``
                        (probability, the paper's), ``"log_softmax"``, ``"sigmoid"``
                        (multi-label models), ``"log_sigmoid"`` or ``"logit"``. Default:
                        the setting's (paper and authors: ``"softmax"``; refined:
                        ``"log_softmax"``). A softmax over one output unit is constant,
                        so for a model with one output per example the setting's
                        softmax / log-softmax become ``"sigmoid"`` / ``"log_sigmoid"``
                        (the softmax over the logits (0, z)); passing ``score="softmax"``
                        or ``"log_softmax"`` for such a model is a ``ValueError``.
            blur_radius (float, optional): standard deviation in pixels of the
                        blur background; its kernel is truncated at 3 standard
                        deviations or the image's size, whichever is smaller.
                        Default: 11.
            normalization (tuple, optional): ``(mean, std)`` of the model's input
                        normalisation, used by ``baseline="mean"``.
            interpolate_mode (str, optional): upsampling of the mask to the input
                        resolution: ``"bilinear"`` (default), ``"nearest"``,
                        ``"bicubic"`` or ``"area"``.
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
              (N, C, H, W) with ``expand_channels=True``; with
              ``attr_dim_summation=False`` the per-channel maps (N, C, h, w).
            - **weights** (*Tensor*, only with ``return_weights=True``): the
              optimised channel weights, shape (N, C).

        Examples::

            >>> model = torchvision.models.vgg19(weights="IMAGENET1K_V1").eval()
            >>> gfi = GuidedFeatureInversion(model, model.features[35], model.features[36])
            >>> mask = gfi.attribute(images, target=281)  # (N, 1, 224, 224)
        """
        _validation.check_inference_mode()
        inputs, is_tuple = _validation.unpack_inputs(inputs)
        # a setting's fields check themselves (GFISettings.__post_init__), overrides too
        s = resolve_setting(
            setting, inversion_steps=inversion_steps, target_steps=target_steps, lr=lr,
            gamma=gamma, delta=delta, lam=lam, lr_decay_every=lr_decay_every,
            lr_decay=lr_decay, score=score,
            init_weight=None if isinstance(init_weight, Tensor) else init_weight,
        )  # fmt: skip
        _validation.check_call(
            inputs, stage=stage, baseline=baseline, normalization=normalization,
            interpolate_mode=interpolate_mode, blur_radius=blur_radius, seed=seed,
            grad_kwargs=grad_kwargs,
            flags={
                "attribute_to_layer_input": attribute_to_layer_input,
                "relu_attributions": relu_attributions,
                "attr_dim_summation": attr_dim_summation,
                "return_layer_mask": return_layer_mask, "expand_channels": expand_channels,
                "return_weights": return_weights, "show_progress": show_progress,
                "autocast": autocast, "channels_last": channels_last,
            },
        )  # fmt: skip
        _validation.check_lr_for_dtype(s.lr, inputs.dtype)
        if isinstance(init_weight, Tensor):
            _validation.check_init_weight(init_weight, s.weight_min, s.weight_max)
        # the start: given weights (a tensor, or a number overriding the setting's), or the
        # setting's rule
        gradcam_start = init_weight is None and s.init is WeightInit.GRADCAM
        uses_target = stage != "inversion" or gradcam_start
        if uses_target:
            target = _validation.normalize_target(target, inputs.shape[0])
        inputs = inputs.detach()
        if inputs.is_inference():  # made under inference mode: a normal tensor for autograd
            inputs = inputs.clone()
        args = _format_additional_forward_args(additional_forward_args)
        generator = None
        if seed is not None:
            generator = torch.Generator(device=inputs.device).manual_seed(int(seed))
        run = _Run(autocast, channels_last, dict(grad_kwargs or {}))

        modules = model_modules(self.forward_func, self.layer, self.inversion_layer)
        _validation.check_model(modules, inputs, autocast)  # before any hook or forward
        with preserved_model_state(modules):
            # clean pass: f^{l1}(x), f^{l0}(x) and the output, computed once
            with torch.no_grad():
                base_features, inv_features, output = self._clean_pass(
                    inputs, args, attribute_to_layer_input, s.mask_layer.value, run
                )
            if uses_target:
                _validation.check_output_target(target, output, stage, gradcam_start)
                _validation.check_target_range(target, output)
            s = self._score_for_output(s, score, output, stage)
            background = make_background(
                inputs,
                baseline,
                blur_radius=blur_radius,
                normalization=normalization,
                generator=generator,
            )
            if background.is_inference():
                background = background.clone()
            size = (inputs.shape[2], inputs.shape[3])
            if gradcam_start:
                weights = self._gradcam_weights(
                    inputs, args, target, s.mask_layer.value, attribute_to_layer_input, run
                )
            else:
                init = init_weight if isinstance(init_weight, Tensor) else s.init_weight
                weights = self._initial_weights(init, base_features, inputs)
            form = s.mask_form
            matrices = interpolation_matrices(
                base_features.shape[2:], size, interpolate_mode, inputs.dtype, inputs.device,
                form.align_corners,
            )  # fmt: skip

            def mask_of(w: Tensor) -> Tensor:  # Eq. (6)-(7) and upsampling
                return feature_mask(w, base_features, size, interpolate_mode, matrices, form)[1]

            total = (s.inversion_steps if stage != "target" else 0) + (
                s.target_steps if stage != "inversion" else 0
            )
            # gradients for w even when called under torch.no_grad() (as Captum's metrics do)
            with (
                torch.enable_grad(),
                tqdm(
                    total=total, desc=self.get_name(), disable=not show_progress, leave=False
                ) as bar,
            ):
                adam = _ProjectedAdam(weights, s.weight_min, s.weight_max, bar, run.grad_kwargs)
                if stage in ("both", "inversion"):
                    weights = self._algorithm1_feature_inversion(
                        inputs, background, mask_of, inv_features, args, adam, s, run
                    )
                if stage in ("both", "target"):
                    adam.next_stage(keep_state=s.shared_optimizer)
                    weights = self._algorithm2_class_discriminative(
                        inputs, background, mask_of, args, target, adam, s, run
                    )
            with torch.no_grad():
                layer_mask, mask = feature_mask(
                    weights, base_features, size, interpolate_mode, form=form
                )
            _validation.check_finite_result(weights, layer_mask, inputs)
            _validation.warn_if_degenerate(base_features, inputs, background, layer_mask)
        if not attr_dim_summation:  # LayerGradCam's per-channel form: the terms of Eq. (6)
            result = weights.view(*weights.shape, 1, 1) * base_features
        else:
            result = layer_mask if return_layer_mask else mask
            if expand_channels:
                result = result.expand(-1, inputs.shape[1], -1, -1)
        if relu_attributions:
            result = torch.relu(result)
        formatted: Tensor | tuple[Tensor, ...] = (result,) if is_tuple else result
        if return_weights:
            return formatted, weights
        return formatted

    @staticmethod
    def _score_for_output(
        s: GFISettings, score: str | None, output: Tensor, stage: str
    ) -> GFISettings:
        """The setting with a score that carries a signal for this model's output: a
        softmax over a single output unit is constant (1), so for a model with one output
        per example the setting's softmax scores become their two-class form, the sigmoid
        (its log); an explicit ``score="softmax"`` there is refused."""
        if stage == "inversion" or output[0].numel() != 1 or s.score not in ONE_UNIT_SCORES:
            return s
        binary = ONE_UNIT_SCORES[s.score]
        if score is not None:
            raise ValueError(
                f'score="{score}" is constant for a model with one output per example (a '
                "softmax over one unit is 1), so stage 2 would get no signal: pass "
                f'score="{binary}" (the probability of a one-logit binary classifier) or '
                'score="logit"'
            )
        return dataclasses.replace(s, score=binary)

    # ------------------------------------------------------------------ stages
    def _algorithm1_feature_inversion(
        self,
        inputs: Tensor,
        background: Tensor,
        mask_of: Callable[[Tensor], Tensor],
        inv_features: Tensor,
        args: tuple[Any, ...] | None,
        adam: _ProjectedAdam,
        s: GFISettings,
        run: _Run = _PLAIN,
    ) -> Tensor:
        """Algorithm 1: class-agnostic feature inversion, minimising Eq. (8) (or the
        setting's terms in its place)."""

        def loss_fn(w: Tensor) -> Tensor:
            mask = mask_of(w)  # Eq. (6)-(7)
            guided = guided_input(inputs, background, mask)  # Eq. (2)
            features = self._forward_to_inversion_layer(guided, args, run)
            return inversion_loss(  # Eq. (8)
                features, inv_features, w, s.gamma,
                feature_loss=s.feature_loss, prior=s.inversion_prior, mask=mask,
            )  # fmt: skip

        decay = s.lr_decay if s.decay_inversion else 1.0
        return adam.run(loss_fn, s.inversion_steps, s.lr, s.lr_decay_every, decay)

    def _algorithm2_class_discriminative(
        self,
        inputs: Tensor,
        background: Tensor,
        mask_of: Callable[[Tensor], Tensor],
        args: tuple[Any, ...] | None,
        target: TargetType,
        adam: _ProjectedAdam,
        s: GFISettings,
        run: _Run = _PLAIN,
    ) -> Tensor:
        """Algorithm 2: class-discriminative refinement, minimising Eq. (9) (or the
        setting's terms in its place).

        The guided and the background-only inputs go through the model as one
        batch of 2N."""
        n = inputs.shape[0]
        args2 = _expand_additional_forward_args(args, 2, ExpansionTypes.repeat)
        target2 = _expand_target(_target_on_device(target, inputs.device), 2, ExpansionTypes.repeat)

        def loss_fn(w: Tensor) -> Tensor:
            mask = mask_of(w)  # Eq. (6)-(7)
            guided = guided_input(inputs, background, mask)  # Eq. (2)
            removed = background_input(inputs, background, mask)  # Eq. (4)
            output = self._forward(torch.cat([guided, removed]), args2, run).to(inputs.dtype)
            scores = target_score(output, target2, s.score)
            return class_discriminative_loss(  # Eq. (9)
                scores[:n], scores[n:], w, s.lam, s.delta, prior=s.target_prior, mask=mask
            )

        return adam.run(loss_fn, s.target_steps, s.lr, s.lr_decay_every, s.lr_decay)

    # ---------------------------------------------------------------- forwards
    def _forward(self, inputs: Tensor, args: tuple[Any, ...] | None, run: _Run = _PLAIN) -> Tensor:
        """The model's scores, one row per example ((N,) outputs become (N, 1))."""
        if run.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with torch.autocast(inputs.device.type, dtype=torch.bfloat16, enabled=run.autocast):
            output = self.forward_func(inputs, *args) if args else self.forward_func(inputs)
        return _validation.per_example_scores(output) if isinstance(output, Tensor) else output

    def _forward_to_inversion_layer(
        self, inputs: Tensor, args: tuple[Any, ...] | None, run: _Run = _PLAIN
    ) -> Tensor:
        """Run the model only up to ``inversion_layer`` and return its output."""
        with LayerTap([self.inversion_layer], stop=True) as tap:
            self._forward(inputs, args, run)
        return self._as_map(cast(Tensor, tap.values[0])).to(inputs.dtype)

    def _as_map(self, value: Tensor) -> Tensor:
        return value if self.reshape_transform is None else self.reshape_transform(value)

    def _clean_pass(
        self,
        inputs: Tensor,
        args: tuple[Any, ...] | None,
        layer_input: bool,
        mask_layer: str = "layer",
        run: _Run = _PLAIN,
    ) -> tuple[Tensor, Tensor, Tensor]:
        # mask_layer: the layer rule, the attribute naming the module whose channels form
        # the mask ("layer", or "inversion_layer" for l1 = l0). Every module the pass
        # reaches is checked before it runs (training mode, the inputs' channels), through
        # whatever forward_func calls it.
        try:
            with (
                watch_modules(_validation.ForwardCheck(inputs)),
                LayerTap(
                    [getattr(self, mask_layer), self.inversion_layer],
                    use_inputs=[layer_input, False],
                    detach=True,
                ) as tap,
            ):
                output = self._forward(inputs, args, run)
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(
                f"forward_func failed on inputs of shape {tuple(inputs.shape)} ({first}): pass "
                "inputs of the shape, channels and dtype the model takes"
            ) from err
        names = ("layer", "inversion_layer")
        _validation.check_layer_calls(tap.calls, names)
        values = [
            self._as_map(v).to(inputs.dtype) if isinstance(v, Tensor) else v for v in tap.values
        ]
        _validation.check_clean_pass(values, names, output, inputs)
        return values[0], values[1], output

    def _gradcam_weights(
        self,
        inputs: Tensor,
        args: tuple[Any, ...] | None,
        target: TargetType,
        mask_layer: str,
        layer_input: bool,
        run: _Run = _PLAIN,
    ) -> Tensor:
        """Grad-CAM's channel weights (Selvaraju et al. 2017, Eq. (1)): the spatial mean of
        the gradient of the target's logit with respect to the mask layer's channels, one
        forward and one backward pass; divided by their largest magnitude per example.

        The tap hands the rest of the network a copy of the activation (as Captum's
        LayerGradCam), so an in-place op after the layer (``ReLU(inplace=True)``) does not
        turn the gradient into the gradient at the op's output."""
        # with gradients even under torch.no_grad() (as Captum's metrics call)
        with torch.enable_grad():
            with LayerTap([getattr(self, mask_layer)], use_inputs=[layer_input]) as tap:
                output = self._forward(inputs.detach().requires_grad_(True), args, run)
            features = self._as_map(cast(Tensor, tap.values[0]))
            logit = target_score(output, _target_on_device(target, inputs.device), "logit")
            (grad,) = torch.autograd.grad(logit.sum(), features, **run.grad_kwargs)
        weights = grad.mean(dim=(2, 3)).detach().to(inputs.dtype)
        return weights / weights.abs().amax(dim=1, keepdim=True).clamp_min(1e-12)

    @staticmethod
    def _initial_weights(init: float | Tensor, base_features: Tensor, inputs: Tensor) -> Tensor:
        """The start of the channel weights, (N, C): ``init`` everywhere or broadcast."""
        shape = base_features.shape[:2]
        if isinstance(init, Tensor):
            _validation.check_init_weight_shape(init, shape)
            return torch.broadcast_to(init.detach().to(inputs), shape).clone()
        return torch.full(shape, float(init), dtype=inputs.dtype, device=inputs.device)


class _ProjectedAdam:
    """Adam on the channel weights, projected onto ``weight_min <= w <= weight_max`` after
    every step (a bound that is None is no bound; the paper's: ``w >= 0``).

    The per-example losses are summed; Adam is element-wise, so every example
    follows exactly the trajectory it would follow alone. Its step count ``t``, which
    also drives the learning-rate schedule, runs on until :meth:`next_stage` resets it:
    one object serves both stages, with one state (the authors') or a fresh one per
    stage (the paper's). Gradients are taken with ``torch.autograd.grad`` for the
    weights only (with the call's ``grad_kwargs``).
    """

    # torch.optim.Adam's update (defaults betas=(0.9, 0.999), eps=1e-8), written out:
    # the same float ops, a third of the Python cost per step and no host-device sync
    beta1, beta2, eps = 0.9, 0.999, 1e-8

    def __init__(
        self,
        weights: Tensor,
        weight_min: float | None,
        weight_max: float | None,
        bar: tqdm,
        grad_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.w = weights.detach().clone().requires_grad_(True)
        self.grad_kwargs = dict(grad_kwargs or {})
        self.exp_avg = torch.zeros_like(weights)
        self.exp_avg_sq = torch.zeros_like(weights)
        self.t = 0
        self.weight_min, self.weight_max = weight_min, weight_max
        self.bounded = weight_min is not None or weight_max is not None
        self.bar = bar

    def next_stage(self, keep_state: bool) -> None:
        """Start the next stage: with the same Adam state and step count, or afresh."""
        if not keep_state:
            self.exp_avg.zero_()
            self.exp_avg_sq.zero_()
            self.t = 0

    def run(
        self,
        loss_fn: Callable[[Tensor], Tensor],
        steps: int,
        lr: float,
        decay_every: int,
        decay: float,
    ) -> Tensor:
        """``steps`` steps at learning rate ``lr * decay ** (t // decay_every)`` at step
        count t (from 0); returns the weights."""
        beta1, beta2, eps = self.beta1, self.beta2, self.eps
        w, exp_avg, exp_avg_sq = self.w, self.exp_avg, self.exp_avg_sq
        for _ in range(steps):
            step_lr = lr * decay ** (self.t // decay_every)
            (grad,) = torch.autograd.grad(loss_fn(w).sum(), w, **self.grad_kwargs)
            self.t += 1
            t = self.t
            with torch.no_grad():
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                denom = (exp_avg_sq.sqrt() / math.sqrt(1 - beta2**t)).add_(eps)
                w.addcdiv_(exp_avg, denom, value=-step_lr / (1 - beta1**t))
                if self.bounded:
                    w.clamp_(min=self.weight_min, max=self.weight_max)
            self.bar.update(1)
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
