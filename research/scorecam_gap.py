"""Why ScoreCAM has more of its map's energy inside the object than ``refined``, and what
closes the gap within ``refined``'s 21 passes: a research driver on a benchmark run's cases.

It reads the cases a ``captum-gfi evaluate --dataset composites`` run built (``cases.pt`` of
its ``--out``), takes one split (``tune`` by default: the decisions are made there) and
computes, for every case, the maps of:

- ``gradcam``: Captum's LayerGradCam (the benchmark's ``gradcam``);
- ``refined``: ``GuidedFeatureInversion(setting="refined")`` (starts from Grad-CAM's weights);
- ``refined_gcpp``: ``refined`` started from GradCAM++'s channel weights instead (the
  weights of pytorch-grad-cam's ``GradCAMPlusPlus.get_cam_weights``, from the same one
  forward and one backward pass as Grad-CAM's, divided by their largest magnitude, given
  as ``init_weight``): the same 21 passes;
- ``scorecam``: pytorch-grad-cam's ScoreCAM (the benchmark's peer, 321 passes);
- any ``research:<name>`` setting of ``research/settings_search.py`` given with
  ``--settings``.

It prints each method's mean energy share, pointing and top-k precision (the benchmark's
own metric functions) and the paired difference to ``--reference`` with its 95 % bootstrap
interval over cases and over photos. ``--powers 2,4`` and ``--rank`` add rows for every
method's maps under a monotone transform (``name^p``; ``rank(name)``, each pixel's rank in its
map), which leaves pointing and top-k precision unchanged: how much of a lead in energy share
is the maps' contrast rather than where they put their highest values. Maps are cached in
``--cache`` (one ``.pt`` per method), so a method is computed once::

    python research/scorecam_gap.py /tmp/runs/lite0-large --model efficientnet-lite0 \\
        --methods gradcam,refined,refined_gcpp,scorecam --cache /tmp/gap-cache
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from captum_gfi import GuidedFeatureInversion
from captum_gfi._malloc import keep_freed_memory
from captum_gfi.evaluate import load_model_spec
from captum_gfi.evaluation.benchmark_metrics import energy_share, pointing_hits, topk_precision
from captum_gfi.evaluation.cases import case_photo
from captum_gfi.evaluation.methods import make_method
from captum_gfi.evaluation.stats import paired_difference

METRICS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "share": energy_share,
    "point": pointing_hits,
    "topk": topk_precision,
}


def gradcam_pp_weights(model: nn.Module, layer: nn.Module, x: Tensor, target: Tensor) -> Tensor:
    """GradCAM++'s channel weights by pytorch-grad-cam's own formula, ``(N, C)``, divided
    by their largest magnitude per example (as ``refined`` divides Grad-CAM's)."""
    from pytorch_grad_cam.grad_cam_plusplus import GradCAMPlusPlus

    store: list[Tensor] = []

    def hook(module: nn.Module, args: Any, output: Tensor) -> Tensor:
        out = output.clone()
        store.append(out)
        return out

    handle = layer.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            logits = model(x.detach().requires_grad_(True))
            (grad,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), store[0])
    finally:
        handle.remove()
    acts = store[0].detach().double().numpy()
    w = GradCAMPlusPlus.get_cam_weights(
        None,
        None,
        None,
        None,
        acts,
        grad.double().numpy(),  # type: ignore[arg-type]
    )
    weights = torch.from_numpy(np.asarray(w)).to(x.dtype)
    return weights / weights.abs().amax(dim=1, keepdim=True).clamp_min(1e-12)


def pixel_ranks(maps: Tensor) -> Tensor:
    """Each map's pixels replaced by their rank in it, scaled to ``[0, 1]`` (ties broken by
    position): every map then has the same values, only their places differ."""
    flat = maps.flatten(1)
    order = torch.argsort(flat, dim=1, stable=True)
    ranks = torch.empty_like(flat)
    steps = torch.linspace(0, 1, flat.shape[1], dtype=flat.dtype).expand_as(flat)
    ranks.scatter_(1, order, steps)
    return ranks.view_as(maps)


