"""Why ``setting="refined"`` misses the float32 batch-vs-single target of 1e-3.

An experiment for docs/research_settings.md, not package code. On the
first test composites of ``first_test_composites`` (the robustness script's cases) it
prints

1. per Adam step, how far the channel weights of the whole batch and of each case alone
   have drifted apart (max abs), and how far apart their gradients are (max abs difference
   relative to the example's largest gradient entry);
2. how far the final maps move when the *start* (Grad-CAM's weights) is perturbed by
   Gaussian noise of relative size 1e-7 / 1e-6 / 1e-5 (times the example's max |w0|), with
   the batch as it is: a perturbation of the size of float32 rounding, without any
   batching.

If (2) at 1e-7 is as large as the batch-vs-single difference, the gap comes from the
objective's sensitivity to its start, and no batching trick short of bitwise
batch-invariant kernels reaches 1e-3.

    python research/batch_vs_single_sensitivity.py --cases 8 --threads 1
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from robustness import adam_experiment  # research/, the script's own folder
from torch import Tensor

from captum_gfi import guided_feature_inversion as G
from captum_gfi._malloc import keep_freed_memory

_shipped_run = G._ProjectedAdam.run
#: per call: the weights at every step and the gradients of every step
TRACE: list[list[tuple[Tensor, Tensor | None]]] = []
NOISE: list[float] = [0.0]


def _traced_run(
    self: G._ProjectedAdam,
    loss_fn: Callable[[Tensor], Tensor],
    steps: int,
    lr: float,
    decay_every: int,
    decay: float,
) -> Tensor:
    """The shipped Adam, one step at a time, recording weights and gradients."""
    if NOISE[0]:
        gen = torch.Generator().manual_seed(1)
        with torch.no_grad():
            scale = self.w.abs().amax(1, keepdim=True)
            self.w.add_(NOISE[0] * scale * torch.randn(self.w.shape, generator=gen))
    trace: list[tuple[Tensor, Tensor | None]] = [(self.w.detach().clone(), None)]
    grads: list[Tensor] = []
    handle = self.w.register_hook(lambda g: grads.append(g.detach().clone()))
    for _ in range(steps):  # the weights are updated in place: one hook sees every step
        _shipped_run(self, loss_fn, 1, lr, decay_every, decay)
        trace.append((self.w.detach().clone(), grads[-1]))
    handle.remove()
    TRACE.append(trace)
    return self.w.detach()


def main() -> int:
    keep_freed_memory()  # as the captum-gfi commands do: no page faults on every step
    gfi, _test, x, t = adam_experiment(__doc__.split("\n\n")[0], _traced_run)

    def traced(inputs: Tensor, target: Tensor) -> tuple[Tensor, list[tuple[Tensor, Tensor | None]]]:
        TRACE.clear()  # one Adam run per stage: keep the one that took steps
        maps = gfi.attribute(inputs, target=target, setting="refined").detach()
        return maps, max(TRACE, key=len)

    batch, batch_trace = traced(x, t)
    alone = [traced(x[i : i + 1], t[i : i + 1]) for i in range(len(x))]
    single = torch.cat([m for m, _ in alone])
    diff = (batch - single).flatten(1).abs().amax(1)
    print(f"batch vs single, max abs per case: {[round(float(d), 4) for d in diff]}")
    for k, (wb, gb) in enumerate(batch_trace):
        ws = torch.cat([tr[k][0] for _, tr in alone])
        line = f"step {k:2d}: max|w_batch - w_single| {float((wb - ws).abs().max()):.1e}"
        if gb is not None:
            gs = torch.cat([tr[k][1] for _, tr in alone])  # type: ignore[misc]
            rel = (gb - gs).abs().amax(1) / gb.abs().amax(1).clamp_min(1e-30)
            line += f", gradients: max relative difference {float(rel.max()):.1e}"
        print(line, flush=True)
    for noise in (1e-7, 1e-6, 1e-5):
        NOISE[0] = noise
        moved = gfi.attribute(x, target=t, setting="refined").detach()
        NOISE[0] = 0.0
        d = (moved - batch).flatten(1).abs().amax(1)
        print(f"start perturbed by {noise:g} x max|w0|: max |map change| {float(d.max()):.4f}, "
              f"per case {[round(float(v), 4) for v in d]}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
