"""What an evaluation run is given: its options and its model.

:class:`EvaluateOptions` holds every option of an evaluation (the fields are the
``captum-gfi evaluate`` options, ``--image-size`` as ``image_size``), and :class:`ModelSpec`
the model with the layers the methods use. The two runners,
:func:`~captum_gfi.evaluation.runner.run_datasets` (photos, folder, imagenet, voc07) and
:func:`~captum_gfi.evaluation.benchmark_runner.run_benchmark` (composites, grids), take one
of each; the command only parses its arguments into them.

A field left ``None`` takes its default when the options are :meth:`~EvaluateOptions.resolved`:
the quick defaults (:data:`QUICK_DATASETS`, :data:`QUICK_BENCHMARK`) when ``quick`` is set,
else the plain ones (:data:`DEFAULTS`); a value given explicitly always wins.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
from torch import nn

from .benchmark_metrics import CURVE_STEPS
from .peers import peer_options
from .pointing import STANDARD_TOLERANCE
from .records import check_out_dir

__all__ = ["EvaluateOptions", "ModelLoader", "ModelSpec", "setup_device"]

T = TypeVar("T")

#: ``dataset`` values of the exact-ground-truth benchmark (the other runner has the rest).
BENCHMARK_DATASETS: tuple[str, ...] = ("composites", "grids")
DATASETS: tuple[str, ...] = ("imagenet", "voc07", "folder", "photos", *BENCHMARK_DATASETS)
#: The plain defaults of the fields that ``quick`` may replace.
DEFAULTS: dict[str, Any] = {
    "image_size": 224, "step": 224, "n": 200, "max_sensitivity_cases": 32,
    "curve_steps": CURVE_STEPS,
}  # fmt: skip
#: ``quick`` on photos / folder / imagenet / voc07: the first 16 images, 1024-pixel steps.
QUICK_DATASETS: dict[str, Any] = {"max_images": 16, "step": 1024}
#: ``quick`` on composites / grids: 12 cases, no max-sensitivity, 20-step curves.
QUICK_BENCHMARK: dict[str, Any] = {"n": 12, "max_sensitivity_cases": 0, "curve_steps": 20}


@dataclass
class EvaluateOptions:
    r"""
    The options of an evaluation run (the ``captum-gfi evaluate`` options; its ``--help``
    describes each one, and :data:`~captum_gfi.evaluation.runner.CONFIG_KEYS` and
    :data:`~captum_gfi.evaluation.benchmark_runner.CONFIG_KEYS` say which of them change a
    record).

    Example::

        from captum_gfi.evaluation.run_options import EvaluateOptions
        from captum_gfi.evaluation.benchmark_runner import run_benchmark

        options = EvaluateOptions("composites", methods="gradcam,gfi:refined", quick=True,
                                  out="quick-run").resolved()
        run_benchmark(options, my_loader)  # my_loader(options) -> ModelSpec
    """

    dataset: str
    root: str | None = None
    split: str | None = None
    model: str = "efficientnet-lite0"
    weights: str | None = None
    layer: str | None = None
    inversion_layer: str | None = None
    methods: str | None = None
    protocols: str = "wsol,pointing,insertion,deletion"
    out: str = "results"
    quick: bool = False
    image_size: int | None = None
    target: str | None = None
    min_confidence: float | None = None
    max_images: int | None = None
    tolerance: float = STANDARD_TOLERANCE
    step: int | None = None
    substrate: str = "blur"
    tune_fraction: float = 0.0
    grid_size: int = 2
    grid_count: int | None = None
    batch_size: int | None = None
    n: int | None = None
    seed: int = 0
    max_per_photo: int | None = None
    pool: str = "default"
    max_tries: int | None = None
    max_cases: int | None = None
    max_sensitivity_cases: int | None = None
    curve_cases: int | None = None
    curve_steps: int | None = None
    curve_batch_size: int = 32
    extremal_iterations: int | None = None
    rise_masks: int | None = None
    sanity_cases: int = 0
    sanity_steps: int | None = None
    fgsm_epsilons: str | None = None
    fgsm_cases: int | None = None
    thumbnail_cases: int = 8
    threads: int | None = None
    device: str | None = None
    no_progress: bool = False
    report_only: bool = False

    @classmethod
    def from_namespace(cls, namespace: Any) -> EvaluateOptions:
        """The options of a parsed ``captum-gfi evaluate`` command line (its other
        attributes, such as the sub-command's name, are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in vars(namespace).items() if k in names})

    @property
    def peer_options(self) -> dict[str, Any]:
        """:func:`~captum_gfi.evaluation.peers.make_peer` keyword arguments of the peer sizes
        given (``extremal_iterations``, ``rise_masks``); the peers' defaults otherwise."""
        return peer_options(self.extremal_iterations, self.rise_masks)

    @property
    def is_benchmark(self) -> bool:
        """Whether the run is the exact-ground-truth benchmark (composites / grids)."""
        return self.dataset in BENCHMARK_DATASETS

    def resolved(self) -> EvaluateOptions:
        r"""
        A copy with the defaults filled in and every value checked, before anything is
        loaded.

        Raises:
            ValueError: Naming the option (as spelt on the command line), the value and the
            allowed range.
        """
        if self.dataset not in DATASETS:
            raise ValueError(f"`--dataset` must be one of {', '.join(DATASETS)}, "
                             f"got {self.dataset!r}")  # fmt: skip
        values = dataclasses.asdict(self)
        quick = (QUICK_BENCHMARK if self.is_benchmark else QUICK_DATASETS) if self.quick else {}
        for name, value in {**DEFAULTS, **quick}.items():
            if values[name] is None:
                values[name] = value
        options = EvaluateOptions(**values)
        options._check()
        return options

    def _check(self) -> None:
        for name, value, low in (("--image-size", self.image_size, 8), ("--step", self.step, 1),
                                 ("--max-images", self.max_images, 1),
                                 ("--grid-count", self.grid_count, 1),
                                 ("--batch-size", self.batch_size, 1),
                                 ("--threads", self.threads, 1),
                                 ("--extremal-iterations", self.extremal_iterations, 1),
                                 ("--rise-masks", self.rise_masks, 1),
                                 ("--max-sensitivity-cases", self.max_sensitivity_cases, 0),
                                 ("--curve-cases", self.curve_cases, 0),
                                 ("--thumbnail-cases", self.thumbnail_cases, 0),
                                 ("--curve-steps", self.curve_steps, 1),
                                 ("--curve-batch-size", self.curve_batch_size, 1),
                                 ("--max-per-photo", self.max_per_photo, 1),
                                 ("--max-tries", self.max_tries, 1),
                                 ("--max-cases", self.max_cases, 1)):  # fmt: skip
            if value is not None and value < low:
                raise ValueError(f"`{name}` must be >= {low}, got {value}")
        if self.n is not None and self.n < 1:
            raise ValueError(f"`--num-cases` (`--n`) must be >= 1, got {self.n}")
        if self.tolerance < 0:
            raise ValueError(f"`--tolerance` must be >= 0, got {self.tolerance}")
        if not 0.0 <= self.tune_fraction < 1.0:
            raise ValueError(f"`--tune-fraction` must be in [0, 1), got {self.tune_fraction}")
        if self.min_confidence is not None and not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"`--min-confidence` must be in [0, 1], got {self.min_confidence}")
        check_out_dir(self.out)


