"""The one toy CNN: smoke runs of the commands (``--model toy``, ``bench --models tiny``)
and the test suite's small net (in the spirit of Captum's ``BasicModel_ConvNet``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from captum_gfi.presets import LayerPreset

__all__ = ["TinyConvNet", "toy_convnet", "toy_layers"]


class TinyConvNet(nn.Module):
    r"""
    ``conv(3->8) relu conv(8->16, stride 2) [bn] relu pool(4) linear(256->classes)``.

    ``conv2`` is a natural ``l1`` (16 channels at ``H/2 x W/2``) and ``pool`` a natural
    ``l0`` (see :func:`toy_layers`). Any input side of at least 2 pixels works.

    Args:
        classes (int): Number of outputs. Default: 5
        batch_norm (bool): Put a ``BatchNorm2d`` after ``conv2`` (else ``nn.Identity``).
                    Default: False
    """

    def __init__(self, classes: int = 5, batch_norm: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.bn: nn.Module = nn.BatchNorm2d(16) if batch_norm else nn.Identity()
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.fc = nn.Linear(256, classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu1(self.conv1(x))
        x = self.relu2(self.bn(self.conv2(x)))
        return self.fc(self.pool(x).flatten(1))


def toy_convnet(classes: int = 10, seed: int = 0) -> TinyConvNet:
    r"""
    A :class:`TinyConvNet` with weights drawn from ``seed``, in eval mode; the global
    random state is left as it was.

    Args:
        classes (int): Number of outputs. Default: 10
        seed (int): Seed of the initial weights. Default: 0

    Returns:
        TinyConvNet: The same weights for the same ``seed`` on every call.
    """
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        net = TinyConvNet(classes)
    finally:
        torch.random.set_rng_state(state)
    return net.eval()


def toy_layers(net: TinyConvNet) -> LayerPreset:
    """GFI's layers for the toy: ``l1 = net.conv2``, ``l0 = net.pool``."""
    return LayerPreset(net.conv2, net.pool, "toy")
