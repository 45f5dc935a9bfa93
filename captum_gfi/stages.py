"""The stages ``GuidedFeatureInversion.attribute(..., stage=...)`` can run.

* ``"both"``: Algorithm 1 (class-agnostic feature inversion, Eq. (8)) then Algorithm 2
  (class-discriminative refinement, Eq. (9)); the default.
* ``"inversion"``: Algorithm 1 only, the class-agnostic mask (no target needed).
* ``"target"``: Algorithm 2 only, starting from ``init_weight`` (or the setting's start).
"""

from __future__ import annotations

__all__ = ["STAGES"]

#: The stages ``attribute`` can run: Algorithm 1 then 2, Algorithm 1 only, Algorithm 2 only.
STAGES = ("both", "inversion", "target")
