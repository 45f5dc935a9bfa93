"""The benchmark with exact ground truth: ``captum-gfi evaluate --dataset
composites|grids`` (cases from :mod:`captum_gfi.evaluation.benchmark_data`).

Every method explains the same cases in batches of ``--batch-size`` (one
call per batch and method). Each ``(case, method)`` gives one record with the
metrics of :mod:`captum_gfi.evaluation.benchmark_metrics` and the seconds per
case (``seconds``: the method's map; ``curve_seconds``: its insertion and
deletion curves; ``robust_seconds``: max-sensitivity and infidelity; each
also as ``*cpu_seconds``, the process's CPU time, which a busy machine does not
inflate: with one thread it is the compute time),
appended to ``<out>/shards/rank<R>.jsonl`` as soon as its batch is done
(the resumable shards and ``torchrun`` sharding of
:mod:`captum_gfi.evaluation.runner`: batches ``i`` with
``i % world_size == rank``); each case also gets one ``case`` record
(target, split, box, ground-truth area, source).

Which cases get which metrics:

- ``tune`` cases (when the evaluated split is ``test``) only choose WSOL's
  ``alpha``: their records hold the map metrics (energy share, pointing,
  top-k, WSOL per alpha) but no insertion/deletion curves.
- the first ``robust_cases`` cases of the evaluated split also get Captum's
  max-sensitivity (radius 0.02, 10 samples) and infidelity.
- the first ``gallery_cases`` cases (``--thumbnail-cases``, default 8) store
  64 x 64 thumbnails of the input, the ground truth and every method's map, so
  the report's gallery (and ``research/map_contrast.py``) need nothing but the
  records.
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from . import distributed as D
from ._thumbnails import THUMB_SIZE, encode_thumbnail, map_thumbnail
from .adversarial import fgsm_records
from .benchmark_metrics import (
    CURVE_STEPS,
    energy_share,
    insertion_deletion,
    pointing_hits,
    topk_precision,
    wsol_successes,
)
from .captum_metrics import infidelity_score, sensitivity_score
from .cases import Case
from .localization import PAPER_ALPHAS
from .methods import AttributionFn, check_methods, make_method, method_passes
from .peers import layer_channels, peer_options
from .pointing import STANDARD_TOLERANCE
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
from .run_options import (
    BENCHMARK_DATASETS,
    EvaluateOptions,
    ModelLoader,
    required,
    setup_device,
)
from .sanity import sanity_records

__all__ = ["BENCHMARK_DATASETS", "BenchmarkOptions", "plan_cases", "run_benchmark", "run_cases"]

#: Every method of the benchmark, in report order.
BENCHMARK_METHODS: tuple[str, ...] = (
    "gfi", "gradcam", "ig", "saliency", "guided_backprop", "occlusion", "center",
)  # fmt: skip
SPLITS: tuple[str, ...] = ("test", "tune", "all", "test-only")
#: Options that change a record: they must match when a run resumes into an existing
#: ``--out`` (:func:`~captum_gfi.evaluation.records.check_config`).
CONFIG_KEYS: tuple[str, ...] = (
    "dataset", "model", "n", "seed", "min_confidence", "curve_steps", "tolerance",
    "max_per_photo", "max_tries", "input_size", "split", "max_sensitivity_cases",
    "curve_cases", "batch_size", "extremal_iterations", "rise_masks", "sanity_steps", "pool",
)  # fmt: skip
#: The command-line spelling of the config keys whose option is named otherwise.
OPTION_NAMES: dict[str, str] = {"n": "--num-cases", "input_size": "--image-size"}
#: The built cases of a run, reused when it is resumed or methods are added (building
#: classifies thousands of candidates; the cases depend only on these config keys).
CASES_FILE = "cases.pt"
DATA_KEYS: tuple[str, ...] = (
    "dataset", "model", "n", "seed", "min_confidence", "max_per_photo", "max_tries",
    "input_size", "pool",
)  # fmt: skip


@dataclass(frozen=True)
class BenchmarkOptions:
    r"""
    Settings of a benchmark run.

    Args:
        batch_size (int): cases per method call.
        curve_steps (int): insertion/deletion steps (at least 50 for RISE-like curves).
        curve_batch_size (int): perturbed images per forward pass of the curves.
        tolerance (float): pointing-game tolerance in pixels (TorchRay: 15).
        robust_cases (int): max-sensitivity and infidelity on the first this many
                    cases of the evaluated split (``0``: never).
        curve_cases (int, optional): insertion/deletion curves on the first this many
                    cases of the evaluated split (``None``: all). The curves cost ~100
                    forward passes per case and method, far more than most maps.
        gallery_cases (int): thumbnails for the first this many cases.
        thumb_size (int): thumbnail side in pixels.
        split (str): ``"test"`` (full metrics on test cases; tune cases only
                    choose WSOL's alpha), ``"tune"``, ``"all"`` or ``"test-only"`` (the
                    test cases alone: no tune maps, so WSOL's alpha is chosen on the test
                    cases themselves; for methods too expensive to run on the tune cases).
        extremal_iterations (int, optional): extremal perturbation's iterations
                    (``None``: TorchRay's 800).
        rise_masks (int, optional): RISE's masks (``None``: TorchRay's 8000).
        sanity_cases (int): the cascading randomisation test
                    (:func:`~captum_gfi.evaluation.sanity.sanity_records`) of every method on
                    the first this many cases of the evaluated split (``0``: never).
        sanity_steps (int, optional): the first this many steps of the cascade
                    (:func:`~captum_gfi.evaluation.sanity.cascade_steps`; ``None``: all).
        fgsm_epsilons (tuple of float): the paper's FGSM test
                    (:func:`~captum_gfi.evaluation.adversarial.fgsm_records`) at these
                    step sizes, in ``[0, 1]`` pixel units (``()``: never).
        fgsm_cases (int, optional): FGSM on the first this many cases of the evaluated
                    split (``None``: all of them).
    """

    batch_size: int = 8
    curve_steps: int = CURVE_STEPS
    curve_batch_size: int = 32
    tolerance: float = STANDARD_TOLERANCE
    robust_cases: int = 32
    curve_cases: int | None = None
    gallery_cases: int = 8
    thumb_size: int = THUMB_SIZE
    split: str = "test"
    extremal_iterations: int | None = None
    rise_masks: int | None = None
    sanity_cases: int = 0
    sanity_steps: int | None = None
    fgsm_epsilons: tuple[float, ...] = ()
    fgsm_cases: int | None = None

    @property
    def peer_options(self) -> dict[str, Any]:
        """:func:`~captum_gfi.evaluation.peers.make_peer` keyword arguments of the peers'
        sizes given here (the peers' own defaults otherwise)."""
        return peer_options(self.extremal_iterations, self.rise_masks)

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.curve_batch_size < 1:
            raise ValueError("`batch_size` and `curve_batch_size` must be >= 1")
        if self.curve_steps < 1:
            raise ValueError(f"`curve_steps` must be >= 1, got {self.curve_steps}")
        if self.curve_cases is not None and self.curve_cases < 0:
            raise ValueError(f"`curve_cases` must be >= 0 or None, got {self.curve_cases}")
        if self.robust_cases < 0 or self.gallery_cases < 0:
            raise ValueError("`robust_cases` and `gallery_cases` must be >= 0")
        if self.split not in SPLITS:
            raise ValueError(f"`split` must be one of {SPLITS}, got {self.split!r}")
        if self.sanity_cases < 0 or (self.fgsm_cases is not None and self.fgsm_cases < 0):
            raise ValueError("`sanity_cases` and `fgsm_cases` must be >= 0")
        if any(not 0.0 < e <= 1.0 for e in self.fgsm_epsilons):
            raise ValueError(f"`fgsm_epsilons` must be in (0, 1], got {self.fgsm_epsilons}")
        for name in ("extremal_iterations", "rise_masks", "sanity_steps"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or value < 1):
                raise ValueError(f"`{name}` must be >= 1 or None, got {value!r}")


def plan_cases(cases: Sequence[Case], split: str) -> tuple[list[Case], set[str], dict[str, int]]:
    r"""
    Which cases to run, which of them get every metric, and their order.

    Returns:
        (cases, full, rank): the cases to run (in the given order), the ids of
        those that get every metric, and each full case's position among them
        (the first ``robust_cases`` / ``gallery_cases`` positions get the
        expensive metrics / thumbnails).
    """
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {SPLITS}, got {split!r}")
    only = {"tune": "tune", "test-only": "test"}.get(split)
    run = [c for c in cases if only is None or c.split == only]
    full = [c for c in run if split != "test" or c.split == "test"]
    return run, {c.case_id for c in full}, {c.case_id: i for i, c in enumerate(full)}


def case_record(case: Case, index: int, model: str, thumbs: bool, thumb_size: int) -> Record:
    """The ``case`` record: what was explained, and thumbnails for the gallery."""
    rec: Record = {
        "key": record_key(case.case_id, "case", case.target), "record": "case",
        "item": case.case_id, "kind": case.kind, "split": case.split, "index": index,
        "target": int(case.target), "model": model, "confidence": float(case.confidence),
        "box": [int(v) for v in case.box], "gt_area": int(case.mask.sum()),
        "size": list(case.mask.shape),
        "source": json.loads(json.dumps(case.source, default=str)),
    }  # fmt: skip
    if thumbs:
        rec["thumb_input"] = encode_thumbnail(case.image, thumb_size)
        rec["thumb_gt"] = encode_thumbnail(case.mask.float(), thumb_size)
    return rec


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def evaluate_batch(
    cases: Sequence[Case],
    method: str,
    attribute: AttributionFn,
    model: nn.Module,
    options: BenchmarkOptions,
    full: set[str],
    rank: dict[str, int],
    device: torch.device,
    index: dict[str, int],
    model_name: str = "",
    passes: tuple[int, int, int] | None = None,
) -> list[Record]:
    """One method on one batch of cases: one record per case (``passes``: the method's
    ``(forward, backward, iterations)`` per image, from
    :func:`~captum_gfi.evaluation.methods.method_passes`)."""
    images = torch.stack([c.image for c in cases]).to(device)
    masks = torch.stack([c.mask for c in cases]).to(device).bool()
    targets = torch.tensor([int(c.target) for c in cases], device=device)
    _sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    maps = attribute(images, targets).detach()
    _sync(device)
    seconds = (time.perf_counter() - t0) / len(cases)
    cpu_seconds = (time.process_time() - c0) / len(cases)
    if maps.dim() != 4 or maps.shape[0] != len(cases) or maps.shape[-2:] != images.shape[-2:]:
        raise ValueError(f"method {method!r} returned maps of shape {tuple(maps.shape)}")
    maps = maps.sum(1, keepdim=True) if maps.shape[1] != 1 else maps
    energy = energy_share(maps, masks).cpu()
    hits = pointing_hits(maps, masks, options.tolerance).cpu()
    topk = topk_precision(maps, masks).cpu()
    wsol = wsol_successes(maps, [c.box for c in cases], PAPER_ALPHAS)
    recs: list[Record] = []
    for i, c in enumerate(cases):
        recs.append({
            "key": record_key(c.case_id, method, c.target), "record": "method",
            "item": c.case_id, "method": method, "kind": c.kind, "split": c.split,
            "index": index[c.case_id], "target": int(c.target), "model": model_name,
            "full": c.case_id in full, "seconds": seconds, "cpu_seconds": cpu_seconds,
            "energy_share": round(float(energy[i]), 6), "pointing_hit": bool(hits[i]),
            "topk_precision": round(float(topk[i]), 6),
            "wsol_success": [bool(b) for b in wsol[i]],
        })  # fmt: skip
        if passes is not None:
            recs[-1].update(passes_forward=passes[0], passes_backward=passes[1],
                            iterations=passes[2])  # fmt: skip
    sel = [i for i, c in enumerate(cases) if c.case_id in full]
    limit = options.curve_cases
    curved = [i for i in sel if limit is None or rank[cases[i].case_id] < limit]
    if curved:
        t0, c0 = time.perf_counter(), time.process_time()
        ins, dele = insertion_deletion(model, images[curved], maps[curved],
                                       [int(cases[i].target) for i in curved],
                                       options.curve_steps, options.curve_batch_size)  # fmt: skip
        curve_seconds = (time.perf_counter() - t0) / len(curved)
        curve_cpu = (time.process_time() - c0) / len(curved)
        for j, i in enumerate(curved):
            recs[i]["insertion_auc"] = round(float(ins[j]), 6)
            recs[i]["deletion_auc"] = round(float(dele[j]), 6)
            recs[i]["curve_seconds"] = curve_seconds
            recs[i]["curve_cpu_seconds"] = curve_cpu
    robust = [i for i in sel if rank[cases[i].case_id] < options.robust_cases]
    if robust:
        x, t = images[robust], targets[robust]
        t0, c0 = time.perf_counter(), time.process_time()
        per_batch = max(len(robust), options.batch_size)
        sens = sensitivity_score(attribute, x, t, max_examples_per_batch=per_batch).cpu()
        infid = infidelity_score(model, attribute, x, t, max_examples_per_batch=per_batch).cpu()
        spent = (time.perf_counter() - t0) / len(robust)
        spent_cpu = (time.process_time() - c0) / len(robust)
        for j, i in enumerate(robust):
            recs[i]["sensitivity"] = round(float(sens[j]), 6)
            recs[i]["infidelity"] = float(infid[j])
            recs[i]["robust_seconds"] = spent
            recs[i]["robust_cpu_seconds"] = spent_cpu
    for i in sel:
        if rank[cases[i].case_id] < options.gallery_cases:
            recs[i]["thumb_map"] = map_thumbnail(maps[i], options.thumb_size)
    return recs


def fgsm_epsilons(value: str | None) -> tuple[float, ...]:
    r"""
    The FGSM step sizes of ``--fgsm-epsilons`` (a comma list of grey levels of 255, e.g.
    ``"2,8"``) in ``[0, 1]`` pixel units; ``None`` or ``""``: none.

    Raises:
        ValueError: A value that is not a number in ``(0, 255]``.
    """
    if not value:
        return ()
    try:
        levels = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        levels = []
    if not levels or any(not 0 < v <= 255 for v in levels):
        raise ValueError("`--fgsm-epsilons` must be a comma list of grey levels in (0, 255], "
                         f"e.g. 2,8; got {value!r}")  # fmt: skip
    return tuple(v / 255 for v in levels)


def _passes(
    method: str,
    model: nn.Module,
    layer: nn.Module | None,
    batch: Sequence[Case],
    options: BenchmarkOptions,
    device: torch.device,
) -> tuple[int, int, int]:
    image = batch[0].image.unsqueeze(0).to(device)
    channels = layer_channels(model, layer, image) if method == "scorecam" and layer else None
    size = (int(image.shape[-2]), int(image.shape[-1]))
    return method_passes(method, size, channels=channels, peer_options=options.peer_options)


def run_cases(
    cases: Sequence[Case],
    methods: Sequence[str],
    model: nn.Module,
    layer: nn.Module | None,
    inversion_layer: nn.Module | None,
    out: Path,
    options: BenchmarkOptions,
    *,
    model_name: str = "",
    device: torch.device | None = None,
    info: D.DistInfo | None = None,
    progress: bool = False,
) -> int:
    r"""
    Evaluate ``methods`` on ``cases``, appending records to ``out/shards``.

    Records already in the shards are kept (a batch is recomputed, whole, only
    for a method with a record missing in it, so a resumed batch has the same
    composition). Records are never recomputed: resuming with another
    ``split`` keeps the earlier tune records (without curves) as they are.
    Returns the number of records written.

    Args:
        cases (sequence): benchmark cases, all of the same image size.
        methods (sequence of str): method names (see ``methods.make_method``).
        model (nn.Module): classifier taking ``[0, 1]`` images.
        layer, inversion_layer (nn.Module, optional): for GFI / Grad-CAM.
        out (Path): output folder.
        options (BenchmarkOptions): settings.
    """
    info = info or D.DistInfo()
    device = device or torch.device("cpu")
    run, full, rank = plan_cases(cases, options.split)
    index = {c.case_id: i for i, c in enumerate(cases)}
    batches = [run[i : i + options.batch_size] for i in range(0, len(run), options.batch_size)]
    done = set(read_records(out))
    mine = [b for _, b in D.shard(batches, info.rank, info.world_size)]
    attributors: dict[str, AttributionFn] = {}
    passes: dict[str, tuple[int, int, int]] = {}
    # the randomisation test and FGSM on the first cases of the evaluated split
    sanity_ids = {c for c in full if rank[c] < options.sanity_cases}
    fgsm_limit = len(full) if options.fgsm_cases is None else options.fgsm_cases
    fgsm_ids = {c for c in full if rank[c] < fgsm_limit} if options.fgsm_epsilons else set()
    writer = ShardWriter(Path(out) / "shards" / f"rank{info.rank}.jsonl")
    written = 0
    # one step per (case, method): the ETA moves after every method's batch
    total = sum(len(b) for b in mine) * len(methods)
    left = sum(
        len(b) for b in mine for m in methods
        if not all(record_key(c.case_id, m, c.target) in done for c in b)
    )  # fmt: skip
    bar = tqdm(total=total, initial=total - left, unit="map", position=info.rank,
               desc=f"methods[rank {info.rank}]", disable=not progress,
               dynamic_ncols=True)  # fmt: skip
    try:
        for batch in mine:
            for c in batch:
                key = record_key(c.case_id, "case", c.target)
                if key not in done:
                    thumbs = c.case_id in full and rank[c.case_id] < options.gallery_cases
                    writer.write(case_record(c, index[c.case_id], model_name, thumbs,
                                             options.thumb_size))  # fmt: skip
                    done.add(key)
                    written += 1
            for m in methods:
                if all(record_key(c.case_id, m, c.target) in done for c in batch):
                    continue
                bar.set_postfix_str(m, refresh=True)
                if m not in attributors:
                    attributors[m] = make_method(m, model, layer, inversion_layer,
                                                 peer_options=options.peer_options)  # fmt: skip
                    passes[m] = _passes(m, model, layer, batch, options, device)
                recs = evaluate_batch(batch, m, attributors[m], model, options, full, rank,
                                      device, index, model_name, passes[m])  # fmt: skip
                for rec in recs:
                    if rec["key"] not in done:
                        writer.write(rec)
                        done.add(rec["key"])
                        written += 1
                bar.update(len(batch))
            picked = [c for c in batch if c.case_id in sanity_ids]
            if picked:
                bar.set_postfix_str("randomisation test", refresh=True)
                for rec in sanity_records(picked, methods, model, layer, inversion_layer,
                                          max_steps=options.sanity_steps,
                                          batch_size=options.batch_size, done=done,
                                          model_name=model_name,
                                          peer_options=options.peer_options):  # fmt: skip
                    writer.write(rec)
                    done.add(rec["key"])
                    written += 1
            picked = [c for c in batch if c.case_id in fgsm_ids]
            if picked:
                bar.set_postfix_str("FGSM", refresh=True)
                for m in methods:
                    if m not in attributors:
                        attributors[m] = make_method(m, model, layer, inversion_layer,
                                                     peer_options=options.peer_options)  # fmt: skip
                fns = {m: attributors[m] for m in methods}
                for rec in fgsm_records(picked, fns, model, options.fgsm_epsilons,
                                        tolerance=options.tolerance,
                                        batch_size=options.batch_size, done=done,
                                        model_name=model_name):  # fmt: skip
                    writer.write(rec)
                    done.add(rec["key"])
                    written += 1
    finally:
        bar.close()
        writer.close()
    return written


# --------------------------------------------------------------------------- command


def cases_key(config: dict[str, Any]) -> dict[str, Any]:
    """The key of :data:`CASES_FILE` for a run configuration: its :data:`DATA_KEYS` (the
    default pool's runs, whose configuration names no pool, keep the key of the versions
    before pools)."""
    return {k: config.get(k) for k in DATA_KEYS if k in config or k != "pool"}


def _check_config(out: Path, config: dict[str, Any]) -> dict[str, Any]:
    """``config`` merged with the one already in ``out`` (methods added); refuses a
    folder holding another run's records, naming the option that differs."""
    return check_config(out, config, CONFIG_KEYS, options=OPTION_NAMES)


def _cached_cases(
    out: Path, key: dict[str, Any], build: Callable[[], tuple[list[Any], Any]] | None
) -> tuple[list[Any], Any]:
    """The cases of ``out``'s :data:`CASES_FILE` if it was written for ``key``, else
    ``build()``'s, saved there (``build=None``: the file must exist and match). A file
    that cannot be read (truncated by a killed process, say) is rebuilt with a
    :class:`~captum_gfi.evaluation.records.RecordWarning`."""
    path = out / CASES_FILE
    if path.is_file():
        try:
            saved = torch.load(path, weights_only=False)
        except Exception as err:  # noqa: BLE001 - a truncated zip or pickle raises many kinds
            warnings.warn(
                f"{path} is unreadable ({type(err).__name__}); the cases are rebuilt",
                RecordWarning,
                stacklevel=2,
            )
            saved = None
        if isinstance(saved, dict) and saved.get("key") == key and "cases" in saved:
            return saved["cases"], saved.get("stats")
    if build is None:
        raise RuntimeError(f"{path} is missing or was built for another config")
    cases, stats = build()
    tmp = path.with_suffix(".tmp")
    torch.save({"key": key, "cases": cases, "stats": stats}, tmp)
    tmp.replace(path)
    return cases, stats


def check_cases_match(records: dict[str, Record], cases: Sequence[Case]) -> None:
    r"""
    Refuses cases that differ from those the stored records were computed on (another
    image size or target for the same case id, as when ``cases.pt`` is rebuilt under
    other options by a version that did not store them).

    Raises:
        ValueError: Naming the first differing case.
    """
    by_item = {c.case_id: c for c in cases}
    for rec in records.values():
        case = by_item.get(rec["item"]) if rec.get("record") == "case" else None
        if case is None:
            continue
        size = list(case.mask.shape)
        if rec.get("size", size) != size or int(rec.get("target", case.target)) != case.target:
            raise ValueError(
                f"the records of {rec['item']} were computed on another case (size "
                f"{rec.get('size')}, target {rec.get('target')}; now {size}, {case.target}): "
                "resume with the options of that run, or use another --out"
            )


class _BuildProgress:
    """A progress bar (with ETA) over the cases kept while building them."""

    def __init__(self, n: int, enabled: bool) -> None:
        self.bar = tqdm(total=n, unit="case", desc="building cases", disable=not enabled,
                        dynamic_ncols=True)  # fmt: skip
        self.bar.set_postfix_str("classifying the photos' crops", refresh=True)

    def __call__(self, kept: int, tried: int) -> None:
        self.bar.update(kept - self.bar.n)
        self.bar.set_postfix_str(f"{tried} candidates tried", refresh=True)

    def close(self) -> None:
        self.bar.close()


def run_benchmark(options: EvaluateOptions, load_model: ModelLoader) -> int:
    r"""
    Builds (or reuses) the cases of ``options.dataset`` (composites, grids), evaluates
    ``options.methods`` on them, appending records to ``options.out``'s shards, and writes
    the report there; the work of ``captum-gfi evaluate --dataset composites|grids``.

    The options are checked, and the run configuration against the one stored in
    ``options.out``, before ``load_model(options)`` is called, and again (with the model's
    input size) before the cases are built. Under ``torchrun`` the main rank builds the
    cases and every rank takes its share of the batches.

    Args:
        options (EvaluateOptions): The run's options (resolved here if they are not).
        load_model (ModelLoader): ``load_model(options) -> ModelSpec`` with its
                    ``classifier`` set (the case builder's
                    :class:`~captum_gfi.evaluation.benchmark_data.Classifier`).

    Returns:
        int: ``0``.

    Raises:
        ValueError: A bad option (named), a run configuration that differs from the one in
        ``options.out`` (the option named), or a second writer.
    """
    from .benchmark_report import write_benchmark_report

    if not options.is_benchmark:
        raise ValueError(f"`--dataset` must be one of {', '.join(BENCHMARK_DATASETS)} for "
                         f"run_benchmark, got {options.dataset!r}")  # fmt: skip
    options = options.resolved()
    methods = check_methods(options.methods or ",".join(BENCHMARK_METHODS))
    out = check_out_dir(options.out)
    split = options.split if options.split is not None else "test"
    if split not in SPLITS:
        raise ValueError(f"`--split` must be one of {', '.join(SPLITS)} for --dataset "
                         f"{options.dataset}, got {split!r}")  # fmt: skip
    n = required(options.n, "n")
    robust = required(options.max_sensitivity_cases, "max_sensitivity_cases")
    curve_steps = required(options.curve_steps, "curve_steps")
    bench = BenchmarkOptions(
        batch_size=options.batch_size if options.batch_size is not None else 8,
        curve_steps=curve_steps, curve_batch_size=options.curve_batch_size,
        tolerance=options.tolerance, robust_cases=robust, split=split,
        curve_cases=options.curve_cases, extremal_iterations=options.extremal_iterations,
        rise_masks=options.rise_masks, sanity_cases=options.sanity_cases,
        sanity_steps=options.sanity_steps, fgsm_epsilons=fgsm_epsilons(options.fgsm_epsilons),
        fgsm_cases=options.fgsm_cases, gallery_cases=options.thumbnail_cases,
    )  # fmt: skip
    min_conf = options.min_confidence if options.min_confidence is not None else 0.3
    from .benchmark_data import FOREGROUND_POOLS

    if options.pool not in FOREGROUND_POOLS:
        raise ValueError(f"`--pool` must be one of {', '.join(FOREGROUND_POOLS)}, "
                         f"got {options.pool!r}")  # fmt: skip
    info = D.init_from_env()
    lock = RunLock(out)
    try:
        if info.is_main:
            lock.acquire()
        if not options.report_only:
            from .benchmark_data import build_cases

            config = {"dataset": options.dataset, "model": options.model, "n": n,
                      "seed": options.seed, "min_confidence": min_conf,
                      "max_per_photo": options.max_per_photo,
                      "max_tries": options.max_tries,
                      "curve_steps": bench.curve_steps, "tolerance": bench.tolerance,
                      "split": split, "max_sensitivity_cases": bench.robust_cases,
                      "curve_cases": bench.curve_cases, "batch_size": bench.batch_size,
                      "extremal_iterations": bench.extremal_iterations,
                      "rise_masks": bench.rise_masks, "sanity_steps": bench.sanity_steps,
                      **({} if options.pool == "default" else {"pool": options.pool}),
                      "methods": list(methods)}  # fmt: skip
            if info.is_main:  # before the model loads: fail fast
                config = _check_config(out, config)
            device = setup_device(options, info.local_rank)
            spec = load_model(options)
            loaded = spec.classifier
            if loaded is None:
                raise ValueError(
                    "the model loader of composites/grids must set the "
                    "ModelSpec's `classifier` (the case builder's Classifier)"
                )
            config["input_size"] = loaded.input_size
            if info.is_main:  # the input size is known now: check it before building
                config = _check_config(out, config)
                out.mkdir(parents=True, exist_ok=True)
            data_key = cases_key(config)
            if info.is_main:

                def build() -> tuple[list[Any], Any]:
                    progress = _BuildProgress(n, not options.no_progress)
                    try:
                        return build_cases(options.dataset, loaded, n, seed=options.seed,
                                           min_confidence=min_conf,
                                           max_per_photo=options.max_per_photo,
                                           max_tries=options.max_tries,
                                           progress=progress, pool=options.pool)  # fmt: skip
                    finally:
                        progress.close()

                cases, stats = _cached_cases(out, data_key, build)
                check_cases_match(read_records(out), cases)
                write_config(out, config)  # only once the records are known to fit it
                stats_dict = (
                    dataclasses.asdict(stats)
                    if dataclasses.is_dataclass(stats) and not isinstance(stats, type)
                    else {}
                )
                (out / "build_stats.json").write_text(
                    json.dumps(json.loads(json.dumps(stats_dict, default=str)), indent=2,
                               sort_keys=True) + "\n"
                )  # fmt: skip
            D.barrier(info)
            if not info.is_main:  # the main process built (or found) them
                cases, _ = _cached_cases(out, data_key, None)
            D.barrier(info)
            model = spec.model.to(device)
            for param in model.parameters():
                param.requires_grad_(False)
            if options.max_cases is not None:  # a prefix of the built cases
                cases = cases[: options.max_cases]
            run_cases(cases, methods, model, spec.layer, spec.inversion_layer, out, bench,
                      model_name=options.model, device=device, info=info,
                      progress=not options.no_progress)  # fmt: skip
        D.barrier(info)
        if info.is_main:
            # a run reports every method of the folder (its config's, added ones included);
            # --report-only with --methods reports those alone
            chosen = options.methods and options.report_only
            write_benchmark_report(out, methods=methods if chosen else None)
            print((out / "summary.md").read_text())
        D.barrier(info)
    finally:
        lock.release()
        D.finish(info)
    return 0
