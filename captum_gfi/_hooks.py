"""Forward hooks that read layer activations and can stop the forward pass early,
a watch over every module one forward pass runs, and a guard that leaves the user's
model exactly as it was found.

Every hook here acts only on forward passes of the thread that installed it, so
several threads can explain with one model at the same time: each sees its own
activations, and the model's ``requires_grad`` and ``training`` flags are restored by
the last call to leave (see :func:`preserved_model_state`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from torch import Tensor, nn
from torch.nn.modules import module as torch_module
from torch.utils.hooks import RemovableHandle


class StopForward(Exception):
    """Raised inside a forward hook once every requested activation is captured."""


class LayerTap:
    """Capture the output (or input) of some modules during one forward pass.

    With ``stop=True`` the forward pass is cut short (``StopForward``) as soon as
    every tapped module has run, so the rest of the network costs nothing.
    ``detach=True`` stores detached copies. Otherwise the captured tensor stays in
    the autograd graph and the rest of the network receives a copy of it, as
    Captum's layer methods do: an in-place operation after the layer (``ReLU(inplace=
    True)``) then changes the copy, not the captured activation. An input is captured
    by a forward *pre*-hook, before the module itself can overwrite it in place.

    Only forward passes of the thread that entered the tap are seen.
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
        self._thread = threading.get_ident()

    def _capture(self, index: int, value: Any) -> Any:
        """Record ``value``; returns what the network should go on with (None: itself)."""
        self.calls[index] += 1
        if self.calls[index] > 1:
            return None
        if self.stop and all(c > 0 for c in self.calls):
            self.values[index] = value
            raise StopForward
        if not isinstance(value, Tensor):
            self.values[index] = value
            return None
        if self.detach:
            self.values[index] = value.detach().clone()
            return None
        self.values[index] = value
        return value.clone()

    def _output_hook(self, index: int) -> Callable[..., Any]:
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
            if threading.get_ident() != self._thread:
                return None
            return self._capture(index, output)

        return hook

    def _input_hook(self, index: int) -> Callable[..., Any]:
        def hook(module: nn.Module, args: tuple[Any, ...]) -> Any:
            if threading.get_ident() != self._thread or not args:
                return None
            copy = self._capture(index, args[0])
            return None if copy is None else (copy, *args[1:])

        return hook

    def __enter__(self) -> LayerTap:
        # a module tapped twice (l1 == l0) gets one hook per tap
        for i, module in enumerate(self.modules):
            if self.use_inputs[i]:
                handle = module.register_forward_pre_hook(self._input_hook(i))
            else:
                handle = module.register_forward_hook(self._output_hook(i))
            self._handles.append(handle)
        return self

    def __exit__(self, *exc: object) -> bool:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        return bool(exc and exc[0] is StopForward)


@contextmanager
def watch_modules(check: Callable[[nn.Module, tuple[Any, ...]], None]) -> Iterator[None]:
    """Call ``check(module, args)`` before every module's forward in this thread, for
    the duration: the modules ``forward_func`` reaches however it calls them (a lambda
    or a function around the model included). ``check`` may raise to stop the pass
    before the module runs."""
    thread = threading.get_ident()

    def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
        if threading.get_ident() == thread:
            check(module, args)

    handle = torch_module.register_module_forward_pre_hook(hook)
    try:
        yield
    finally:
        handle.remove()


# parameter / module id -> [object, flag as first found, number of calls holding it]
_held_params: dict[int, list[Any]] = {}
_held_modules: dict[int, list[Any]] = {}
_held_lock = threading.Lock()


def _hold(table: dict[int, list[Any]], obj: Any, flag: bool) -> None:
    entry = table.get(id(obj))
    if entry is None or entry[0] is not obj:
        table[id(obj)] = [obj, flag, 1]
    else:
        entry[2] += 1


def _release(table: dict[int, list[Any]], obj: Any) -> bool | None:
    """One holder fewer; the flag to restore when it was the last one, else None."""
    entry = table.get(id(obj))
    if entry is None or entry[0] is not obj:
        return None
    entry[2] -= 1
    if entry[2] > 0:
        return None
    del table[id(obj)]
    return bool(entry[1])


@contextmanager
def preserved_model_state(modules: Iterable[nn.Module]) -> Iterator[None]:
    """Freeze parameters for the duration (no parameter gradients are built) and
    restore every parameter's ``requires_grad`` and every module's ``training`` flag
    on exit, exceptions included.

    Calls may overlap (threads explaining with one model): the flags are recorded by
    the first call to hold a parameter or module and restored by the last one to
    leave, so the model ends as it was found whatever the interleaving."""
    params: dict[int, nn.Parameter] = {}
    mods: dict[int, nn.Module] = {}
    for root in modules:
        for module in root.modules():
            mods.setdefault(id(module), module)
        for p in root.parameters():
            params.setdefault(id(p), p)
    with _held_lock:
        for p in params.values():
            _hold(_held_params, p, p.requires_grad)
            p.requires_grad_(False)
        for m in mods.values():
            _hold(_held_modules, m, m.training)
    try:
        yield
    finally:
        with _held_lock:
            for p in params.values():
                flag = _release(_held_params, p)
                if flag is not None:
                    p.requires_grad_(flag)
            for m in mods.values():
                flag = _release(_held_modules, m)
                if flag is not None:
                    m.training = flag


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
