"""``captum-gfi bench``: how fast GFI is, next to the floor set by its passes and
next to the Captum methods users compare it with.

For every model and batch size N, on the same inputs and targets, it times

* ``limit``: the forward and backward passes GFI cannot avoid, with nothing
  around them: ``inversion_steps`` passes of the N inputs up to the inversion
  layer and ``target_steps`` passes of a batch of 2N through the whole network,
  each followed by a backward pass to the input (the gradient w.r.t. the input
  only, parameters frozen). This is the floor;
* ``gfi``: :class:`~captum_gfi.GuidedFeatureInversion` at the paper's defaults
  (10 + 70 steps);
* ``ig``, ``gradcam`` and ``occlusion``: Captum's ``IntegratedGradients``,
  ``LayerGradCam`` (on GFI's own base layer) and ``Occlusion``, built by
  :func:`captum_gfi.evaluation.methods.make_method` exactly as ``explain`` and
  ``evaluate`` build them (IG: black baseline, 32 steps; Occlusion: black windows of
  1/7 of the side, stride half a window); these run at ``--baseline-batch-sizes``
  only.

Runs of one (model, batch size) are interleaved (limit, gfi, ..., limit, gfi,
...) so that a change in the machine's load hits all of them alike, and the
median over ``--repeats`` is reported with the ratio to ``limit``.

``--agreement`` instead measures what ``autocast=True`` and
``channels_last=True`` do to the masks: GFI on the shipped EfficientNet-Lite0
and real photos, Pearson correlation with the default float32 mask, and time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from captum_gfi._hooks import LayerTap, preserved_model_state
from captum_gfi.demo.models import EFFICIENTNET_LITE0_MEAN, EFFICIENTNET_LITE0_STD, load_model
from captum_gfi.demo.toy import toy_convnet, toy_layers
from captum_gfi.evaluation.methods import IG_STEPS, make_method
from captum_gfi.evaluation.photos import load_photo
from captum_gfi.guided_feature_inversion import GuidedFeatureInversion
from captum_gfi.presets import LayerPreset, resolve_layers

__all__ = ["HELP", "add_arguments", "main", "run"]

HELP = (
    "time GFI against the floor of its forward/backward passes and against Captum's "
    "IntegratedGradients, LayerGradCam and Occlusion"
)

MODELS = ("resnet18", "vgg19", "efficientnet-lite0", "tiny")
METHODS = ("limit", "gfi", "ig", "gradcam", "occlusion")
#: methods timed at every batch size; the others only at --baseline-batch-sizes
SCALED_METHODS = ("limit", "gfi")
DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class Row:
    """One timed (model, method, batch size)."""

    model: str
    method: str
    batch_size: int
    times_s: list[float] = field(default_factory=list)

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s)

    @property
    def per_image_s(self) -> float:
        return self.median_s / self.batch_size


# ------------------------------------------------------------------ models
def _build_model(name: str, seed: int = 0) -> tuple[nn.Module, LayerPreset]:
    """The model (eval mode) and GFI's layers for it, from the package's one loader
    (:func:`captum_gfi.demo.models.load_model`). ResNet-18 and VGG-19 are randomly
    initialised (seeded): speed does not depend on the weights. ``tiny`` is the toy
    network of :mod:`captum_gfi.demo.toy`."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {MODELS}")
    if name == "tiny":
        tiny = toy_convnet(seed=seed)
        return tiny, toy_layers(tiny)
    torch.manual_seed(seed)
    spec = name if name.startswith("efficientnet") else f"torchvision:{name}"
    model = load_model(spec, pretrained=False).model.eval()
    return model, resolve_layers(model)


# ----------------------------------------------------------------- methods
def limit_passes(
    model: nn.Module,
    inversion_layer: nn.Module,
    inputs: Tensor,
    target: Tensor,
    *,
    inversion_steps: int = 10,
    target_steps: int = 70,
    autocast: bool = False,
    channels_last: bool = False,
) -> None:
    """The passes of GFI and nothing else: ``inversion_steps`` forwards of the N
    inputs stopped at ``inversion_layer`` and ``target_steps`` forwards of 2N
    inputs through the whole model, each with a backward pass to the input."""

    def forward(x: Tensor) -> Tensor:
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=autocast):
            return model(x)

    with preserved_model_state([model]):
        x1 = inputs.detach().clone().requires_grad_(True)
        for _ in range(inversion_steps):
            with LayerTap([inversion_layer], stop=True) as tap:
                forward(x1)
            torch.autograd.grad(tap.values[0].float().pow(2).sum(), x1)
        x2 = torch.cat([inputs, inputs]).detach().requires_grad_(True)
        target2 = torch.cat([target, target]).view(-1, 1)
        for _ in range(target_steps):
            out = forward(x2)
            torch.autograd.grad(out.gather(1, target2).sum(), x2)


