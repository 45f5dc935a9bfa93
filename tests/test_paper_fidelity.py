"""One step of each stage equals a direct computation of Eq. (8)/(9) and of
Algorithm 1/2's update (Adam, clipping to w >= 0, the stage-2 lr schedule).

The reference below re-implements the paper from scratch with plain tensor
operations on a tiny Sequential net (no captum_gfi code on the reference path).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from captum_gfi import GuidedFeatureInversion

L1_INDEX, L0_INDEX = 3, 4  # net[3] = ReLU after conv2 (l1), net[4] = pool (l0)


def tiny_net() -> nn.Sequential:
    torch.manual_seed(0)
    return (
        nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(4, 6, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AvgPool2d(2),
            nn.Flatten(),
            nn.Linear(6 * 2 * 2, 4),
        )
        .double()
        .eval()
    )


def reference_mask(w: Tensor, f1: Tensor, size: tuple[int, int]) -> Tensor:
    m = (w[:, :, None, None] * f1).sum(1, keepdim=True)  # Eq. (6)
    lo = m.amin(dim=(2, 3), keepdim=True)
    hi = m.amax(dim=(2, 3), keepdim=True)
    m = (m - lo) / (hi - lo)  # Eq. (7)
    return F.interpolate(m, size=size, mode="bilinear", align_corners=False)


def reference_losses(net: nn.Sequential, x: Tensor, p: Tensor, w: Tensor, target: int) -> tuple:
    f1 = net[: L1_INDEX + 1](x)
    f0 = net[: L0_INDEX + 1](x)
    m = reference_mask(w, f1, (x.shape[2], x.shape[3]))
    phi = x * m + p * (1 - m)  # Eq. (2)
    phi_bg = x * (1 - m) + p * m  # Eq. (4)
    # ||w||_1 = sum(w) on the feasible set w >= 0 (with gradient 1 at w = 0, as documented)
    l1 = w.sum()
    loss8 = ((net[: L0_INDEX + 1](phi) - f0) ** 2).sum() + 10.0 * l1  # Eq. (8)
    prob = lambda z: torch.softmax(net(z), dim=1)[:, target].sum()  # noqa: E731
    loss9 = -prob(phi) + 1.0 * prob(phi_bg) + 1.0 * l1  # Eq. (9)
    return loss8, loss9


def reference_adam(
    w0: Tensor, grad_fn, steps: int, lr: float, decay_every: int | None, decay: float = 0.5
) -> Tensor:
    """Adam (beta 0.9 / 0.999, eps 1e-8) with w clipped to >= 0 after every step."""
    w = w0.clone()
    m = torch.zeros_like(w)
    v = torch.zeros_like(w)
    for t in range(1, steps + 1):
        g = grad_fn(w)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        m_hat = m / (1 - 0.9**t)
        v_hat = v / (1 - 0.999**t)
        step_lr = lr * (decay ** ((t - 1) // decay_every) if decay_every else 1.0)
        w = (w - step_lr * m_hat / (v_hat.sqrt() + 1e-8)).clamp(min=0.0)
    return w


@pytest.fixture
def setup() -> tuple[nn.Sequential, Tensor, Tensor]:
    net = tiny_net()
    torch.manual_seed(1)
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    p = torch.randn(1, 3, 8, 8, dtype=torch.float64) * 0.1
    return net, x, p


def grad_of(index: int, net: nn.Sequential, x: Tensor, p: Tensor, target: int):
    def fn(w: Tensor) -> Tensor:
        w = w.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(reference_losses(net, x, p, w, target)[index], w)
        return g

    return fn


def run_gfi(net: nn.Sequential, x: Tensor, p: Tensor, **kwargs) -> Tensor:
    gfi = GuidedFeatureInversion(net, net[L1_INDEX], net[L0_INDEX])
    _, w = gfi.attribute(x, baseline=p, return_weights=True, **kwargs)
    return w


def test_algorithm1_first_step_by_hand(setup) -> None:
    net, x, p = setup
    # With gamma large the L1 term dominates every gradient: Adam's first step is
    # exactly -lr * sign(g) = -0.01 for each channel, so 0.1 -> 0.09.
    w = run_gfi(net, x, p, stage="inversion", inversion_steps=1, gamma=1e6)
    torch.testing.assert_close(w, torch.full((1, 6), 0.09, dtype=torch.float64))


def test_algorithm1_matches_reference(setup) -> None:
    net, x, p = setup
    w0 = torch.full((1, 6), 0.1, dtype=torch.float64)
    for steps in (1, 2, 10):
        expected = reference_adam(w0, grad_of(0, net, x, p, 0), steps, 1e-2, None)
        got = run_gfi(net, x, p, stage="inversion", inversion_steps=steps)
        torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)


def test_algorithm2_matches_reference_with_lr_schedule(setup) -> None:
    net, x, p = setup
    w0 = torch.full((1, 6), 0.1, dtype=torch.float64)
    # 23 steps cover three learning rates: 1e-2, 5e-3, 2.5e-3
    expected = reference_adam(w0, grad_of(1, net, x, p, 2), 23, 1e-2, 10)
    got = run_gfi(net, x, p, target=2, stage="target", target_steps=23)
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)
    # a schedule that never decays gives a different trajectory
    flat = reference_adam(w0, grad_of(1, net, x, p, 2), 23, 1e-2, None)
    assert not torch.allclose(flat, expected, atol=1e-6)


def test_both_stages_chain(setup) -> None:
    net, x, p = setup
    w0 = torch.full((1, 6), 0.1, dtype=torch.float64)
    w1 = reference_adam(w0, grad_of(0, net, x, p, 1), 10, 1e-2, None)
    w2 = reference_adam(w1, grad_of(1, net, x, p, 1), 15, 1e-2, 10)
    got = run_gfi(net, x, p, target=1, inversion_steps=10, target_steps=15)
    torch.testing.assert_close(got, w2, atol=1e-12, rtol=0)


def test_clipping_keeps_weights_non_negative(setup) -> None:
    net, x, p = setup
    # from 0.005 one step of -0.01 would go negative: clipped to exactly 0
    w = run_gfi(net, x, p, stage="inversion", inversion_steps=1, gamma=1e6, init_weight=0.005)
    assert torch.equal(w, torch.zeros(1, 6, dtype=torch.float64))


def test_eq9_first_step_sign(setup) -> None:
    net, x, p = setup
    # delta large: every channel shrinks by exactly lr on the first step of stage 2
    w = run_gfi(net, x, p, target=0, stage="target", target_steps=1, delta=1e6)
    torch.testing.assert_close(w, torch.full((1, 6), 0.09, dtype=torch.float64))
    assert math.isclose(float(w.sum()), 0.54)
