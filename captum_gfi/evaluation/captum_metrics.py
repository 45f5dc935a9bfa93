"""Captum's ``infidelity`` and ``sensitivity_max`` applied uniformly to any
attribution method that produces ``(N, 1, H, W)`` maps (see
:mod:`captum_gfi.evaluation.methods`), GFI included.

A one-channel map is broadcast over the input's channels so that it has the
input's shape, as Captum's metrics require. ``infidelity`` is computed with
``normalize=True`` so that the (arbitrary) scale of each method's map does
not matter.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from captum.metrics import infidelity, sensitivity_max
from torch import Tensor

AttributionFn = Callable[[Tensor, Tensor], Tensor]


def _expand(maps: Tensor, inputs: Tensor) -> Tensor:
    if maps.dim() != 4 or maps.shape[0] != inputs.shape[0] or maps.shape[-2:] != inputs.shape[-2:]:
        raise ValueError(
            f"attribution maps must be (N, 1 or C, H, W) like the inputs {tuple(inputs.shape)}, "
            f"got {tuple(maps.shape)}"
        )
    return (maps.expand_as(inputs) if maps.shape[1] == 1 else maps).contiguous()


def infidelity_score(
    forward_func: Callable[[Tensor], Tensor],
    attribute: AttributionFn,
    inputs: Tensor,
    target: Tensor,
    noise_std: float = 0.1,
    n_perturb_samples: int = 10,
    seed: int | None = 0,
    max_examples_per_batch: int | None = None,
) -> Tensor:
    r"""
    Captum's infidelity of a method's maps under Gaussian input noise.

    Args:
        forward_func (Callable): the model.
        attribute (Callable): ``attribute(inputs, target) -> (N, 1, H, W)``.
        inputs (Tensor): ``(N, C, H, W)``.
        target (Tensor): ``(N,)`` class indices.
        noise_std (float): standard deviation of the perturbation ``I``.
        n_perturb_samples (int): Monte-Carlo samples.
        seed (int or None): seeds the noise for reproducibility.
        max_examples_per_batch (int, optional): perturbed examples per forward
                    pass (Captum's argument; default: all at once).

    Returns:
        infidelity (Tensor): ``(N,)``, lower is better.
    """
    if noise_std <= 0:
        raise ValueError(f"`noise_std` must be > 0, got {noise_std}")
    attributions = _expand(attribute(inputs, target).detach(), inputs)
    gen = torch.Generator(device=inputs.device)
    if seed is not None:
        gen.manual_seed(seed)

    def perturb(x: Tensor) -> tuple[Tensor, Tensor]:
        noise = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype) * noise_std
        return noise, x - noise

    return infidelity(
        forward_func,
        perturb,
        inputs,
        attributions,
        target=target,
        n_perturb_samples=n_perturb_samples,
        max_examples_per_batch=max_examples_per_batch,
        normalize=True,
    )


def sensitivity_score(
    attribute: AttributionFn,
    inputs: Tensor,
    target: Tensor,
    perturb_radius: float = 0.02,
    n_perturb_samples: int = 10,
    seed: int | None = 0,
    max_examples_per_batch: int | None = None,
) -> Tensor:
    r"""
    Captum's max-sensitivity of a method's maps under uniform noise in an
    L-infinity ball of ``perturb_radius``.

    ``max_examples_per_batch`` bounds the perturbed examples per call of
    ``attribute`` (Captum's argument; default: all ``N * n_perturb_samples``
    at once).

    Returns:
        sensitivity (Tensor): ``(N,)``, lower is better.
    """
    if perturb_radius <= 0:
        raise ValueError(f"`perturb_radius` must be > 0, got {perturb_radius}")
    if seed is not None:
        torch.manual_seed(seed)

    def explain(x: Tensor | tuple[Tensor, ...], target: Tensor) -> tuple[Tensor, ...]:
        x0 = x[0] if isinstance(x, tuple) else x  # captum passes a tuple of inputs
        return (_expand(attribute(x0, target).detach(), x0),)

    return sensitivity_max(
        explain,
        inputs,
        perturb_radius=perturb_radius,
        n_perturb_samples=n_perturb_samples,
        target=target,
        max_examples_per_batch=max_examples_per_batch,
    )
