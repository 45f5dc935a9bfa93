"""Shared fixtures."""

from __future__ import annotations

import pytest
import torch
from _nets import TinyConvNet
from torch import Tensor


@pytest.fixture
def net() -> TinyConvNet:
    torch.manual_seed(0)
    return TinyConvNet().eval()


@pytest.fixture
def images() -> Tensor:
    torch.manual_seed(1)
    return torch.randn(3, 3, 16, 16)
