"""Reshape transforms that turn token sequences into spatial maps, so GFI can
explain models whose layers are not convolutional (e.g. vision transformers)."""

from __future__ import annotations

import math

from torch import Tensor


def vit_reshape_transform(
    tokens: Tensor, num_prefix_tokens: int = 1, grid_size: tuple[int, int] | None = None
) -> Tensor:
    """Turn ViT tokens (N, P + h*w, C) into a feature map (N, C, h, w).

    Args:
        tokens (Tensor): a transformer block's output, shape (N, P + h*w, C).
        num_prefix_tokens (int, optional): leading non-patch tokens to drop
                    (1 for the class token of torchvision's and timm's ViTs).
        grid_size (tuple[int, int], optional): (h, w) of the patch grid.
                    Default: a square grid.

    Use ``functools.partial`` to fix the options, e.g.
    ``GuidedFeatureInversion(vit, block, reshape_transform=partial(vit_reshape_transform,
    grid_size=(14, 14)))``.
    """
    if tokens.dim() != 3:
        raise ValueError(
            f"vit_reshape_transform expects tokens of shape (N, tokens, C), got "
            f"{tuple(tokens.shape)}"
        )
    patches = tokens[:, num_prefix_tokens:, :]
    count = patches.shape[1]
    if grid_size is None:
        side = math.isqrt(count)
        if side * side != count:
            raise ValueError(
                f"{count} patch tokens do not form a square grid; pass grid_size=(h, w)"
            )
        grid_size = (side, side)
    h, w = grid_size
    if h * w != count:
        raise ValueError(f"grid_size {grid_size} does not match {count} patch tokens")
    return patches.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], h, w)
