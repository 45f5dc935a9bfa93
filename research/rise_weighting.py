"""Why TorchRay's RISE scores low on the benchmark: its weighting of the masks.

TorchRay's ``rise`` weighs each random mask by the *sigmoid* of the model's output for the
class; the RISE paper (Petsiuk et al., 2018) weighs it by the class's *softmax* probability.
On an ImageNet classifier the target's logit is large whenever enough of the object is
visible, so its sigmoid is close to 1 for most masks and the map is close to the masks'
mean, a nearly uniform field. This driver computes both maps from one and the same set
of masks and forward passes, on the first ``--limit`` test cases of a benchmark run
(``cases.pt`` of an ``evaluate --out`` folder), and prints each map's energy share,
pointing and top-k precision (the benchmark's own metric functions), its mean / max, the
paired difference softmax − sigmoid with intervals resampling cases and photos, and how
often the sigmoid weight exceeds 0.99::

    python research/rise_weighting.py docs/benchmark/efficientnet-lite0/composites-large-rise \\
        --limit 20 --num-masks 1000

The model wrapper returns ``[logits, log(p / (1 - p))]`` (``p`` the softmax), so the second
half's sigmoid is the softmax probability and TorchRay's own ``rise`` gives both maps.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import Tensor, nn

from captum_gfi._malloc import keep_freed_memory
from captum_gfi.evaluate import load_model_spec
from captum_gfi.evaluation.cases import case_photo
from captum_gfi.evaluation.stats import paired_difference

sys.path.insert(0, str(Path(__file__).parent))
from map_contrast import contrast  # noqa: E402  (each map's mean / max)
from scorecam_gap import METRICS  # noqa: E402  (the study's metrics: energy share, pointing, top-k)


class BothWeightings(nn.Module):
    """``model``'s logits followed by the logit of its softmax, ``(N, 2 * classes)``; the
    sigmoid weights of ``target`` are kept in ``weights`` (one list per call)."""

    def __init__(self, model: nn.Module, target: int) -> None:
        super().__init__()
        self.model = model
        self.target = target
        self.weights: list[Tensor] = []

    def forward(self, x: Tensor) -> Tensor:
        logits = self.model(x)
        logp = logits.log_softmax(dim=1)
        odds = logp - torch.log1p(-logp.exp().clamp_max(1 - 1e-7))
        self.weights.append(torch.sigmoid(logits[:, self.target]))
        return torch.cat([logits, odds], dim=1)


def main(argv: Sequence[str] | None = None) -> int:
    keep_freed_memory()  # as the captum-gfi commands do: no page faults on every step
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("run", type=Path, help="an evaluate --out folder holding cases.pt")
    p.add_argument("--model", default="efficientnet-lite0")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=16)
    p.add_argument("--num-masks", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from torchray.attribution.rise import rise

    saved = torch.load(args.run / "cases.pt", weights_only=False)
    cases = [c for c in saved["cases"] if c.split == args.split][: args.limit]
    spec = load_model_spec(SimpleNamespace(model=args.model, weights=None, layer=None,
                                           inversion_layer=None, image_size=224))  # fmt: skip
    model = spec.model.eval()
    maps: dict[str, list[Tensor]] = {"sigmoid (TorchRay)": [], "softmax (paper)": []}
    saturated = []
    for case in cases:
        wrapped = BothWeightings(model, case.target)
        sal = rise(wrapped, case.image[None], seed=0, num_masks=args.num_masks, batch_size=32)
        classes = sal.shape[1] // 2
        maps["sigmoid (TorchRay)"].append(sal[:, case.target])
        maps["softmax (paper)"].append(sal[:, classes + case.target])
        w = torch.cat(wrapped.weights[1:])  # the first call is RISE's probe of the classes
        saturated.append(float((w > 0.99).float().mean()))
    masks = torch.stack([c.mask for c in cases]).bool()
    photos = [str(case_photo(c)) for c in cases]
    print(f"{len(cases)} {args.split} cases, {len(set(photos))} photos, {args.num_masks} masks")
    print(f"masks whose sigmoid weight > 0.99: {np.mean(saturated):.3f} of them (mean over cases)")
    scores = {}
    print("| RISE weighting | energy in GT | pointing | top-k precision | mean / max |")
    print("|---|---|---|---|---|")
    for name, m in maps.items():
        stacked = torch.stack(m).float()
        scores[name] = {k: f(stacked, masks).float().numpy() for k, f in METRICS.items()}
        cells = [f"{scores[name][k].mean():.3f}" for k in METRICS]
        print(f"| {name} | {' | '.join(cells)} | {float(contrast(stacked).mean()):.3f} |")
    a, b = scores["softmax (paper)"], scores["sigmoid (TorchRay)"]
    diffs = [str(paired_difference(a[k], b[k], photos)) for k in METRICS]
    print(f"| softmax − sigmoid | {' | '.join(diffs)} | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
