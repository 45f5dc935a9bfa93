"""``captum-gfi evaluate``: every method through the same pipeline on the same
images, with resumable per-image records and optional ``torchrun`` sharding.

``--dataset composites|grids`` runs the benchmark with exact ground truth
instead (:mod:`captum_gfi.evaluation.benchmark_runner`), on the same records
machinery.

Work units are images (for ``wsol``, ``pointing``, ``insertion``, ``deletion``,
``infidelity``, ``sensitivity``) and ``n x n`` grids (``grid_pointing``).
Each ``(unit, method, target)`` record is appended to
``<out>/shards/rank<R>.jsonl`` as soon as it is computed, so an interrupted
run resumes where it stopped; the merged report is written by rank 0. The
record store, the run configuration and the lock on ``--out`` are
:mod:`captum_gfi.evaluation.records`.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

from . import distributed as D
from .benchmark_metrics import CURVE_STEPS
from .captum_metrics import infidelity_score, sensitivity_score
from .datasets import (
    Sample,
    UnreadableImageError,
    UnreadableImageWarning,
    load_dataset,
    load_image,
)
from .localization import PAPER_ALPHAS, wsol_success
from .methods import METHODS, check_methods, make_method, resolve_module
from .perturbation_curves import SUBSTRATES, perturbation_curve
from .pointing import STANDARD_TOLERANCE, grid_pointing_score, make_grid, pointing_hit
from .records import (
    Record,
    RecordWarning,
    RunLock,
    ShardWriter,
    check_config,
    check_out_dir,
    read_records,
    record_key,
    write_config,
)
from .report import write_report

__all__ = ["HELP", "add_arguments", "run"]

HELP = """Evaluate attribution methods (GFI and Captum baselines) on localisation benchmarks.

Records are appended to OUT/shards as they are computed: rerunning the same command resumes
an interrupted run, and adding methods reuses the records already there. OUT/config.json
stores every option that changes a record; resuming with another value is refused, naming
the option. One process writes to OUT at a time (a second one is refused).

Quick mode for CPUs (--quick): composites/grids build 12 cases (unless --num-cases is given),
skip max-sensitivity and infidelity and use 20-step insertion/deletion curves; the other data
sets use their first 16 images and 1024-pixel curve steps. Options given explicitly win. E.g.

  captum-gfi evaluate --dataset composites --num-cases 12 --methods gradcam,gfi:refined \\
      --quick --out quick-run

takes about 5 minutes of CPU time with EfficientNet-Lite0 (measured 2026-12-02 on 2 cores
shared with other jobs, load 6-7: 584 s wall, 2:53 of it building the cases).

