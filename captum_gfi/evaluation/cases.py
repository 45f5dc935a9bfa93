"""What the benchmark's runner and checks need of a case, and two helpers they share.

:class:`Case` is the protocol that
:class:`~captum_gfi.evaluation.benchmark_data.BenchmarkCase` satisfies (and any test's
stand-in with the same fields): the runner
(:mod:`~captum_gfi.evaluation.benchmark_runner`), the randomisation test
(:func:`~captum_gfi.evaluation.sanity.sanity_records`) and the FGSM test
(:func:`~captum_gfi.evaluation.adversarial.fgsm_records`) read only these.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import torch
from torch import Tensor, nn

__all__ = ["Case", "case_photo", "check_image_shapes", "model_device"]


class Case(Protocol):
    """A benchmark case: an image, its target class and the exact ground truth."""

    @property
    def case_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def split(self) -> str: ...
    @property
    def image(self) -> Tensor: ...
    @property
    def target(self) -> int: ...
    @property
    def mask(self) -> Tensor: ...
    @property
    def box(self) -> tuple[int, int, int, int]: ...
    @property
    def confidence(self) -> float: ...
    @property
    def source(self) -> dict[str, Any]: ...


def case_photo(case: Any) -> str | None:
    """The foreground (composites) or target-cell (grids) photo of ``case``, from its
    ``source``; ``None`` when it names none."""
    source = getattr(case, "source", None)
    if isinstance(source, Mapping) and "photo" in source:
        return str(source["photo"])
    return None


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (the CPU for a model without any)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def check_image_shapes(cases: Any) -> tuple[int, ...]:
    r"""
    The ``(C, H, W)`` shape that every case's image has (a batch of them is one tensor).

    Raises:
        ValueError: Naming the first case whose image is not ``(C, H, W)`` of that shape.
    """
    shape = tuple(cases[0].image.shape)
    for c in cases:
        if c.image.dim() != 3 or tuple(c.image.shape) != shape:
            raise ValueError(f"`cases` must hold (C, H, W) images of one size {shape}; "
                             f"not {c.case_id}")  # fmt: skip
    return shape