def make_methods(
    model: nn.Module,
    preset: LayerPreset,
    args: argparse.Namespace,
) -> dict[str, Callable[[Tensor, Tensor], Any]]:
    """method name -> function(inputs, target) running it once; the Captum baselines
    come from :func:`captum_gfi.evaluation.methods.make_method`."""
    gfi = GuidedFeatureInversion(model, preset.layer, preset.inversion_layer)
    flags = {"autocast": args.autocast, "channels_last": args.channels_last}
    steps = {"inversion_steps": args.inversion_steps, "target_steps": args.target_steps}
    baselines = {
        name: make_method(name, model, preset.layer, preset.inversion_layer, ig_steps=args.ig_steps)
        for name in ("ig", "gradcam", "occlusion")
    }
    return {
        "limit": lambda x, t: limit_passes(model, preset.inversion_layer, x, t, **steps, **flags),
        "gfi": lambda x, t: gfi.attribute(x, target=t, **steps, **flags),
        **baselines,
    }


# ------------------------------------------------------------------- run
def _machine_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": str(device),
    }
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    with contextlib.suppress(OSError, AttributeError):
        info["load_average"] = os.getloadavg()
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _batch_sizes_for(model: str, args: argparse.Namespace) -> list[int]:
    for spec in args.model_batch_sizes or []:
        name, _, sizes = spec.partition("=")
        if name == model:
            return [int(s) for s in sizes.split(",") if s]
    return list(args.batch_sizes)


def _bench_model(name: str, args: argparse.Namespace, device: torch.device) -> list[Row]:
    dtype = DTYPES[args.dtype]
    model, preset = _build_model(name, args.seed)
    model = model.to(device=device, dtype=dtype)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    methods = make_methods(model, preset, args)
    size = args.image_size if name != "tiny" else min(args.image_size, 64)
    rows: list[Row] = []
    for n in _batch_sizes_for(name, args):
        chosen = [m for m in args.methods if m in SCALED_METHODS or n in args.baseline_batch_sizes]
        if not chosen:
            continue
        gen = torch.Generator().manual_seed(args.seed + n)
        inputs = torch.randn(n, 3, size, size, generator=gen, dtype=dtype).to(device)
        with torch.no_grad():
            target = model(inputs).argmax(dim=1)
        # warm-up: one pass of each kind at these shapes (oneDNN / cuDNN set-up)
        limit_passes(
            model, preset.inversion_layer, inputs, target, inversion_steps=1, target_steps=1,
            autocast=args.autocast, channels_last=args.channels_last,
        )  # fmt: skip
        batch_rows = {m: Row(name, m, n) for m in chosen}
        group_start = time.perf_counter()
        for r in range(args.repeats):
            spent = time.perf_counter() - group_start
            if r > 0 and args.group_budget is not None and spent > args.group_budget:
                break  # enough time spent on this (model, N): fewer repeats
            for m in chosen:
                _sync(device)
                start = time.perf_counter()
                methods[m](inputs, target)
                _sync(device)
                elapsed = time.perf_counter() - start
                batch_rows[m].times_s.append(elapsed)
                print(
                    f"  {name:<18} {m:<10} N={n:<3} repeat {r + 1}/{args.repeats}: "
                    f"{elapsed:8.2f} s",
                    file=sys.stderr,
                    flush=True,
                )
        rows.extend(batch_rows.values())
    return rows


