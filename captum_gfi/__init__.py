"""captum-gfi: Guided Feature Inversion (Du et al., KDD 2018) for Captum."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from captum_gfi.guided_feature_inversion import GuidedFeatureInversion
    from captum_gfi.presets import LayerPreset, resolve_layers

__version__ = "0.1.0"

__all__ = ["GuidedFeatureInversion", "LayerPreset", "resolve_layers", "__version__"]

# public name -> module, imported on first use: ``captum-gfi --help`` and the import of a
# light submodule do not import torch
_LAZY = {
    "GuidedFeatureInversion": "captum_gfi.guided_feature_inversion",
    "LayerPreset": "captum_gfi.presets",
    "resolve_layers": "captum_gfi.presets",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'captum_gfi' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
