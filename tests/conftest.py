"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest
import torch
from torch import Tensor, nn

from captum_gfi.demo.toy import TinyConvNet


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


class ModelState:
    """What GFI must leave as it found it: every parameter's ``requires_grad`` and
    ``.grad`` (None), every module's ``training`` flag and hooks, the global module
    hooks, and the parameters' and buffers' values."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.requires_grad = [p.requires_grad for p in model.parameters()]
        self.training = [m.training for m in model.modules()]
        self.hooks = self._hooks()
        self.state = {k: v.clone() for k, v in model.state_dict().items()}

    def _hooks(self) -> list[tuple[int, ...]]:
        per_module = [
            (
                len(m._forward_hooks),
                len(m._forward_pre_hooks),
                len(m._backward_hooks),
                len(m._backward_pre_hooks),
            )
            for m in self.model.modules()
        ]
        from torch.nn.modules import module as torch_module

        global_hooks = (
            len(torch_module._global_forward_hooks),
            len(torch_module._global_forward_pre_hooks),
            len(torch_module._global_backward_hooks),
        )
        return [*per_module, global_hooks]

    def assert_unchanged(self) -> None:
        model = self.model
        assert [p.requires_grad for p in model.parameters()] == self.requires_grad
        assert [m.training for m in model.modules()] == self.training
        assert all(p.grad is None for p in model.parameters())
        assert self._hooks() == self.hooks
        after = model.state_dict()
        for k, v in self.state.items():
            if not v.is_meta:
                torch.testing.assert_close(after[k], v, rtol=0, atol=0, equal_nan=True, msg=k)


@pytest.fixture
def untouched() -> Callable[[nn.Module], AbstractContextManager[None]]:
    """``with untouched(model): ...`` asserts the block leaves ``model`` as it was
    (see :class:`ModelState`); put ``pytest.raises`` inside it."""

    @contextmanager
    def guard(model: nn.Module) -> Iterator[None]:
        state = ModelState(model)
        yield
        state.assert_unchanged()

    return guard
