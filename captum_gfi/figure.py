"""The explanation figure: the input next to blended attribution heat maps.

Built on Captum's :func:`captum.attr.visualization.visualize_image_attr` and drawn on a
plain :class:`matplotlib.figure.Figure` with the Agg canvas, so no GUI backend or pyplot
global state is involved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from captum.attr import visualization as viz
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

__all__ = ["Panel", "explanation_figure", "save_figure", "to_hwc_image", "to_hw_map"]

SIGNS = ("positive", "absolute_value", "all", "negative")


@dataclass
class Panel:
    r"""
    One panel of the explanation figure.

    Args:
        title (str): Panel title (may hold line breaks).
        attribution (Tensor or np.ndarray, optional): A map over the image, shape
                    ``(H, W)``, ``(1, H, W)``, ``(C, H, W)`` or ``(1, C, H, W)``; channels are
                    summed. ``None`` draws the image itself.
                    Default: None
        sign (str): Which attributions to show, as in Captum's ``visualize_image_attr``:
                    ``"positive"``, ``"absolute_value"``, ``"all"`` or ``"negative"``.
                    Default: ``"positive"``
        outlier_perc (float): Percentage of the largest values clipped before the map is
                    scaled to its maximum (Captum's ``outlier_perc``); use 0 to scale by the
                    maximum itself, e.g. for masks already in ``[0, 1]``.
                    Default: 2
    """

    title: str
    attribution: Tensor | np.ndarray | None = None
    sign: str = "positive"
    outlier_perc: float = 2.0


def to_hwc_image(image: Tensor | np.ndarray) -> np.ndarray:
    r"""
    An image as an ``(H, W, 3)`` float array in ``[0, 1]``.

    Args:
        image (Tensor or np.ndarray): ``(1, 3, H, W)`` or ``(3, H, W)`` tensor in ``[0, 1]``,
                    or an ``(H, W, 3)`` array (``uint8`` or float in ``[0, 1]``).
    """
    if isinstance(image, Tensor):
        array = image.detach().cpu().float()
        if array.dim() == 4:
            if array.shape[0] != 1:
                raise ValueError(f"image must hold a single image, got shape {tuple(image.shape)}")
            array = array[0]
        if array.dim() != 3:
            raise ValueError(f"image must be (1, C, H, W) or (C, H, W), got {tuple(image.shape)}")
        result = array.permute(1, 2, 0).numpy()
    elif isinstance(image, np.ndarray):
        if image.ndim != 3:
            raise ValueError(f"image array must be (H, W, C), got shape {image.shape}")
        result = image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image
    else:
        raise TypeError(f"image must be a Tensor or numpy array, got {type(image).__name__}")
    return np.clip(np.asarray(result, dtype=np.float32), 0.0, 1.0)


def to_hw_map(attribution: Tensor | np.ndarray) -> np.ndarray:
    r"""
    An attribution map as an ``(H, W)`` float array, channels summed.

    Args:
        attribution (Tensor or np.ndarray): Shape ``(H, W)``, ``(C, H, W)`` or
                    ``(1, C, H, W)``.
    """
    if isinstance(attribution, Tensor):
        array = attribution.detach().cpu().float().numpy()
    elif isinstance(attribution, np.ndarray):
        array = attribution.astype(np.float32)
    else:
        raise TypeError(
            f"attribution must be a Tensor or numpy array, got {type(attribution).__name__}"
        )
    if array.ndim == 4:
        if array.shape[0] != 1:
            raise ValueError(f"attribution must hold a single map, got shape {array.shape}")
        array = array[0]
    if array.ndim == 3:
        array = array.sum(axis=0)
    if array.ndim != 2:
        raise ValueError(
            f"attribution must be (H, W), (C, H, W) or (1, C, H, W), got {attribution.shape}"
        )
    return array


def explanation_figure(
    image: Tensor | np.ndarray,
    panels: Sequence[Panel],
    suptitle: str | None = None,
    panel_size: float = 3.0,
    alpha: float = 0.55,
    cmap: str = "jet",
) -> Figure:
    r"""
    Draws ``panels`` side by side in one row: the plain image for a panel without
    attribution, otherwise Captum's ``blended_heat_map`` of the map over a grey copy of
    the image. No colour bars: every map is scaled to its own maximum.

    Args:
        image (Tensor or np.ndarray): The input, ``(1, 3, H, W)`` / ``(3, H, W)`` tensor in
                    ``[0, 1]`` or ``(H, W, 3)`` array.
        panels (Sequence[Panel]): What to draw, left to right.
        suptitle (str, optional): A title over the whole figure.
                    Default: None
        panel_size (float): Width of one panel in inches.
                    Default: 3.0
        alpha (float): Opacity of the heat maps over the image.
                    Default: 0.55
        cmap (str): Matplotlib colour map of the heat maps.
                    Default: ``"jet"``

    Returns:
        matplotlib.figure.Figure: The figure, on an Agg canvas.
    """
    if not panels:
        raise ValueError("panels must not be empty")
    if panel_size <= 0:
        raise ValueError(f"panel_size must be positive, got {panel_size}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    picture = to_hwc_image(image)
    n_title_lines = max(panel.title.count("\n") + 1 for panel in panels)
    height = panel_size + 0.2 * n_title_lines + (0.3 if suptitle else 0.0)
    fig = Figure(figsize=(panel_size * len(panels), height))
    fig.subplots_adjust(left=0.005, right=0.995, bottom=0.01, wspace=0.04)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels):
        if panel.sign not in SIGNS:
            raise ValueError(f"Panel.sign must be one of {SIGNS}, got {panel.sign!r}")
        title = panel.title
        if panel.attribution is None:
            ax.imshow(picture)
        else:
            attr = to_hw_map(panel.attribution)
            if attr.shape != picture.shape[:2]:
                raise ValueError(
                    f"attribution of panel {panel.title!r} has shape {attr.shape}, "
                    f"the image is {picture.shape[:2]}"
                )
            if not np.isfinite(attr).all():
                raise ValueError(f"attribution of panel {panel.title!r} has non-finite values")
            if np.abs(attr).max() < 1e-12:  # nothing to scale: the grey image alone, no 0/0
                ax.imshow(picture.mean(axis=2), cmap="gray", vmin=0.0, vmax=1.0)
                title += " (all zero)"
            else:
                viz.visualize_image_attr(
                    attr[..., None],
                    picture,
                    method="blended_heat_map",
                    sign=panel.sign,
                    plt_fig_axis=(fig, ax),
                    outlier_perc=panel.outlier_perc,
                    cmap=cmap,
                    alpha_overlay=alpha,
                    use_pyplot=False,
                )
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
    if suptitle:
        fig.suptitle(suptitle, fontsize=12)
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    r"""
    Saves ``fig`` (PNG unless the suffix says otherwise), creating parent directories.

    Returns:
        Path: The written file.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi, bbox_inches="tight", pad_inches=0.08)
    return out
