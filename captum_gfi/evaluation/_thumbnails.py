"""Small PNG thumbnails stored inside JSONL records (base64 text), so that a
report's gallery can be drawn from the records alone."""

from __future__ import annotations

import base64
import io

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

#: Side of the stored thumbnails in pixels.
THUMB_SIZE = 64


def encode_thumbnail(image: Tensor, size: int = THUMB_SIZE) -> str:
    r"""
    A ``size x size`` 8-bit PNG of an image or map, as base64 text.

    Args:
        image (Tensor): ``(3, H, W)`` RGB or ``(H, W)`` / ``(1, H, W)`` grey,
                    values in ``[0, 1]`` (clipped).
        size (int): side of the thumbnail (area-averaged down-sampling).

    Returns:
        text (str): base64 of the PNG file.
    """
    x = image.detach().float().cpu()
    if x.dim() == 2:
        x = x.unsqueeze(0)
    if x.dim() != 3 or x.shape[0] not in (1, 3):
        raise ValueError(
            f"`image` must be (3, H, W), (1, H, W) or (H, W), got {tuple(image.shape)}"
        )
    if size < 1:
        raise ValueError(f"`size` must be >= 1, got {size}")
    x = F.interpolate(x.unsqueeze(0), size=(size, size), mode="area")[0]
    arr = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    pil = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    buf = io.BytesIO()
    pil.save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def map_thumbnail(saliency: Tensor, size: int = THUMB_SIZE) -> str:
    r"""
    Thumbnail of an attribution map: its positive part divided by its maximum
    (an all-zero image when the map has no positive value).
    """
    s = saliency.detach().float()
    while s.dim() > 2 and s.shape[0] == 1:
        s = s[0]
    pos = s.clamp(min=0)
    top = float(pos.max())
    return encode_thumbnail(pos / top if top > 0 else pos, size)


def decode_thumbnail(text: str) -> np.ndarray:
    """The ``uint8`` array ``(h, w)`` or ``(h, w, 3)`` of :func:`encode_thumbnail`'s text."""
    with Image.open(io.BytesIO(base64.b64decode(text))) as im:
        return np.array(im)