def required(value: T | None, name: str) -> T:
    """``value``, which a resolved option always has (:meth:`EvaluateOptions.resolved`)."""
    if value is None:
        raise ValueError(f"option `{name}` is not set: pass EvaluateOptions.resolved()")
    return value


@dataclass
class ModelSpec:
    r"""
    A model with the layers GFI and Grad-CAM use.

    Args:
        model (nn.Module): The classifier, taking ``[0, 1]`` images (its input normalisation
                    inside), so the perturbation protocols work in pixel space.
        layer (nn.Module, optional): GFI's mask layer and Grad-CAM's layer.
        inversion_layer (nn.Module, optional): GFI's inversion layer ``l0``.
        classifier (Any, optional): What the benchmark's case builder needs of the model
                    (:class:`~captum_gfi.evaluation.benchmark_data.Classifier`: input size,
                    normalisation, class names); needed by composites / grids only.
        extra (dict): Anything else the loader wants to keep.
    """

    model: nn.Module
    layer: nn.Module | None
    inversion_layer: nn.Module | None = None
    classifier: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


#: ``loader(options) -> ModelSpec``: how a runner gets its model, called only once the
#: options and the output folder have been checked.
ModelLoader = Callable[[EvaluateOptions], ModelSpec]


def setup_device(options: EvaluateOptions, local_rank: int = 0) -> torch.device:
    """Apply ``threads`` and pick the device: ``device``, else this rank's GPU when there
    is one, else the CPU."""
    if options.threads:
        torch.set_num_threads(options.threads)
    if options.device:
        return torch.device(options.device)
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    return torch.device("cpu")
