"""``captum-gfi evaluate``: parses its options into
:class:`~captum_gfi.evaluation.run_options.EvaluateOptions`, loads the model named by
``--model`` (:func:`captum_gfi.demo.models.load_model`) and calls the evaluation library's
runners: :func:`~captum_gfi.evaluation.runner.run_datasets` (photos, folder, imagenet, voc07)
or :func:`~captum_gfi.evaluation.benchmark_runner.run_benchmark` (composites, grids).

Nothing here changes a record: what an option does is the library's; this module parses,
shows warnings as one line each and turns the runners' errors into exit codes (``cli.py``).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["HELP", "add_arguments", "load_model_spec", "run"]

HELP = """Evaluate attribution methods (GFI and Captum baselines) on localisation benchmarks.

Records are appended to OUT/shards as they are computed: rerunning the same command resumes
an interrupted run, and adding methods reuses the records already there (the report then
covers every method in OUT; --report-only --methods M reports M alone). OUT/config.json
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``evaluate`` options."""
    from captum_gfi.evaluation.benchmark_metrics import CURVE_STEPS
    from captum_gfi.evaluation.methods import METHODS
    from captum_gfi.evaluation.peers import PEERS
    from captum_gfi.evaluation.perturbation_curves import SUBSTRATES
    from captum_gfi.evaluation.pointing import STANDARD_TOLERANCE
    from captum_gfi.evaluation.runner import PROTOCOLS

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
        "cases, tune cases only choose WSOL's alpha; default), tune, all, or test-only (the "
        "test cases alone, for expensive methods: WSOL's alpha is then chosen on them)",
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
        help=f"comma list of {','.join(METHODS)}, gfi:<setting>, or the peers "
        f"{','.join(PEERS)} (the peers extra) (default: gfi,gradcam,ig,saliency; "
        "composites/grids: every method of Captum and GFI)",
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
        default=None,
        help="images are resized to SxS (default 224; composites/grids: the model's own "
        "input size; this only for toy and module:callable models)",
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
        default=None,
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
        default=None,
        help="number of cases to build (default 200; --quick: 12; the alias --n is ambiguous "
        "to torchrun's parser, which sees it first: use --num-cases under torchrun)",
    )
    b.add_argument("--seed", type=int, default=0, help="seed of the case builder (default 0)")
    b.add_argument(
        "--pool",
        default="default",
        help="foreground photos: default (the test extra's wheels: scikit-image, scikit-learn, "
        "matplotlib, imgaug) or large (also foolbox's and sporco's photos and Debian's "
        "tuxpaint-stamps-default photo cut-outs, where installed; each photo capped at 10 %% "
        "of the cases)",
    )
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
        "--max-cases",
        type=int,
        default=None,
        help="evaluate only the first N built cases (default: all): expensive methods on a "
        "documented subset of a run's cases (copy its cases.pt into the new --out to reuse "
        "them without building)",
    )
    b.add_argument(
        "--max-sensitivity-cases",
        type=int,
        default=None,
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
        "--thumbnail-cases",
        type=int,
        default=8,
        help="store 64x64 thumbnails of the input, the ground truth and every map for the "
        "first N evaluated cases (default 8: the report's gallery); more for studies of the "
        "maps from the records alone (research/map_contrast.py). Thumbnails change no metric: "
        "a resumed run may give another N, and the cases done keep theirs",
    )
    b.add_argument(
        "--curve-steps",
        type=int,
        default=None,
        help=f"insertion/deletion steps (default {CURVE_STEPS}; --quick: 20)",
    )
    b.add_argument(
        "--curve-batch-size", type=int, default=32, help="forward batch of the curves (default 32)"
    )
    peers = parser.add_argument_group("peers (the peers extra)")
    peers.add_argument(
        "--extremal-iterations",
        type=int,
        default=None,
        help="extremal perturbation's iterations (default: TorchRay's 800; fewer on a CPU, "
        "stored in the run's configuration)",
    )
    peers.add_argument(
        "--rise-masks",
        type=int,
        default=None,
        help="RISE's masks (default: TorchRay's 8000)",
    )
    checks = parser.add_argument_group("composites / grids: the randomisation test and FGSM")
    checks.add_argument(
        "--sanity-cases",
        type=int,
        default=0,
        help="cascading model-parameter randomisation (Adebayo et al. 2018) of every method "
        "on the first K evaluated cases (default 0: off); a method fails when its maps stay "
        "rank-correlated with the trained model's",
    )
    checks.add_argument(
        "--sanity-steps",
        type=int,
        default=None,
        help="randomise only the top K steps of the cascade (default: all)",
    )
    checks.add_argument(
        "--fgsm-epsilons",
        default=None,
        help="the paper's adversarial test (Sec. 4.1.3): FGSM at these step sizes in grey "
        "levels of 255, e.g. 2,8 (default: off); the cases whose prediction flips are "
        "explained for their true class",
    )
    checks.add_argument(
        "--fgsm-cases",
        type=int,
        default=None,
        help="FGSM on the first K evaluated cases (default: all)",
    )
    a("--threads", type=int, default=None, help="torch.set_num_threads per process")
    a("--device", default=None, help="cpu or cuda (default: cuda when available)")
    a("--no-progress", action="store_true", help="hide the progress bars (on stderr)")
    a(
        "--report-only",
        action="store_true",
        help="compute nothing: merge the records already in --out and write the report",
    )


def load_model_spec(options: Any) -> Any:
    r"""
    The :class:`~captum_gfi.evaluation.run_options.ModelSpec` of ``options.model``.

    ``toy`` (the one toy CNN, layer ``conv2``), ``module:callable`` (a model built by calling
    it), or a :func:`captum_gfi.demo.models.load_model` spec (EfficientNet-Lite,
    ``torchvision:NAME``). Every model takes ``[0, 1]`` images: the loaded models come with
    their input normalisation inside. ``--layer`` / ``--inversion-layer`` name the layers,
    else the model's preset (:func:`captum_gfi.presets.resolve_layers`) is used.
    """
    import torch

    from captum_gfi.demo.models import LoadedModel
    from captum_gfi.evaluation.methods import resolve_module
    from captum_gfi.evaluation.run_options import ModelSpec

    name: str = options.model
    default_layer: str | None = None
    loaded: Any = None
    if name == "toy":
        from captum_gfi.demo.toy import toy_convnet

        model = toy_convnet()
        default_layer = "conv2"
    elif ":" in name and not name.startswith("torchvision:"):
        import importlib

        module_name, attr = name.split(":", 1)
        model = getattr(importlib.import_module(module_name), attr)()
    else:
        from captum_gfi.demo.models import load_model

        spec = name.replace("_", "-") if name.startswith("efficientnet_") else name
        loaded = load_model(spec, options.weights)
        model = loaded.classifier
    model.eval()
    if loaded is None:  # a model taking [0, 1] images itself: identity normalisation
        size = int(options.image_size)
        with torch.no_grad():
            classes = int(model(torch.zeros(1, 3, size, size)).shape[1])
        loaded = LoadedModel(model, name, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), size,
                             [str(i) for i in range(classes)])  # fmt: skip
    layer = resolve_module(model, options.layer) if options.layer else None
    inv = resolve_module(model, options.inversion_layer) if options.inversion_layer else None
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
    return ModelSpec(model, layer, inv, classifier=loaded)


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
    from captum_gfi.evaluation.datasets import UnreadableImageWarning
    from captum_gfi.evaluation.records import RecordWarning

    if issubclass(category, (RecordWarning, UnreadableImageWarning)):
        print(f"captum-gfi evaluate: warning: {message}", file=sys.stderr)
    else:
        _SHOW_WARNING(message, category, filename, lineno, file, line)


@contextmanager
def _one_line_warnings() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        yield


def run(args: argparse.Namespace) -> int:
    """Run the evaluation described by the parsed ``args``; returns the exit code."""
    from captum_gfi.evaluation.run_options import EvaluateOptions

    options = EvaluateOptions.from_namespace(args).resolved()
    with _one_line_warnings():
        if options.is_benchmark:
            from captum_gfi.evaluation.benchmark_runner import run_benchmark

            return run_benchmark(options, load_model_spec)
        from captum_gfi.evaluation.runner import run_datasets

        return run_datasets(options, load_model_spec)
