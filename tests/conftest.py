"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Iterator

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


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny models: one thread is faster (thread start-up costs more than it saves, far
    more on a busy machine). Restores the thread count afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