def method_fn(name: str, spec: Any) -> Callable[[Tensor, Tensor], Tensor]:
    """``attribute(inputs, target) -> (N, 1, H, W)`` of a method of this study."""
    if name in ("refined", "refined_gcpp") or name.startswith("research:"):
        gfi = GuidedFeatureInversion(spec.model, spec.layer, inversion_layer=spec.inversion_layer)
        setting = "refined" if name == "refined_gcpp" else name

        def gfi_fn(x: Tensor, t: Tensor) -> Tensor:
            init = (
                gradcam_pp_weights(spec.model, spec.layer, x, t) if name == "refined_gcpp" else None
            )
            return gfi.attribute(x, target=t, setting=setting, init_weight=init, seed=0,
                                 show_progress=False).detach()  # fmt: skip

        return gfi_fn
    return make_method(name, spec.model, spec.layer, spec.inversion_layer)


def maps_of(name: str, spec: Any, cases: Sequence[Any], cache: Path, batch: int) -> Tensor:
    path = cache / f"{name.replace(':', '_')}.pt"
    ids = [c.case_id for c in cases]
    if path.is_file():
        saved = torch.load(path)
        if saved["ids"] == ids:
            return saved["maps"]
    fn = method_fn(name, spec)
    out = []
    start = time.perf_counter()
    for i in range(0, len(cases), batch):
        part = cases[i : i + batch]
        x = torch.stack([c.image for c in part])
        t = torch.tensor([c.target for c in part])
        out.append(fn(x, t).float())
    maps = torch.cat(out)
    seconds = (time.perf_counter() - start) / len(cases)
    print(f"{name}: {seconds:.2f} s / image", flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    torch.save({"ids": ids, "maps": maps, "seconds": seconds}, path)
    return maps


def main(argv: Sequence[str] | None = None) -> int:
    keep_freed_memory()  # as the captum-gfi commands do: no page faults on every step
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("run", type=Path, help="an evaluate --out folder holding cases.pt")
    p.add_argument("--model", default="efficientnet-lite0")
    p.add_argument("--split", default="tune")
    p.add_argument("--methods", default="gradcam,refined,refined_gcpp,scorecam")
    p.add_argument("--reference", default="refined")
    p.add_argument("--limit", type=int, default=None, help="the first N cases of the split")
    p.add_argument("--cache", type=Path, required=True)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--powers",
        default="",
        help="also score every method's maps raised to these powers, e.g. 2,4 (rows name^p): "
        "a monotone transform leaves pointing and top-k as they are and shows how much of the "
        "energy share is the maps' contrast",
    )
    p.add_argument(
        "--rank",
        action="store_true",
        help="also score every method's maps replaced by their pixels' rank (row rank(name)): "
        "the energy share of maps with one and the same value distribution",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if any(m.startswith("research:") for m in args.methods.split(",")):
        import sys

        sys.path.insert(0, str(Path(__file__).parent))
        from settings_search import register_candidates

        register_candidates()
    saved = torch.load(args.run / "cases.pt", weights_only=False)
    cases = [c for c in saved["cases"] if c.split == args.split][: args.limit]
    spec = load_model_spec(SimpleNamespace(model=args.model, weights=None, layer=None,
                                           inversion_layer=None, image_size=224))  # fmt: skip
    masks = torch.stack([c.mask for c in cases]).bool()
    photos = [str(case_photo(c)) for c in cases]
    print(f"{len(cases)} {args.split} cases, {len(set(photos))} photos")
    scores: dict[str, dict[str, np.ndarray]] = {}
    computed: dict[str, Tensor] = {}
    for name in args.methods.split(","):
        computed[name] = maps_of(name, spec, cases, args.cache, args.batch_size)
        scores[name] = {k: f(computed[name], masks).float().numpy() for k, f in METRICS.items()}
    powers = [float(v) for v in args.powers.split(",") if v.strip()]
    for name, maps in computed.items():
        maps = maps.clamp_min(0)
        derived = {f"{name}^{p:g}": maps**p for p in powers}
        if args.rank:
            derived[f"rank({name})"] = pixel_ranks(maps)
        for key, m in derived.items():
            scores[key] = {k: f(m, masks).float().numpy() for k, f in METRICS.items()}
    ref = scores[args.reference]
    print(f"| method | {' | '.join(METRICS)} |\n|---|" + "---|" * len(METRICS))
    for name, s in scores.items():
        cells = []
        for k in METRICS:
            cell = f"{s[k].mean():.3f}"
            if name != args.reference:
                cell += f" ({paired_difference(s[k], ref[k], photos)})"
            cells.append(cell)
        print(f"| {name} | {' | '.join(cells)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
