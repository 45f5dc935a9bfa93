"""Forward hooks that read layer activations and can stop the forward pass early,
and a guard that leaves the user's model exactly as it was found."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle


class StopForward(Exception):
    """Raised inside a forward hook once every requested activation is captured."""


class LayerTap:
    """Capture the output (or input) of some modules during one forward pass.

    With ``stop=True`` the forward pass is cut short (``StopForward``) as soon as
    every tapped module has run, so the rest of the network costs nothing.
    ``detach=True`` stores detached copies (safe against later in-place ops).
    """

    def __init__(
        self,
        modules: Sequence[nn.Module],
        use_inputs: Sequence[bool] | None = None,
        stop: bool = False,
        detach: bool = False,
    ) -> None:
        self.modules = list(modules)
        self.use_inputs = list(use_inputs) if use_inputs is not None else [False] * len(modules)
        self.stop = stop
        self.detach = detach
        self.values: list[Any] = [None] * len(self.modules)
        self.calls: list[int] = [0] * len(self.modules)
        self._handles: list[RemovableHandle] = []

    def _make_hook(self, index: int) -> Callable[..., None]:
        use_input = self.use_inputs[index]

        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            value = args[0] if use_input else output
            self.calls[index] += 1
            if self.calls[index] == 1:
                if self.detach and isinstance(value, Tensor):
                    value = value.detach().clone()
                self.values[index] = value
            if self.stop and all(c > 0 for c in self.calls):
                raise StopForward

        return hook

    def __enter__(self) -> LayerTap:
        # a module tapped twice (l1 == l0) gets one hook per tap
        for i, module in enumerate(self.modules):
            self._handles.append(module.register_forward_hook(self._make_hook(i)))
        return self

    def __exit__(self, *exc: object) -> bool:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        return bool(exc and exc[0] is StopForward)


@contextmanager
def preserved_model_state(modules: Iterable[nn.Module]) -> Iterator[None]:
    """Freeze parameters for the duration (no parameter gradients are built) and
    restore every parameter's ``requires_grad`` and every module's ``training``
    flag on exit, exceptions included."""
    params: dict[int, tuple[nn.Parameter, bool]] = {}
    training: dict[int, tuple[nn.Module, bool]] = {}
    for root in modules:
        for module in root.modules():
            training.setdefault(id(module), (module, module.training))
        for p in root.parameters():
            params.setdefault(id(p), (p, p.requires_grad))
    try:
        for p, _ in params.values():
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in params.values():
            p.requires_grad_(flag)
        for module, flag in training.values():
            module.training = flag


def model_modules(forward_func: Callable[..., Any], *layers: nn.Module) -> list[nn.Module]:
    """The modules behind ``forward_func`` (itself, or the module of a bound method),
    plus the given layers."""
    found: list[nn.Module] = []
    if isinstance(forward_func, nn.Module):
        found.append(forward_func)
    owner = getattr(forward_func, "__self__", None)
    if isinstance(owner, nn.Module):
        found.append(owner)
    found.extend(layers)
    return found
