"""``captum-gfi explain``: one figure comparing GFI with Captum's Grad-CAM and IG.

The figure shows, left to right: the input, the class-agnostic stage-1 inversion mask
(of the first setting), the GFI class map for the target (one panel per setting of
``--setting``, e.g. ``paper,authors``), Captum's ``LayerGradCam`` (at the layer GFI masks,
upsampled bilinearly) and ``IntegratedGradients`` (black-image baseline, i.e. zeros in
``[0, 1]`` pixel space before normalisation; absolute values summed over channels).
"""

from __future__ import annotations

import argparse
import difflib
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from tqdm import tqdm

from captum_gfi.models import DEFAULT_MODEL, LoadedModel, load_model
from captum_gfi.samples import SAMPLE_PREFIX, SAMPLES, image_to_tensor, load_image
from captum_gfi.settings import SETTINGS, get_setting

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from captum_gfi.figure import Panel

__all__ = [
    "HELP",
    "Explanation",
    "add_arguments",
    "compute_explanation",
    "default_output_path",
    "explanation_panels",
    "parse_setting_names",
    "parse_target",
    "render_explanation",
    "run",
]

HELP = (
    "Explain an image classifier's prediction with GFI and write one figure comparing it "
    "with Captum's LayerGradCam and IntegratedGradients."
)

#: The paper's step counts (Du et al., KDD 2018).
INVERSION_STEPS = 10
TARGET_STEPS = 70
IG_STEPS = 50