def _format_table(rows: Sequence[Row]) -> str:
    limits = {(r.model, r.batch_size): r.median_s for r in rows if r.method == "limit"}
    header = (
        f"{'model':<18} {'method':<10} {'N':>4} {'median s':>10} {'s/image':>9} "
        f"{'x limit':>8} {'runs':>5}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        ref = limits.get((r.model, r.batch_size))
        ratio = f"{r.median_s / ref:8.3f}" if ref else f"{'':>8}"
        lines.append(
            f"{r.model:<18} {r.method:<10} {r.batch_size:>4} {r.median_s:>10.3f} "
            f"{r.per_image_s:>9.3f} {ratio} {len(r.times_s):>5}"
        )
    return "\n".join(lines)


def _row_dict(r: Row, limit_rows: dict[tuple[str, int], Row]) -> dict[str, Any]:
    d = asdict(r)
    d["median_s"] = r.median_s
    d["per_image_s"] = r.per_image_s
    ref = limit_rows.get((r.model, r.batch_size))
    d["vs_limit"] = r.median_s / ref.median_s if ref else None
    # repeat k of every method ran right after limit's repeat k: ratios per pair
    d["vs_limit_per_repeat"] = [t / u for t, u in zip(r.times_s, ref.times_s)] if ref else None
    return d


# ------------------------------------------------------- mask agreement
def pearson(a: Tensor, b: Tensor) -> float:
    """Pearson correlation of two tensors, flattened (float64)."""
    x = a.detach().double().flatten()
    y = b.detach().double().flatten()
    x = x - x.mean()
    y = y - y.mean()
    den = float(x.norm() * y.norm())
    return float((x * y).sum()) / den if den > 0 else float("nan")


def _agreement_photos(size: int = 224) -> dict[str, Tensor]:
    """Three real photos of the registry (:mod:`captum_gfi.evaluation.photos`), resized
    (bilinear, antialiased) and centre-cropped to ``size``, in [0, 1], (1, 3, size, size)."""
    import torch.nn.functional as F

    photos = {}
    for name in ("chelsea", "coffee", "astronaut"):
        img = load_photo(f"skimage:{name}")
        h, w = img.shape[1:]
        scale = size / min(h, w)
        img = F.interpolate(
            img[None], size=(round(h * scale), round(w * scale)), mode="bilinear",
            antialias=True, align_corners=False,
        )  # fmt: skip
        top = (img.shape[2] - size) // 2
        left = (img.shape[3] - size) // 2
        photos[name] = img[:, :, top : top + size, left : left + size].clamp(0, 1)
    return photos


def _mask_agreement(args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    """GFI on EfficientNet-Lite0 and real photos with autocast / channels_last on and
    off: Pearson r with the default float32 mask, max |difference|, and time."""
    model = load_model("efficientnet-lite0").model.to(device)
    model_cl = (
        load_model("efficientnet-lite0").model.to(device).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    )
    mean, std = (
        torch.tensor(v, device=device).view(1, 3, 1, 1)
        for v in (EFFICIENTNET_LITE0_MEAN, EFFICIENTNET_LITE0_STD)
    )
    configs: list[tuple[str, nn.Module, dict[str, bool]]] = [
        ("float32", model, {}),
        ("channels_last", model_cl, {"channels_last": True}),
        ("autocast bf16", model, {"autocast": True}),
        ("autocast+channels_last", model_cl, {"autocast": True, "channels_last": True}),
    ]
    results = []
    for name, photo in _agreement_photos(args.image_size).items():
        x = ((photo.to(device) - mean) / std).contiguous()
        with torch.no_grad():
            target = int(model(x).argmax(dim=1))
        reference: Tensor | None = None
        for label, net, flags in configs:
            gfi = GuidedFeatureInversion.from_model(net)
            _sync(device)
            start = time.perf_counter()
            mask = gfi.attribute(
                x,
                target=target,
                inversion_steps=args.inversion_steps,
                target_steps=args.target_steps,
                autocast=flags.get("autocast", False),
                channels_last=flags.get("channels_last", False),
            )
            _sync(device)
            elapsed = time.perf_counter() - start
            if reference is None:
                reference = mask
            row = {
                "photo": name,
                "target": target,
                "config": label,
                "time_s": elapsed,
                "pearson_r": pearson(mask, reference),
                "max_abs_diff": float((mask - reference).abs().max()),
            }
            results.append(row)
            print(
                f"  {name:<10} {label:<24} r={row['pearson_r']:.5f} "
                f"max|d|={row['max_abs_diff']:.2e} {elapsed:7.2f} s",
                file=sys.stderr,
                flush=True,
            )
    return results


def _format_agreement(results: Sequence[dict[str, Any]]) -> str:
    header = f"{'photo':<10} {'config':<24} {'pearson r':>10} {'max |diff|':>11} {'time s':>8}"
    lines = [header, "-" * len(header)]
    for r in results:
        lines.append(
            f"{r['photo']:<10} {r['config']:<24} {r['pearson_r']:>10.5f} "
            f"{r['max_abs_diff']:>11.2e} {r['time_s']:>8.2f}"
        )
    return "\n".join(lines)


# -------------------------------------------------------------------- CLI
def _csv_or_list(values: Sequence[str]) -> list[str]:
    return [v for item in values for v in item.split(",") if v]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--models", nargs="+", default=["resnet18", "vgg19", "efficientnet-lite0"],
        help=f"models to time, from {MODELS} (tiny: a toy CNN for smoke tests). "
        "Default: resnet18 vgg19 efficientnet-lite0",
    )  # fmt: skip
    parser.add_argument(
        "--methods", nargs="+", default=list(METHODS),
        help=f"rows to time, from {METHODS}. Default: all",
    )  # fmt: skip
    parser.add_argument(
        "--batch-sizes", nargs="+", type=int, default=[1, 4, 16],
        help="batch sizes N for limit and gfi. Default: 1 4 16 (add 64 on a GPU)",
    )  # fmt: skip
    parser.add_argument(
        "--model-batch-sizes", nargs="*", default=None, metavar="MODEL=N,N",
        help="per-model override of --batch-sizes, e.g. vgg19=1 (VGG-19 on a CPU is slow)",
    )  # fmt: skip
    parser.add_argument(
        "--baseline-batch-sizes", nargs="+", type=int, default=[1],
        help="batch sizes at which ig / gradcam / occlusion run. Default: 1",
    )  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per row. Default: 3")
    parser.add_argument(
        "--group-budget", type=float, default=None, metavar="SECONDS",
        help="start no further repeat of a (model, N) group once it has run this long "
        "(at least one repeat; the 'runs' column says how many). Default: no limit",
    )  # fmt: skip
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i]. Default: cpu")
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    parser.add_argument(
        "--autocast", action="store_true",
        help="bf16 torch.autocast for the forward passes of limit and gfi",
    )  # fmt: skip
    parser.add_argument(
        "--channels-last", action="store_true",
        help="channels_last model and inputs for limit and gfi",
    )  # fmt: skip
    parser.add_argument(
        "--threads", type=int, default=None,
        help="torch.set_num_threads (CPU). Default: torch's own choice",
    )  # fmt: skip
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--inversion-steps", type=int, default=10, help="paper: 10")
    parser.add_argument("--target-steps", type=int, default=70, help="paper: 70")
    parser.add_argument(
        "--ig-steps", type=int, default=IG_STEPS,
        help=f"IntegratedGradients steps (the one configuration of "
        f"captum_gfi.evaluation.methods otherwise). Default: {IG_STEPS}",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--agreement", action="store_true",
        help="instead of timing: effect of --autocast/--channels-last on the masks "
        "(EfficientNet-Lite0, real photos; Pearson r with the float32 mask)",
    )  # fmt: skip
    parser.add_argument(
        "--out", default="benchmark.json", help="JSON results file. Default: benchmark.json"
    )


