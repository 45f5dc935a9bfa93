"""Float32 batch-vs-single agreement of ``setting="refined"`` with a relative Adam epsilon.

An experiment for docs/research_settings.md, not package code: it
replaces ``_ProjectedAdam.run`` by the same Adam with ``eps = eps_rel * max|g|`` (per
example, from the first step's gradient) and prints, for each ``eps_rel``, the largest
absolute difference between the maps of the whole batch and of each case alone, how far the
maps move from the shipped setting's, and the mean energy share in the ground truth.

    python research/adam_eps_batch_vs_single.py --cases 8 --threads 1
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from robustness import adam_experiment  # research/, the script's own folder
from torch import Tensor

from captum_gfi import guided_feature_inversion as G
from captum_gfi._malloc import keep_freed_memory

EPS_REL: list[float | None] = [None]  # None: the shipped Adam (eps = 1e-8)
_shipped_run = G._ProjectedAdam.run


def _run(
    self: G._ProjectedAdam,
    loss_fn: Callable[[Tensor], Tensor],
    steps: int,
    lr: float,
    decay_every: int,
    decay: float,
) -> Tensor:
    if EPS_REL[0] is None:
        return _shipped_run(self, loss_fn, steps, lr, decay_every, decay)
    beta1, beta2 = self.beta1, self.beta2
    w, exp_avg, exp_avg_sq = self.w, self.exp_avg, self.exp_avg_sq
    eps: Tensor | None = None
    for _ in range(steps):
        step_lr = lr * decay ** (self.t // decay_every)
        (grad,) = torch.autograd.grad(loss_fn(w).sum(), w)
        if eps is None:
            scale = grad.flatten(1).abs().amax(1).view(-1, *[1] * (grad.dim() - 1))
            eps = scale * EPS_REL[0] + 1e-12
        self.t += 1
        t = self.t
        with torch.no_grad():
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = (exp_avg_sq.sqrt() / math.sqrt(1 - beta2**t)).add_(eps)
            w.addcdiv_(exp_avg, denom, value=-step_lr / (1 - beta1**t))
            if self.bounded:
                w.clamp_(min=self.weight_min, max=self.weight_max)
        self.bar.update(1)
    return w.detach()


def main() -> int:
    keep_freed_memory()  # as the captum-gfi commands do: no page faults on every step
    gfi, test, x, t = adam_experiment(__doc__.split("\n\n")[0], _run)
    shipped = None
    for eps_rel in (None, 1e-4, 1e-3, 1e-2, 3e-2, 1e-1):
        EPS_REL[0] = eps_rel
        maps = gfi.attribute(x, target=t, setting="refined").detach()
        alone = [
            gfi.attribute(x[i : i + 1], target=t[i : i + 1], setting="refined")
            for i in range(len(x))
        ]
        single = torch.cat(alone).detach()
        shipped = maps if shipped is None else shipped
        pos = maps.clamp_min(0)[:, 0]
        share = torch.stack([p[c.mask].sum() / p.sum() for p, c in zip(pos, test)]).mean()
        print(f"eps_rel={eps_rel} batch_vs_single={float((maps - single).abs().max()):.4f} "
              f"max|map-shipped|={float((maps - shipped).abs().max()):.4f} "
              f"share={float(share):.4f}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