def parse_setting_names(value: str) -> list[str]:
    r"""
    Parses a ``--setting`` value: one name of ``captum_gfi.settings.SETTINGS`` or several
    separated by commas (``"paper,authors"``).

    Raises:
        ValueError: an unknown or repeated name, or none.
    """
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise ValueError(f"--setting needs at least one name of {sorted(SETTINGS)}")
    for name in names:
        if name not in SETTINGS:
            raise ValueError(f"--setting {name!r} is unknown; the settings are {sorted(SETTINGS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"--setting names a setting twice: {value!r}")
    return names


def parse_target(value: str | int | None, categories: Sequence[str]) -> int | None:
    r"""
    Parses a ``--target`` value.

    Args:
        value (str, int or None): ``"auto"`` / None (the top-1 class), a class index
                    (``"285"``) or a class name (``"Egyptian cat"``; an exact match wins, else
                    case-insensitive).
        categories (Sequence[str]): The model's class names.

    Returns:
        int or None: The class index, or None for ``auto``.

    Raises:
        ValueError: Out-of-range index, unknown or ambiguous class name.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(f"target must be a str or int, got {type(value).__name__}")
    n = len(categories)
    text = str(value).strip()
    if text.lower() == "auto":
        return None
    if text.lstrip("-").isdigit():
        index = int(text)
        if not 0 <= index < n:
            raise ValueError(f"--target index {index} is out of range [0, {n - 1}]")
        return index
    matches = [i for i, name in enumerate(categories) if name == text]
    if not matches:  # e.g. ImageNet has both "Cardigan" (264, the corgi) and "cardigan" (474)
        matches = [i for i, name in enumerate(categories) if name.lower() == text.lower()]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ValueError(
            f"--target {text!r} is ambiguous: classes {matches} share that name; pass the index"
        )
    close = difflib.get_close_matches(text, list(categories), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"--target {text!r} is neither 'auto', a class index nor a class name{hint}")


@dataclass
class Explanation:
    r"""
    Everything the explanation figure shows, for one image.

    Attributes:
        image (Tensor): ``(1, 3, H, W)`` input in ``[0, 1]``.
        probabilities (Tensor): ``(num_classes,)`` softmax output on ``image``.
        target (int): The explained class.
        categories (list[str]): Class names.
        model_name (str): Spec of the model.
        inversion_mask (Tensor): Stage-1 (class-agnostic) GFI mask of the first setting,
                    ``(1, 1, H, W)``.
        gfi (Tensor): GFI class map for ``target`` of the first setting, ``(1, 1, H, W)``
                    in ``[0, 1]``.
        grad_cam (Tensor): Upsampled LayerGradCam, ``(1, 1, H, W)``.
        integrated_gradients (Tensor): IntegratedGradients, ``(1, 3, H, W)``.
        seconds (dict[str, float]): Wall time of each method: ``"gfi"`` is the class map
                    of the first setting (both stages), ``"gfi:NAME"`` that of each further
                    setting, ``"gfi_stage1"`` the stage-1 mask.
        gfi_maps (dict[str, Tensor]): the class map of every setting, by name, in the
                    order asked (the first is ``gfi``).
    """

    image: Tensor
    probabilities: Tensor
    target: int
    categories: list[str]
    model_name: str
    inversion_mask: Tensor
    gfi: Tensor
    grad_cam: Tensor
    integrated_gradients: Tensor
    seconds: dict[str, float]
    gfi_maps: dict[str, Tensor]

    @property
    def top1(self) -> int:
        """Index of the most probable class."""
        return int(self.probabilities.argmax())

    def label(self, index: int) -> str:
        """``"name (p%)"`` of class ``index``."""
        return f"{self.categories[index]} ({100.0 * float(self.probabilities[index]):.1f}%)"


def compute_explanation(
    bundle: LoadedModel,
    image: Tensor,
    target: int | None = None,
    inversion_steps: int | None = None,
    target_steps: int | None = None,
    ig_steps: int = IG_STEPS,
    show_progress: bool = False,
    settings: Sequence[str] = ("paper",),
) -> Explanation:
    r"""
    Runs GFI (stage 1 alone, then both stages for every setting), LayerGradCam and
    IntegratedGradients on one image, all through ``bundle.classifier`` (inputs in
    ``[0, 1]``).

    Args:
        bundle (LoadedModel): The model, see :func:`captum_gfi.models.load_model`.
        image (Tensor): ``(1, 3, S, S)`` in ``[0, 1]`` with ``S = bundle.input_size``.
        target (int, optional): Class to explain. Default: None (the top-1 class)
        inversion_steps (int, optional): GFI stage-1 steps, for every setting.
                    Default: None (each setting's; paper: 10)
        target_steps (int, optional): GFI stage-2 steps, for every setting.
                    Default: None (each setting's; paper: 70)
        ig_steps (int): IntegratedGradients steps. Default: 50
        show_progress (bool): Show tqdm progress bars. Default: False
        settings (Sequence[str]): names of ``captum_gfi.settings.SETTINGS``, one class map
                    each. Default: ``("paper",)``

    Returns:
        Explanation: The maps and the prediction.
    """
    from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam

    from captum_gfi import GuidedFeatureInversion
    from captum_gfi.presets import resolve_layers

    size = bundle.input_size
    if image.dim() != 4 or tuple(image.shape[:2]) != (1, 3) or image.shape[2:] != (size, size):
        raise ValueError(f"image must have shape (1, 3, {size}, {size}), got {tuple(image.shape)}")
    for name, steps in (
        ("inversion_steps", inversion_steps),
        ("target_steps", target_steps),
        ("ig_steps", ig_steps),
    ):
        if steps is None and name != "ig_steps":
            continue
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"{name} must be a positive int, got {steps!r}")
    names = list(settings)
    if not names:
        raise ValueError("settings must name at least one setting")
    for name in names:
        get_setting(name)  # unknown names fail before the long computation
    probabilities = bundle.predict(image)[0]
    if target is None:
        target = int(probabilities.argmax())
    elif not 0 <= target < probabilities.numel():
        raise ValueError(f"target {target} is out of range [0, {probabilities.numel() - 1}]")
    classifier = bundle.classifier
    # the presets know the raw architectures; the layers are shared with the wrapper
    preset = resolve_layers(bundle.model)
    gfi = GuidedFeatureInversion(classifier, preset.layer, preset.inversion_layer)
    seconds: dict[str, float] = {}
    gfi_maps: dict[str, Tensor] = {}
    with tqdm(
        total=3 + len(names),
        desc="captum-gfi explain",
        unit="method",
        disable=not show_progress,
        file=sys.stderr,
    ) as bar:
        bar.set_postfix_str("GFI stage 1")
        start = time.perf_counter()
        # the target is passed for a setting whose stage 1 starts from Grad-CAM's weights
        # (refined); the paper's stage 1 is class-agnostic and does not use it
        inversion_mask = gfi.attribute(
            image, target=target, stage="inversion", setting=names[0],
            inversion_steps=inversion_steps, show_progress=show_progress,
        )  # fmt: skip
        seconds["gfi_stage1"] = time.perf_counter() - start
        bar.update()

        for k, name in enumerate(names):
            bar.set_postfix_str(f"GFI ({name})")
            start = time.perf_counter()
            # both stages in one call: a setting may carry Adam's state across them
            gfi_maps[name] = gfi.attribute(
                image, target=target, setting=name, inversion_steps=inversion_steps,
                target_steps=target_steps, show_progress=show_progress,
            ).detach()  # fmt: skip
            seconds["gfi" if k == 0 else f"gfi:{name}"] = time.perf_counter() - start
            bar.update()

        bar.set_postfix_str("LayerGradCam")
        start = time.perf_counter()
        cam = LayerGradCam(classifier, preset.layer).attribute(
            image, target=target, relu_attributions=True
        )
        grad_cam = LayerAttribution.interpolate(cam, (size, size), interpolate_mode="bilinear")
        seconds["grad_cam"] = time.perf_counter() - start
        bar.update()

        bar.set_postfix_str("IntegratedGradients")
        start = time.perf_counter()
        integrated = IntegratedGradients(classifier).attribute(
            image, baselines=torch.zeros_like(image), target=target, n_steps=ig_steps,
            internal_batch_size=min(ig_steps, 16),
        )  # fmt: skip
        seconds["integrated_gradients"] = time.perf_counter() - start
        bar.update()
    return Explanation(
        image=image.detach(),
        probabilities=probabilities.detach(),
        target=target,
        categories=list(bundle.categories),
        model_name=bundle.name,
        inversion_mask=inversion_mask.detach(),
        gfi=gfi_maps[names[0]],
        grad_cam=grad_cam.detach(),
        integrated_gradients=integrated.detach(),
        seconds=seconds,
        gfi_maps=gfi_maps,
    )


def explanation_panels(explanation: Explanation) -> list[Panel]:
    r"""
    The panels of the figure: input, stage-1 mask, one GFI class map per setting,
    LayerGradCam, IG (five with one setting).
    """
    from captum_gfi.figure import Panel

    e = explanation
    target = e.label(e.target)
    top1 = f"predicted: {e.label(e.top1)}"
    explained = top1 if e.target == e.top1 else f"target: {target}"
    first = next(iter(e.gfi_maps))
    return [
        Panel(f"Input ({e.model_name})\n{top1}"),
        Panel(
            f"GFI stage 1 (class-agnostic)\n{top1}\nsetting: {first}",
            e.inversion_mask,
            outlier_perc=0,
        ),
        *(
            Panel(f"GFI class map\n{explained}\nsetting: {name}", gfi_map, outlier_perc=0)
            for name, gfi_map in e.gfi_maps.items()
        ),
        Panel(f"LayerGradCam\n{explained}", e.grad_cam),
        Panel(
            f"IntegratedGradients\n{explained}", e.integrated_gradients.abs(), sign="absolute_value"
        ),
    ]


def render_explanation(explanation: Explanation, out: str | Path, dpi: int = 120) -> Path:
    r"""
    Draws :func:`explanation_panels` in one row and saves the figure to ``out``.

    Returns:
        Path: The written file.
    """
    from captum_gfi.figure import explanation_figure, save_figure

    fig = explanation_figure(explanation.image, explanation_panels(explanation))
    return save_figure(fig, out, dpi=dpi)


def default_output_path(image: str) -> Path:
    r"""``gfi-<name>.png`` in the current directory for an image path or sample name."""
    stem = image[len(SAMPLE_PREFIX) :] if image.startswith(SAMPLE_PREFIX) else Path(image).stem
    return Path(f"gfi-{stem or 'image'}.png")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    r"""Adds the ``explain`` options to ``parser``."""
    parser.add_argument(
        "image",
        metavar="IMAGE",
        help="an image file, or a bundled sample: "
        + ", ".join(SAMPLE_PREFIX + s for s in SAMPLES)
        + " (china and flower need scikit-learn)",
    )
    parser.add_argument(
        "--target",
        default="auto",
        metavar="CLASS",
        help="class to explain: 'auto' (the top-1 class, default), an index (285) or a "
        "class name ('Egyptian cat')",
    )
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="'efficientnet-lite0' (default; the ImageNet-trained demo model, weights "
        "bundled), 'efficientnet-lite1' (240 px), 'efficientnet-lite2' (260 px) or "
        "'torchvision:NAME', e.g. torchvision:resnet18, torchvision:vgg19",
    )
    parser.add_argument(
        "--weights",
        metavar="PATH",
        default=None,
        help="weights file for --model (default: bundled for efficientnet-lite*; the torch "
        "hub cache for torchvision models; nothing is downloaded)",
    )
    parser.add_argument(
        "--out",
        metavar="FILE.png",
        default=None,
        help="output figure (default: gfi-<image name>.png in the current directory)",
    )
    parser.add_argument(
        "--setting",
        default="paper",
        metavar="NAME[,NAME...]",
        help="GFI setting(s), one class-map panel each: "
        + ", ".join(SETTINGS)
        + " (default paper; e.g. paper,authors compares the two)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    advanced = parser.add_argument_group("advanced (the GFI step defaults are the setting's)")
    advanced.add_argument(
        "--inversion-steps",
        type=int,
        default=INVERSION_STEPS,
        action=_GivenSteps,
        metavar="N",
        help=f"GFI stage-1 steps, for every setting (default: the setting's; paper "
        f"{INVERSION_STEPS})",
    )
    advanced.add_argument(
        "--target-steps",
        type=int,
        default=TARGET_STEPS,
        action=_GivenSteps,
        metavar="N",
        help=f"GFI stage-2 steps, for every setting (default: the setting's; paper {TARGET_STEPS})",
    )
    advanced.add_argument(
        "--ig-steps",
        type=int,
        default=IG_STEPS,
        metavar="N",
        help=f"IntegratedGradients steps (default {IG_STEPS})",
    )
    advanced.add_argument("--dpi", type=int, default=120, help="figure resolution (default 120)")


class _GivenSteps(argparse.Action):
    """Stores the value and records that the option was given: its default (the paper's
    count) is then not applied to a setting with counts of its own."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        namespace.given_steps = {*getattr(namespace, "given_steps", ()), self.dest}


def run(args: argparse.Namespace) -> int:
    r"""Runs ``captum-gfi explain``; returns the exit status."""
    names = parse_setting_names(args.setting)  # fails before loading the model
    given: set[str] = getattr(args, "given_steps", set())
    try:
        bundle = load_model(args.model, args.weights)
        target = parse_target(args.target, bundle.categories)
        image = image_to_tensor(load_image(args.image), bundle.input_size)
    except ImportError as err:
        print(f"captum-gfi explain: error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else default_output_path(args.image)
    try:  # fail before the long computation, not after it
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        print(f"captum-gfi explain: error: cannot write {out}: {err}", file=sys.stderr)
        return 2
    explanation = compute_explanation(
        bundle,
        image,
        target,
        inversion_steps=args.inversion_steps if "inversion_steps" in given else None,
        target_steps=args.target_steps if "target_steps" in given else None,
        ig_steps=args.ig_steps,
        show_progress=not args.no_progress,
        settings=names,
    )
    try:
        path = render_explanation(explanation, out, dpi=args.dpi)
    except OSError as err:  # e.g. an unwritable --out directory
        print(f"captum-gfi explain: error: cannot write {out}: {err}", file=sys.stderr)
        return 2
    total = sum(explanation.seconds.values())
    print(
        f"{path}: {explanation.model_name} predicts {explanation.label(explanation.top1)}; "
        f"explained class {explanation.target} {explanation.label(explanation.target)} "
        f"[{total:.1f} s]"
    )
    return 0