def run(args: argparse.Namespace) -> int:
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda but no CUDA device is available")
    args.models = _csv_or_list(args.models)
    args.methods = _csv_or_list(args.methods)
    for m in args.models:
        if m not in MODELS:
            raise ValueError(f"unknown model {m!r}; choose from {MODELS}")
    for m in args.methods:
        if m not in METHODS:
            raise ValueError(f"unknown method {m!r}; choose from {METHODS}")
    if args.repeats < 1:
        raise ValueError("--repeats must be at least 1")
    info = _machine_info(device)
    report: dict[str, Any] = {"machine": info, "args": dict(vars(args))}
    report["args"].pop("_run", None)
    print(
        f"captum-gfi bench: torch {info['torch']}, {info['threads']} threads, {device}",
        file=sys.stderr,
    )
    if args.agreement:
        results = _mask_agreement(args, device)
        report["agreement"] = results
        print(_format_agreement(results))
    else:
        rows: list[Row] = []
        for name in args.models:
            rows.extend(_bench_model(name, args, device))
        limit_rows = {(r.model, r.batch_size): r for r in rows if r.method == "limit"}
        report["results"] = [_row_dict(r, limit_rows) for r in rows]
        print(_format_table(rows))
    with contextlib.suppress(OSError, AttributeError):
        report["machine"]["load_average_end"] = os.getloadavg()
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2, default=lambda o: None if math.isnan(o) else str(o))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/speed.py", description=HELP)
    add_arguments(parser)
    return run(parser.parse_args(argv))