Progress bars with an ETA go to stderr (--no-progress hides them).
"""


class _Default(int):
    """An int default that ``--quick`` may replace (an int the user typed is a plain int)."""


#: ``--quick`` on photos / folder / imagenet / voc07 (composites / grids: see
#: :data:`captum_gfi.evaluation.benchmark_runner.QUICK_DEFAULTS`).
QUICK_DEFAULTS: dict[str, int] = {"max_images": 16, "step": 1024}
#: Options that change a record of this runner: resuming with another value is refused.
CONFIG_KEYS: tuple[str, ...] = (
    "dataset", "root", "split", "model", "weights", "layer", "inversion_layer", "image_size",
    "target", "tolerance", "step", "substrate", "tune_fraction", "grid_size", "protocols",
)  # fmt: skip

PROTOCOLS: tuple[str, ...] = (
    "wsol", "pointing", "insertion", "deletion", "grid_pointing", "infidelity", "sensitivity",
)  # fmt: skip
IMAGE_PROTOCOLS = frozenset(PROTOCOLS) - {"grid_pointing"}
BOX_PROTOCOLS = frozenset({"wsol", "pointing"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``evaluate`` options."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter  # HELP's lines as written
    a = parser.add_argument
    a(
        "--dataset",
        choices=["imagenet", "voc07", "folder", "photos", "composites", "grids"],
        required=True,
        help="imagenet: ILSVRC val XML boxes; voc07: PASCAL VOC 2007; folder: images + "
        "boxes.csv; photos: real photos bundled in installed packages (no boxes); "
        "composites / grids: the benchmark with exact ground truth built from those photos",
    )
    a("--root", default=None, help="data set root (not needed for --dataset photos)")
    a(
        "--split",
        default=None,
        help="VOC image set (default: test); composites/grids: test (full metrics on the test "
        "cases, tune cases only choose WSOL's alpha; default), tune or all",
    )
    a(
        "--model",
        default="efficientnet-lite0",
        help="a captum_gfi.demo.models spec: efficientnet-lite0 (bundled, ImageNet), "
        "torchvision:NAME (weights from --weights or the torch hub cache), ...; "
        "toy (tiny random-init conv net), or module:callable",
    )
    a("--weights", default=None, help="weights file for --model torchvision:NAME")
    a("--layer", default=None, help="dotted name of the conv layer for gfi/gradcam")
    a("--inversion-layer", default=None, help="dotted name of GFI's inversion layer l0")
    a(
        "--methods",
        default=None,
        help=f"comma list of {','.join(METHODS)} or gfi:<setting> (default: gfi,gradcam,ig,"
        "saliency; composites/grids: every method)",
    )
    a(
        "--protocols",
        default="wsol,pointing,insertion,deletion",
        help=f"comma list of {','.join(PROTOCOLS)}",
    )
    a("--out", default="results", help="output folder (resumed if it holds shards)")
    a(
        "--quick",
        action="store_true",
        help="quick mode for CPUs: fewer cases / images, no max-sensitivity, shorter curves "
        "(see above); options given explicitly win",
    )
    a(
        "--image-size",
        type=int,
        default=_Default(224),
        help="images are resized to SxS (composites/grids: the model's own input size; this "
        "only for toy and module:callable models)",
    )
    a(
        "--target",
        choices=["labels", "predicted"],
        default=None,
        help="explain the ground-truth labels (default when the data set has them) or top-1",
    )
    a(
        "--min-confidence",
        type=float,
        default=None,
        help="only use images whose top-1 probability is at least this (default 0; "
        "composites/grids: keep a case when p(target) >= this, default 0.3)",
    )
    a(
        "--max-images",
        type=int,
        default=None,
        help="use the first N >= 1 (selected) images (default: all; --quick: 16)",
    )
    a(
        "--tolerance",
        type=float,
        default=STANDARD_TOLERANCE,
        help="pointing-game tolerance in original-image pixels (default 15; 0 = strict)",
    )
    a(
        "--step",
        type=int,
        default=_Default(224),
        help="pixels per insertion/deletion step (default 224; --quick: 1024)",
    )
    a("--substrate", choices=list(SUBSTRATES), default="blur", help="insertion/deletion substrate")
    a(
        "--tune-fraction",
        type=float,
        default=0.0,
        help="fraction of images (by a hash of their id) used only to tune WSOL's alpha",
    )
    a("--grid-size", type=int, default=2, help="n of the n x n grid pointing game")
    a(
        "--grid-count",
        type=int,
        default=None,
        help="number of grids (default: one per selected image of a distinct class)",
    )
    a(
        "--batch-size",
        type=int,
        default=None,
        help="forward batch for perturbation curves (default 32); composites/grids: cases per "
        "method call (default 8)",
    )
    b = parser.add_argument_group("composites / grids benchmark")
    b.add_argument(
        "--num-cases",
        "--n",
        dest="n",
        type=int,
        default=_Default(200),
        help="number of cases to build (default 200; --quick: 12; the alias --n is ambiguous "
        "to torchrun's parser, which sees it first: use --num-cases under torchrun)",
    )
    b.add_argument("--seed", type=int, default=0, help="seed of the case builder (default 0)")
    b.add_argument(
        "--max-per-photo",
        type=int,
        default=None,
        help="keep at most this many cases per foreground photo (default: no cap); balances "
        "the few photos that survive pasting best",
    )
    b.add_argument(
        "--max-tries",
        type=int,
        default=None,
        help="most candidates drawn while building cases (default 20 * n + 100); raise it "
        "when few candidates survive pasting and fewer than --n cases are kept",
    )
    b.add_argument(
        "--max-sensitivity-cases",
        type=int,
        default=_Default(32),
        help="max-sensitivity and infidelity on the first N evaluated cases (default 32; "
        "--quick: 0)",
    )
    b.add_argument(
        "--curve-cases",
        type=int,
        default=None,
        help="insertion/deletion curves on the first N evaluated cases only (default: all); "
        "the other metrics are computed on every case",
    )
    b.add_argument(
        "--curve-steps",
        type=int,
        default=_Default(CURVE_STEPS),
        help=f"insertion/deletion steps (default {CURVE_STEPS}; --quick: 20)",
    )
    b.add_argument(
        "--curve-batch-size", type=int, default=32, help="forward batch of the curves (default 32)"
    )
    a("--threads", type=int, default=None, help="torch.set_num_threads per process")
    a("--device", default=None, help="cpu or cuda (default: cuda when available)")
    a("--no-progress", action="store_true", help="hide the progress bars (on stderr)")
    a(
        "--report-only",
        action="store_true",
        help="compute nothing: merge the records already in --out and write the report",
    )


# --------------------------------------------------------------------------- models


@dataclass
class ModelSpec:
    """A model with the layers GFI/GradCAM use."""

    model: nn.Module
    layer: nn.Module | None
    inversion_layer: nn.Module | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def setup_device(args: argparse.Namespace, local_rank: int) -> torch.device:
    """Apply ``--threads`` and pick the device: ``--device``, else this rank's GPU when
    there is one, else the CPU."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device:
        return torch.device(args.device)
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def model_from_args(args: argparse.Namespace) -> ModelSpec:
    """Build the model named by ``--model`` and resolve ``--layer``.

    The model takes images in [0, 1]: the demo and torchvision models come with
    their input normalisation inside (``captum_gfi.demo.models.LoadedModel.classifier``),
    so the perturbation protocols work in pixel space.
    A model of :func:`captum_gfi.demo.models.load_model` is kept, as a
    ``LoadedModel``, in ``extra["loaded"]``.
    """
    name: str = args.model
    default_layer: str | None = None
    extra: dict[str, Any] = {}
    model: nn.Module
    if name == "toy":
        from captum_gfi.demo.toy import toy_convnet

        model = toy_convnet()
        default_layer = "conv2"
    elif ":" in name and not name.startswith("torchvision:"):
        import importlib

        mod, attr = name.split(":", 1)
        model = getattr(importlib.import_module(mod), attr)()
    else:
        from captum_gfi.demo.models import load_model as load_classifier

        spec = name.replace("_", "-") if name.startswith("efficientnet_") else name
        loaded = load_classifier(spec, getattr(args, "weights", None))
        model = loaded.classifier
        extra["loaded"] = loaded
    model.eval()
    layer = resolve_module(model, args.layer) if args.layer else None
    inv = resolve_module(model, args.inversion_layer) if args.inversion_layer else None
    if layer is None:
        try:
            from captum_gfi.presets import resolve_layers

            preset = resolve_layers(model)
            layer = preset.layer
            inv = inv if inv is not None else preset.inversion_layer
        except ValueError:
            if default_layer is None:
                raise
            layer = resolve_module(model, default_layer)
    return ModelSpec(model, layer, inv, extra)


