"""``captum-gfi ARGS...`` with research variants of GFI registered as settings, so that a
benchmark run can put a candidate setting beside the shipped ones (``--methods
...,gfi:refined_beta6``) before it is adopted:

    python research/evaluate_variants.py [--no-tf32] evaluate --dataset composites ...

The variants (docs/research_settings.md names them by the setting search's names):

- ``refined_beta6``: ``refined`` with mask-area weight beta = 6 (``c10_beta6`` of the
  setting search); the shipped ``refined`` since 2026-11-26, so now the same setting.
- ``refined_beta4``: ``refined`` with beta = 4, the shipped ``refined`` until 2026-11-26 (the
  ``gfi:refined`` records of the runs committed before then).

``--no-tf32`` turns TensorFloat-32 off for cuDNN convolutions and CUDA matrix products
(PyTorch allows it for convolutions by default, which rounds inputs to 10-bit mantissas on
Ampere and later GPUs), so that a GPU run computes in float32 as the CPU runs do.
"""

from __future__ import annotations

import dataclasses
import sys

import torch

from captum_gfi.cli import main as cli_main
from captum_gfi.settings import SETTINGS, GFISettings, register_setting

VARIANTS: dict[str, GFISettings] = {
    "refined_beta6": dataclasses.replace(SETTINGS["refined"], delta=6.0),
    "refined_beta4": dataclasses.replace(SETTINGS["refined"], delta=4.0),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--no-tf32"]:
        argv = argv[1:]
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    for name, settings in VARIANTS.items():
        register_setting(name, settings, overwrite=True)
    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
