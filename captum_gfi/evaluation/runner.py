"""The runner of the data sets without exact ground truth (photos, folder, imagenet,
voc07): every method through the same pipeline on the same images, with resumable
per-image records and optional ``torchrun`` sharding (:func:`run_datasets`; the command
``captum-gfi evaluate`` parses its options and calls it).

The composites and grids, with exact ground truth, have their own runner
(:mod:`captum_gfi.evaluation.benchmark_runner`) on the same record store.

Work units are images (for ``wsol``, ``pointing``, ``insertion``, ``deletion``,
``infidelity``, ``sensitivity``) and ``n x n`` grids (``grid_pointing``).
Each ``(unit, method, target)`` record is appended to
``<out>/shards/rank<R>.jsonl`` as soon as it is computed, so an interrupted
run resumes where it stopped; the merged report is written by rank 0. The
record store, the run configuration and the lock on ``--out`` are
:mod:`captum_gfi.evaluation.records`.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from tqdm import tqdm

from . import distributed as D
from .captum_metrics import infidelity_score, sensitivity_score
from .datasets import (
    Sample,
    UnreadableImageError,
    UnreadableImageWarning,
    load_dataset,
    load_image,
)
from .localization import PAPER_ALPHAS, wsol_success
from .methods import check_methods, make_method
from .perturbation_curves import perturbation_curve
from .pointing import grid_pointing_score, make_grid, pointing_hit
from .records import (
    Record,
    RunLock,
    ShardWriter,
    check_config,
    read_records,
    record_key,
    write_config,
)
from .report import write_report
from .run_options import EvaluateOptions, ModelLoader, ModelSpec, required, setup_device

__all__ = ["CONFIG_KEYS", "PROTOCOLS", "Unit", "build_units", "run_datasets"]

#: Options that change a record of this runner: resuming with another value is refused.
CONFIG_KEYS: tuple[str, ...] = (
    "dataset", "root", "split", "model", "weights", "layer", "inversion_layer", "image_size",
    "target", "tolerance", "step", "substrate", "tune_fraction", "grid_size", "protocols",
    "extremal_iterations", "rise_masks",
)  # fmt: skip

PROTOCOLS: tuple[str, ...] = (
    "wsol", "pointing", "insertion", "deletion", "grid_pointing", "infidelity", "sensitivity",
)  # fmt: skip
IMAGE_PROTOCOLS = frozenset(PROTOCOLS) - {"grid_pointing"}
BOX_PROTOCOLS = frozenset({"wsol", "pointing"})


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
    options: EvaluateOptions,
) -> list[Unit]:
    """Deterministic list of work units (identical on every rank)."""
    labelled = all(s.labels for s in samples)
    use_labels = options.target == "labels" or (options.target is None and labelled)
    if options.target == "labels" and not labelled:
        raise ValueError("`--target labels` needs a label for every image")
    if set(protocols) & BOX_PROTOCOLS and not use_labels:
        raise ValueError("wsol/pointing need ground-truth boxes; use a data set with boxes")
    selected = list(samples)
    min_confidence = required(options.min_confidence, "min_confidence")
    if min_confidence > 0:
        assert predictions is not None
        selected = [s for s in selected if predictions[s.id][0] >= min_confidence]
    if options.max_images is not None:
        selected = selected[: options.max_images]
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
            units.append(Unit(s.id, "image", (s,), targets, _is_tune(s.id, options.tune_fraction)))
    if "grid_pointing" in protocols:
        k = options.grid_size**2
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
        count = options.grid_count if options.grid_count is not None else len(distinct)
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
    options: EvaluateOptions,
    device: torch.device,
    done: set[str],
    image: Tensor | None = None,
) -> Iterator[Record]:
    """Evaluate one unit with one method, yielding a record per target not yet done
    (``image``: the unit's input from :func:`unit_image`, loaded here when None)."""
    size = required(options.image_size, "image_size")
    if image is None:
        image = unit_image(unit, options, device)
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
            rec["grid_score"] = grid_pointing_score(maps[0, 0].cpu(), pos, options.grid_size)
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
            rec["pointing_hit"] = pointing_hit(smap, boxes, options.tolerance, scale)
        for mode in ("insertion", "deletion"):
            if mode in protocols:
                curve = perturbation_curve(spec.model, image, smap.to(device), target, mode,
                                           int(options.step or 1), options.substrate,
                                           options.batch_size or 1)  # fmt: skip
                rec[f"{mode}_auc"] = curve.auc
                rec[f"{mode}_curve"] = [round(float(v), 6) for v in curve.scores]
                rec["curve_fractions"] = [round(float(v), 6) for v in curve.fractions]
        if "infidelity" in protocols:
            rec["infidelity"] = float(infidelity_score(spec.model, attribute, image, t)[0])
        if "sensitivity" in protocols:
            rec["sensitivity"] = float(sensitivity_score(attribute, image, t)[0])
        yield rec


def unit_image(unit: Unit, options: EvaluateOptions, device: torch.device) -> Tensor:
    """The input of ``unit``: its image, or the grid of its images (raises
    :class:`~captum_gfi.evaluation.datasets.UnreadableImageError`)."""
    size = required(options.image_size, "image_size")
    if unit.kind == "image":
        return load_image(unit.samples[0].path, size).to(device)
    cell = size // options.grid_size
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


def _config(options: EvaluateOptions, protocols: Sequence[str], methods: Sequence[str]) -> Record:
    root = str(Path(options.root).resolve()) if options.root is not None else None
    values = {k: getattr(options, k) for k in CONFIG_KEYS if k not in ("root", "protocols")}
    return {**values, "root": root, "protocols": list(protocols), "methods": list(methods)}


def run_datasets(options: EvaluateOptions, load_model: ModelLoader) -> int:
    r"""
    Evaluates ``options.methods`` on ``options.dataset`` (photos, folder, imagenet, voc07),
    appending records to ``options.out``'s shards and writing the report there; the work of
    ``captum-gfi evaluate`` on those data sets.

    The options are checked (and their run configuration against the one stored in
    ``options.out``) before ``load_model(options)`` is called. Under ``torchrun`` every rank
    calls it; each takes its share of the units.

    Args:
        options (EvaluateOptions): The run's options (resolved here if they are not).
        load_model (ModelLoader): ``load_model(options) -> ModelSpec``.

    Returns:
        int: ``0``.

    Raises:
        ValueError: A bad option (named), a run configuration that differs from the one in
        ``options.out`` (the option named), a second writer, or a data set of unreadable
        images only.
    """
    if options.is_benchmark:
        raise ValueError(f"`--dataset {options.dataset}` is the benchmark's: use "
                         "captum_gfi.evaluation.benchmark_runner.run_benchmark")  # fmt: skip
    options = options.resolved()
    options = dataclasses.replace(
        options,
        split="test" if options.split is None else options.split,
        batch_size=32 if options.batch_size is None else options.batch_size,
        min_confidence=0.0 if options.min_confidence is None else options.min_confidence,
    )
    methods = check_methods(options.methods or "gfi,gradcam,ig,saliency")
    size = required(options.image_size, "image_size")
    protocols = _split(options.protocols, PROTOCOLS, "--protocols")
    if options.grid_size < 1 or size % options.grid_size:
        raise ValueError("`--grid-size` must be >= 1 and divide --image-size")
    out = Path(options.out)
    config = _config(options, protocols, methods)
    info = D.init_from_env()
    lock = RunLock(out)
    try:
        if info.is_main:  # before anything is loaded: fail fast
            lock.acquire()
            config = check_config(out, config, CONFIG_KEYS)
        device = setup_device(options, info.local_rank)
        skipped: list[tuple[str, str]] = []
        samples = load_dataset(
            options.dataset, options.root, required(options.split, "split"), skipped
        )
        spec = load_model(options)
        if info.is_main and not options.report_only:  # stored once the data and model load
            write_config(out, config)
        spec.model.to(device)
        for param in spec.model.parameters():
            param.requires_grad_(False)
        need_pred = (
            required(options.min_confidence, "min_confidence") > 0
            or "grid_pointing" in protocols
            or options.target == "predicted"
            or not all(s.labels for s in samples)
        )
        predictions: dict[str, tuple[float, int]] | None = None
        if need_pred:
            predictions = {}
            readable = []
            with torch.no_grad():
                for s in tqdm(samples, unit="image", desc=f"classifying[rank {info.rank}]",
                              position=info.rank, disable=options.no_progress,
                              dynamic_ncols=True):  # fmt: skip
                    try:
                        x = load_image(s.path, size).to(device)
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
        units = build_units(samples, protocols, predictions, options)
        shard_dir = out / "shards"
        done = set(read_records(out))
        D.barrier(info)
        mine = D.shard(units, info.rank, info.world_size)
        if options.report_only:
            mine = []
        todo = [
            (i, u) for i, u in mine
            if any(record_key(u.id, m, t) not in done for m in methods for t in u.targets)
        ]  # fmt: skip
        writer = ShardWriter(shard_dir / f"rank{info.rank}.jsonl")
        if info.is_main:
            for item, reason in skipped:
                writer.write(skipped_record(item, reason))
        attributors = {m: make_method(m, spec.model, spec.layer, spec.inversion_layer,
                                      peer_options=options.peer_options)
                       for m in methods}  # fmt: skip
        bar = tqdm(total=len(mine), initial=len(mine) - len(todo), unit="item",
                   desc=f"evaluate[rank {info.rank}]", position=info.rank,
                   disable=options.no_progress, dynamic_ncols=True)  # fmt: skip
        try:
            for _, unit in todo:
                try:
                    image = unit_image(unit, options, device)
                except UnreadableImageError as err:
                    warnings.warn(f"skipped {unit.kind} {unit.id}: {err}",
                                  UnreadableImageWarning, stacklevel=1)  # fmt: skip
                    writer.write(skipped_record(unit.id, str(err)))
                    bar.update(1)
                    continue
                for m in methods:
                    bar.set_postfix_str(m, refresh=False)
                    for rec in evaluate_unit(unit, m, attributors[m], spec, protocols, options,
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
            # every method of the folder (methods added to it too); --report-only: those asked
            reported = methods if options.report_only else config["methods"]
            records = _ordered(stored, units, reported)
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