# --------------------------------------------------------------------------- units


@dataclass(frozen=True)
class Unit:
    """An image (``samples`` has one entry) or a grid of images."""

    id: str
    kind: str  # "image" | "grid"
    samples: tuple[Sample, ...]
    targets: tuple[int, ...]
    tune: bool = False


def _is_tune(sample_id: str, fraction: float) -> bool:
    return fraction > 0 and (zlib.crc32(sample_id.encode()) % 10000) < fraction * 10000


def _class_of(
    sample: Sample, use_labels: bool, predictions: dict[str, tuple[float, int]] | None
) -> int:
    if use_labels:
        return sample.labels[0]
    if predictions is None:
        raise ValueError("predictions are required when targets are not labels")
    return predictions[sample.id][1]


def build_units(
    samples: Sequence[Sample],
    protocols: Sequence[str],
    predictions: dict[str, tuple[float, int]] | None,
    args: argparse.Namespace,
) -> list[Unit]:
    """Deterministic list of work units (identical on every rank)."""
    use_labels = args.target == "labels" or (args.target is None and all(s.labels for s in samples))
    if args.target == "labels" and not all(s.labels for s in samples):
        raise ValueError("`--target labels` needs a label for every image")
    if set(protocols) & BOX_PROTOCOLS and not use_labels:
        raise ValueError("wsol/pointing need ground-truth boxes; use a data set with boxes")
    selected = list(samples)
    if args.min_confidence > 0:
        assert predictions is not None
        selected = [s for s in selected if predictions[s.id][0] >= args.min_confidence]
    if args.max_images is not None:
        selected = selected[: args.max_images]
    if not selected:
        raise ValueError("no image left after --min-confidence / --max-images")
    units: list[Unit] = []
    if set(protocols) & IMAGE_PROTOCOLS:
        for s in selected:
            if use_labels:
                targets = tuple(s.labels)
            else:
                assert predictions is not None
                targets = (predictions[s.id][1],)
            units.append(Unit(s.id, "image", (s,), targets, _is_tune(s.id, args.tune_fraction)))
    if "grid_pointing" in protocols:
        k = args.grid_size**2
        distinct: list[Sample] = []
        seen: set[int] = set()
        for s in selected:
            cls = _class_of(s, use_labels, predictions)
            if cls not in seen:
                seen.add(cls)
                distinct.append(s)
        if len(distinct) < k:
            raise ValueError(
                f"grid pointing needs {k} images of distinct predicted classes, "
                f"found {len(distinct)}"
            )
        count = args.grid_count if args.grid_count is not None else len(distinct)
        for g in range(count):
            cells = tuple(distinct[(g + j) % len(distinct)] for j in range(k))
            targets = tuple(_class_of(c, use_labels, predictions) for c in cells)
            # the id names the cells, so a resumed run never reuses another grid's records
            gid = "grid:" + "+".join(c.id for c in cells)
            units.append(Unit(gid, "grid", cells, targets))
    return units


