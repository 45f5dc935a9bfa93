"""Robustness and numerics of GFI settings next to LayerGradCam.

On the first ``--cases`` test composites of the benchmark (``build_cases``, seed 0), for
each method:

* max-sensitivity: Captum ``sensitivity_max``, radius 0.02, 10 samples (lower is better);
* batch vs single: the largest absolute difference between the maps of the whole batch
  and of each case alone, in float32;
* ``channels_last``: Pearson r between each case's map with the model and inputs in
  channels-last memory format and the float32 map (mean and minimum over cases);
* bf16 autocast: the same for ``attribute(..., autocast=True)`` (GFI only; on the first
  ``--bf16-cases`` cases: bfloat16 convolutions are slow on CPUs without bf16 units);
* seconds per image of the plain call (median of the per-batch times, same process).

    python research/robustness.py --model efficientnet-lite0 --cases 8 \
        --methods gradcam,gfi:refined --out docs/robustness_lite0.json
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from captum_gfi import GuidedFeatureInversion
from captum_gfi._malloc import keep_freed_memory
from captum_gfi.demo.models import Normalize, load_model
from captum_gfi.evaluation.benchmark_data import build_cases
from captum_gfi.evaluation.captum_metrics import sensitivity_score
from captum_gfi.evaluation.methods import make_method


def pearson(a: Tensor, b: Tensor) -> Tensor:
    """Per-row Pearson correlation of two (N, ...) tensors."""
    a, b = a.flatten(1).double(), b.flatten(1).double()
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-30)


def gfi_map(gfi: GuidedFeatureInversion, x: Tensor, t: Tensor, setting: str, **kw: Any) -> Tensor:
    return gfi.attribute(x, target=t, setting=setting, **kw).detach().float()


def first_test_composites(
    model: str, n_build: int, n: int
) -> tuple[torch.nn.Module, list[Any], Tensor, Tensor]:
    """The model (normalisation inside, eval mode) and the first ``n`` test composites of
    ``build_cases("composites", ..., n_build, seed=0)``: cases, images, targets."""
    loaded = load_model(model)
    net = Normalize(loaded.model, loaded.mean, loaded.std).eval()
    cases, _ = build_cases("composites", loaded, n_build, seed=0)
    test = [c for c in cases if c.split == "test"][:n]
    return net, test, torch.stack([c.image for c in test]), torch.tensor([c.target for c in test])


def adam_experiment(
    description: str, run: Callable[..., Tensor]
) -> tuple[GuidedFeatureInversion, list[Any], Tensor, Tensor]:
    """The shared set-up of the Adam experiments (``adam_eps_batch_vs_single.py``,
    ``batch_vs_single_sensitivity.py``): parses ``--model``, ``--cases``, ``--n-build``,
    ``--threads``, sets the threads, replaces ``_ProjectedAdam.run`` by ``run`` (in this
    process only) and returns a GFI for the model with the first test composites (cases,
    images, targets)."""
    from captum_gfi import guided_feature_inversion as G

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--n-build", type=int, default=16, help="cases built (tune + test)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    G._ProjectedAdam.run = run  # type: ignore[method-assign]
    net, test, x, t = first_test_composites(args.model, args.n_build, args.cases)
    return GuidedFeatureInversion.from_model(net), test, x, t


def main() -> int:
    keep_freed_memory()  # as the captum-gfi commands do: no page faults on every step
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--n-build", type=int, default=16, help="cases built (tune + test)")
    parser.add_argument("--methods", default="gradcam,gfi:refined")
    parser.add_argument(
        "--bf16-cases", type=int, default=2, help="cases for the bf16 check (slow on CPUs)"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    net, test, x, t = first_test_composites(args.model, args.n_build, args.cases)
    gfi = GuidedFeatureInversion.from_model(net)
    results: dict[str, Any] = {"model": args.model, "n": len(test), "threads": args.threads}
    for name in args.methods.split(","):
        fn = make_method(name, net, gfi.layer, gfi.inversion_layer)
        times = []
        for _ in range(2):
            start = time.perf_counter()
            maps = fn(x, t)
            times.append((time.perf_counter() - start) / len(test))
        single = torch.cat([fn(x[i : i + 1], t[i : i + 1]) for i in range(len(test))])
        row: dict[str, Any] = {
            "seconds_per_image": statistics.median(times),
            "batch_vs_single_max_abs": float((maps - single).abs().max()),
        }
        print(name, json.dumps(row), flush=True)
        sens = sensitivity_score(fn, x, t, perturb_radius=0.02, n_perturb_samples=10, seed=0)
        row["max_sensitivity_mean"] = float(sens.mean())
        row["max_sensitivity"] = [round(float(v), 4) for v in sens]
        if name.startswith("gfi"):
            setting = name.split(":", 1)[1] if ":" in name else "paper"
            cl_net = copy.deepcopy(net).to(memory_format=torch.channels_last)
            cl_gfi = GuidedFeatureInversion.from_model(cl_net)
            cl = gfi_map(cl_gfi, x, t, setting, channels_last=True)
            r = pearson(cl, maps)
            row["channels_last_r_mean"], row["channels_last_r_min"] = (
                float(r.mean()),
                float(r.min()),
            )
            print(name, json.dumps(row), flush=True)
            k = args.bf16_cases
            bf = gfi_map(gfi, x[:k], t[:k], setting, autocast=True)
            r = pearson(bf, maps[:k])
            row["bf16_cases"] = k
            row["bf16_autocast_r_mean"], row["bf16_autocast_r_min"] = (
                float(r.mean()),
                float(r.min()),
            )
        results[name] = row
        print(name, json.dumps(row), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
