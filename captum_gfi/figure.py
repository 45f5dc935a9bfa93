"""The explanation figure: the input next to blended attribution heat maps, with colour bars.

Built on Captum's :func:`captum.attr.visualization.visualize_image_attr` and drawn on a
plain :class:`matplotlib.figure.Figure` with the Agg canvas, so no GUI backend or pyplot
global state is involved.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from captum.attr import visualization as viz
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mpl_toolkits.axes_grid1 import make_axes_locatable
from torch import Tensor

if TYPE_CHECKING:
    from matplotlib.axes import Axes

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


def _as_grid(
    panels: Sequence[Panel | None] | Sequence[Sequence[Panel | None]],
) -> list[list[Panel | None]]:
    """One row of panels, or rows of them, as a rectangular grid (short rows padded)."""
    if not panels:
        raise ValueError("panels must not be empty")
    rows: list[list[object]]
    if all(p is None or isinstance(p, Panel) for p in panels):
        rows = [list(panels)]
    elif all(isinstance(row, Sequence) and not isinstance(row, str) for row in panels):
        rows = [list(row) for row in panels]  # type: ignore[arg-type]
    else:
        raise TypeError("panels must be a sequence of Panel (one row) or of rows of Panel")
    width = max(len(row) for row in rows)
    grid: list[list[Panel | None]] = []
    for row in rows:
        for cell in row:
            if cell is not None and not isinstance(cell, Panel):
                raise TypeError(f"panels must hold Panel or None, got {type(cell).__name__}")
        grid.append(
            [c for c in row if c is None or isinstance(c, Panel)] + [None] * (width - len(row))
        )
    if all(cell is None for row in grid for cell in row):
        raise ValueError("panels must not be empty")
    return grid


def _draw(fig: Figure, ax: Axes, panel: Panel, picture: np.ndarray, colorbar: bool, cmap: str,
          alpha: float) -> None:  # fmt: skip
    if panel.sign not in SIGNS:
        raise ValueError(f"Panel.sign must be one of {SIGNS}, got {panel.sign!r}")
    title = panel.title
    heat_map = False
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
            heat_map = True
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()
    if colorbar:  # as Captum's show_colorbar: a bar below a heat map, the same space below others
        cax = make_axes_locatable(ax).append_axes("bottom", size="5%", pad=0.05)
        if heat_map:
            bar = fig.colorbar(ax.images[-1], cax=cax, orientation="horizontal")
            bar.set_ticks([0.0, 0.5, 1.0] if panel.sign != "all" else [-1.0, 0.0, 1.0])
            bar.ax.tick_params(labelsize=7)
        else:
            cax.set_axis_off()


def explanation_figure(
    image: Tensor | np.ndarray,
    panels: Sequence[Panel | None] | Sequence[Sequence[Panel | None]],
    suptitle: str | None = None,
    panel_size: float = 3.0,
    alpha: float = 0.55,
    cmap: str = "jet",
    colorbar: bool = True,
    caption: str | None = None,
) -> Figure:
    r"""
    Draws ``panels`` in a grid: the plain image for a panel without attribution, otherwise
    Captum's ``blended_heat_map`` of the map over a grey copy of the image, scaled to
    ``[0, 1]`` (the map's maximum, or its ``100 - outlier_perc`` percentile, is 1) with a
    colour bar below it.

    Args:
        image (Tensor or np.ndarray): The input, ``(1, 3, H, W)`` / ``(3, H, W)`` tensor in
                    ``[0, 1]`` or ``(H, W, 3)`` array.
        panels (Sequence): One row of :class:`Panel`, left to right, or a sequence of rows;
                    ``None`` leaves a cell empty.
        suptitle (str, optional): A title over the whole figure.
                    Default: None
        panel_size (float): Width of one panel in inches.
                    Default: 3.0
        alpha (float): Opacity of the heat maps over the image.
                    Default: 0.55
        cmap (str): Matplotlib colour map of the heat maps.
                    Default: ``"jet"``
        colorbar (bool): A colour bar below every heat map.
                    Default: True
        caption (str, optional): A line of text under the figure, e.g. how to read it.
                    Default: None

    Returns:
        matplotlib.figure.Figure: The figure, on an Agg canvas.
    """
    grid = _as_grid(panels)
    if panel_size <= 0:
        raise ValueError(f"panel_size must be positive, got {panel_size}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    picture = to_hwc_image(image)
    n_rows, n_cols = len(grid), len(grid[0])
    n_title_lines = max(p.title.count("\n") + 1 for row in grid for p in row if p is not None)
    row_height = panel_size * (1.12 if colorbar else 1.0) + 0.2 * n_title_lines
    height = n_rows * row_height + (0.35 if suptitle else 0.0)
    fig = Figure(figsize=(panel_size * n_cols, height))
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for r, row in enumerate(grid):
        for c, panel in enumerate(row):
            ax = axes[r][c]
            if panel is None:
                ax.set_axis_off()
                continue
            _draw(fig, ax, panel, picture, colorbar, cmap, alpha)
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.98 if not suptitle else 0.92)
    if caption:  # wrapped to the figure's width (about 14 characters an inch at 9 pt)
        text = "\n".join(textwrap.wrap(caption, width=max(40, int(14 * panel_size * n_cols))))
        fig.text(0.5, 0.0, text, ha="center", va="top", fontsize=9)
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