# --------------------------------------------------------------------------- records


def _grid_scale(sample: Sample, size: int) -> tuple[float, float]:
    return sample.size[0] / size, sample.size[1] / size


def evaluate_unit(
    unit: Unit,
    method: str,
    attribute: Callable[[Tensor, Tensor], Tensor],
    spec: ModelSpec,
    protocols: Sequence[str],
    args: argparse.Namespace,
    device: torch.device,
    done: set[str],
    image: Tensor | None = None,
) -> Iterator[Record]:
    """Evaluate one unit with one method, yielding a record per target not yet done
    (``image``: the unit's input from :func:`unit_image`, loaded here when None)."""
    size = args.image_size
    if image is None:
        image = unit_image(unit, args, device)
    for pos, target in enumerate(unit.targets):
        key = record_key(unit.id, method, target)
        if key in done:
            continue
        t0 = time.perf_counter()
        t = torch.tensor([target], device=device)
        maps = attribute(image, t)
        rec: Record = {"key": key, "item": unit.id, "kind": unit.kind, "method": method,
                       "target": int(target), "attr_seconds": time.perf_counter() - t0}  # fmt: skip
        if unit.kind == "grid":
            rec["cell"] = pos
            rec["grid_score"] = grid_pointing_score(maps[0, 0].cpu(), pos, args.grid_size)
            yield rec
            continue
        sample = unit.samples[0]
        smap = maps[0].sum(0).cpu()
        scale = _grid_scale(sample, size)
        boxes = sample.boxes.get(target, [])
        rec["tune"] = unit.tune
        if "wsol" in protocols and boxes:
            rec["wsol_success"] = [
                bool(b) for b in wsol_success(smap, boxes, PAPER_ALPHAS, 0.5, scale)
            ]
        if "pointing" in protocols and boxes:
            rec["pointing_hit"] = pointing_hit(smap, boxes, args.tolerance, scale)
        for mode in ("insertion", "deletion"):
            if mode in protocols:
                curve = perturbation_curve(spec.model, image, smap.to(device), target, mode,
                                           args.step, args.substrate, args.batch_size)  # fmt: skip
                rec[f"{mode}_auc"] = curve.auc
                rec[f"{mode}_curve"] = [round(float(v), 6) for v in curve.scores]
                rec["curve_fractions"] = [round(float(v), 6) for v in curve.fractions]
        if "infidelity" in protocols:
            rec["infidelity"] = float(infidelity_score(spec.model, attribute, image, t)[0])
        if "sensitivity" in protocols:
            rec["sensitivity"] = float(sensitivity_score(attribute, image, t)[0])
        yield rec


def unit_image(unit: Unit, args: argparse.Namespace, device: torch.device) -> Tensor:
    """The input of ``unit``: its image, or the grid of its images (raises
    :class:`~captum_gfi.evaluation.datasets.UnreadableImageError`)."""
    size = args.image_size
    if unit.kind == "image":
        return load_image(unit.samples[0].path, size).to(device)
    cell = size // args.grid_size
    return make_grid([load_image(s.path, cell)[0] for s in unit.samples]).to(device)


