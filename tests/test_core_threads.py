"""Several threads explaining with one model at once, with one shared or one GFI object
each: every call gives the single-threaded result, and the model ends exactly as it was
found (requires_grad, training flags, hooks), whatever the interleaving."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest
import torch
from torch import Tensor, nn

from captum_gfi import GuidedFeatureInversion
from captum_gfi.demo.toy import TinyConvNet

THREADS = 4
Untouched = Callable[[nn.Module], AbstractContextManager[None]]


def model() -> TinyConvNet:
    torch.manual_seed(0)
    net = TinyConvNet(batch_norm=True).eval()
    net.conv1.weight.requires_grad_(False)  # a frozen parameter stays frozen
    net.relu1.train()  # a training flag that does not matter is kept as it is
    return net


def run_threads(call: Callable[[int], Tensor]) -> list[Tensor | BaseException]:
    """``call(k)`` in THREADS real threads that start together (a barrier)."""
    barrier = threading.Barrier(THREADS)
    results: list[Tensor | BaseException] = [RuntimeError("not run")] * THREADS

    def work(k: int) -> None:
        barrier.wait()
        try:
            results[k] = call(k)
        except BaseException as err:  # reported by the test
            results[k] = err

    threads = [threading.Thread(target=work, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.parametrize("shared", [True, False], ids=["one-gfi", "gfi-per-thread"])
@pytest.mark.parametrize("setting", ["paper", "refined"])
def test_concurrent_calls_give_the_single_threaded_result(
    images: Tensor, untouched: Untouched, shared: bool, setting: str
) -> None:
    net = model()
    kwargs = {"setting": setting, "target_steps": 6}
    if setting == "paper":
        kwargs["inversion_steps"] = 3
    targets = [[0, 1, 2], [3, 4, 0], [1, 1, 1], [2, 0, 4]]
    one = GuidedFeatureInversion(net, net.conv2, net.pool)
    expected = [one.attribute(images, target=t, **kwargs) for t in targets]
    gfis = [one if shared else GuidedFeatureInversion(net, net.conv2, net.pool) for _ in targets]
    with untouched(net):
        results = run_threads(lambda k: gfis[k].attribute(images, target=targets[k], **kwargs))
    for got, want in zip(results, expected):
        assert isinstance(got, Tensor), got
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert not net.conv1.weight.requires_grad and net.conv2.weight.requires_grad
    assert net.relu1.training and not net.training


def test_a_failing_thread_leaves_the_others_and_the_model_intact(
    images: Tensor, untouched: Untouched
) -> None:
    """One of the threads fails half-way (a bad target, seen after the clean pass); the
    others finish with the right result and the model is restored once all are done."""
    net = model()
    gfi = GuidedFeatureInversion(net, net.conv2, net.pool)
    kwargs = {"inversion_steps": 2, "target_steps": 4}
    expected = gfi.attribute(images, target=1, **kwargs)
    with untouched(net):
        results = run_threads(lambda k: gfi.attribute(images, target=9 if k == 2 else 1, **kwargs))
    assert isinstance(results[2], ValueError) and "out of range" in str(results[2])
    for k in (0, 1, 3):
        got = results[k]
        assert isinstance(got, Tensor), got
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
