"""captum-gfi: Guided Feature Inversion (Du et al., KDD 2018) for Captum."""

from captum_gfi.guided_feature_inversion import GuidedFeatureInversion
from captum_gfi.presets import LayerPreset, resolve_layers

__version__ = "0.1.0"

__all__ = ["GuidedFeatureInversion", "LayerPreset", "resolve_layers", "__version__"]