def skipped_record(item: str, reason: str) -> Record:
    """The record of an image skipped as unreadable (counted in the report)."""
    return {"key": record_key(item, "skipped", -1), "record": "skipped", "item": item,
            "method": "skipped", "target": -1, "reason": reason}  # fmt: skip


def _ordered(
    records: dict[str, Record], units: Sequence[Unit], methods: Sequence[str]
) -> list[Record]:
    order = {u.id: i for i, u in enumerate(units)}
    mord = {m: i for i, m in enumerate(methods)}
    keep = [r for r in records.values() if r["item"] in order and r["method"] in mord]
    return sorted(keep, key=lambda r: (order[r["item"]], mord[r["method"]], r["target"]))


def _split(value: str, allowed: Sequence[str], name: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad or not items:
        raise ValueError(f"`{name}` must be a comma list of {','.join(allowed)}, got {value!r}")
    return items


def apply_quick(args: argparse.Namespace) -> None:
    """``--quick``: set the quick defaults of the options the user did not give."""
    if not getattr(args, "quick", False):
        return
    from .benchmark_runner import BENCHMARK_DATASETS
    from .benchmark_runner import QUICK_DEFAULTS as BENCHMARK_QUICK

    quick = BENCHMARK_QUICK if args.dataset in BENCHMARK_DATASETS else QUICK_DEFAULTS
    for name, value in quick.items():
        if getattr(args, name, None) is None or isinstance(getattr(args, name), _Default):
            setattr(args, name, value)


def _check_options(args: argparse.Namespace) -> None:
    """The option checks of both runners, before anything is loaded."""
    for name, value, low in (("--image-size", args.image_size, 8), ("--step", args.step, 1),
                             ("--max-images", args.max_images, 1),
                             ("--grid-count", args.grid_count, 1),
                             ("--batch-size", args.batch_size, 1),
                             ("--threads", args.threads, 1)):  # fmt: skip
        if value is not None and value < low:
            raise ValueError(f"`{name}` must be >= {low}, got {value}")
    if args.tolerance < 0:
        raise ValueError(f"`--tolerance` must be >= 0, got {args.tolerance}")
    if not 0.0 <= args.tune_fraction < 1.0:
        raise ValueError(f"`--tune-fraction` must be in [0, 1), got {args.tune_fraction}")
    if args.min_confidence is not None and not 0.0 <= args.min_confidence <= 1.0:
        raise ValueError(f"`--min-confidence` must be in [0, 1], got {args.min_confidence}")
    check_out_dir(args.out)


_SHOW_WARNING = warnings.showwarning


def _one_line_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """Skipped records and images as one line each; other warnings as Python shows them."""
    if issubclass(category, (RecordWarning, UnreadableImageWarning)):
        print(f"captum-gfi evaluate: warning: {message}", file=sys.stderr)
    else:
        _SHOW_WARNING(message, category, filename, lineno, file, line)


def run(args: argparse.Namespace) -> int:
    """Run the evaluation described by ``args``; returns the exit code."""
    apply_quick(args)
    _check_options(args)
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        if args.dataset in ("composites", "grids"):
            from .benchmark_runner import BENCHMARK_METHODS
            from .benchmark_runner import run as run_benchmark

            methods = check_methods(args.methods or ",".join(BENCHMARK_METHODS))
            return run_benchmark(args, methods, model_from_args, setup_device)
        return _run_images(args)


def _config(args: argparse.Namespace, protocols: Sequence[str], methods: Sequence[str]) -> Record:
    root = str(Path(args.root).resolve()) if args.root is not None else None
    values = {k: getattr(args, k) for k in CONFIG_KEYS if k not in ("root", "protocols")}
    values = {k: int(v) if isinstance(v, _Default) else v for k, v in values.items()}
    return {**values, "root": root, "protocols": list(protocols), "methods": list(methods)}


def _run_images(args: argparse.Namespace) -> int:
    """``evaluate`` on photos / folder / imagenet / voc07."""
    methods = check_methods(args.methods or "gfi,gradcam,ig,saliency")
    if args.split is None:
        args.split = "test"
    if args.batch_size is None:
        args.batch_size = 32
    if args.min_confidence is None:
        args.min_confidence = 0.0
    protocols = _split(args.protocols, PROTOCOLS, "--protocols")
    if args.grid_size < 1 or args.image_size % args.grid_size:
        raise ValueError("`--grid-size` must be >= 1 and divide --image-size")
    out = Path(args.out)
    config = _config(args, protocols, methods)
    info = D.init_from_env()
    lock = RunLock(out)
    try:
        if info.is_main:  # before anything is loaded: fail fast
            lock.acquire()
            config = check_config(out, config, CONFIG_KEYS)
        device = setup_device(args, info.local_rank)
        skipped: list[tuple[str, str]] = []
        samples = load_dataset(args.dataset, args.root, args.split, skipped)
        spec = model_from_args(args)
        if info.is_main and not args.report_only:  # stored once the data and model load
            write_config(out, config)
        spec.model.to(device)
        for param in spec.model.parameters():
            param.requires_grad_(False)
        need_pred = (
            args.min_confidence > 0
            or "grid_pointing" in protocols
            or args.target == "predicted"
            or not all(s.labels for s in samples)
        )
        predictions: dict[str, tuple[float, int]] | None = None
        if need_pred:
            predictions = {}
            readable = []
            with torch.no_grad():
                for s in tqdm(samples, unit="image", desc=f"classifying[rank {info.rank}]",
                              position=info.rank, disable=args.no_progress,
                              dynamic_ncols=True):  # fmt: skip
                    try:
                        x = load_image(s.path, args.image_size).to(device)
                    except UnreadableImageError as err:
                        warnings.warn(f"skipped image {s.id}: {err}", UnreadableImageWarning,
                                      stacklevel=1)  # fmt: skip
                        skipped.append((s.id, str(err)))
                        continue
                    conf, cls = torch.softmax(spec.model(x), 1).max(1)
                    predictions[s.id] = (float(conf), int(cls))
                    readable.append(s)
            samples = readable
        if not samples:
            names = ", ".join(i for i, _ in skipped[:3]) + (", ..." if len(skipped) > 3 else "")
            raise ValueError(f"every image was skipped as unreadable ({len(skipped)}: {names})")
        units = build_units(samples, protocols, predictions, args)
        shard_dir = out / "shards"
        done = set(read_records(out))
        D.barrier(info)
        mine = D.shard(units, info.rank, info.world_size)
        if args.report_only:
            mine = []
        todo = [
            (i, u) for i, u in mine
            if any(record_key(u.id, m, t) not in done for m in methods for t in u.targets)
        ]  # fmt: skip
        writer = ShardWriter(shard_dir / f"rank{info.rank}.jsonl")
        if info.is_main:
            for item, reason in skipped:
                writer.write(skipped_record(item, reason))
        attributors = {m: make_method(m, spec.model, spec.layer, spec.inversion_layer)
                       for m in methods}  # fmt: skip
        bar = tqdm(total=len(mine), initial=len(mine) - len(todo), unit="item",
                   desc=f"evaluate[rank {info.rank}]", position=info.rank,
                   disable=args.no_progress, dynamic_ncols=True)  # fmt: skip
        try:
            for _, unit in todo:
                try:
                    image = unit_image(unit, args, device)
                except UnreadableImageError as err:
                    warnings.warn(f"skipped {unit.kind} {unit.id}: {err}",
                                  UnreadableImageWarning, stacklevel=1)  # fmt: skip
                    writer.write(skipped_record(unit.id, str(err)))
                    bar.update(1)
                    continue
                for m in methods:
                    bar.set_postfix_str(m, refresh=False)
                    for rec in evaluate_unit(unit, m, attributors[m], spec, protocols, args,
                                             device, done, image):  # fmt: skip
                        writer.write(rec)
                        done.add(rec["key"])
                bar.update(1)
        finally:
            bar.close()
            writer.close()
        D.barrier(info)
        if info.is_main:
            stored = read_records(out)
            records = _ordered(stored, units, methods)
            evaluated = {r["item"] for r in records}
            gone = {r["item"]: r.get("reason", "") for r in stored.values()
                    if r.get("record") == "skipped" and r["item"] not in evaluated}  # fmt: skip
            write_report(records, out, PAPER_ALPHAS, skipped=gone)
            print((out / "summary.md").read_text())
        D.barrier(info)
    finally:
        lock.release()
        D.finish(info)
    return 0
