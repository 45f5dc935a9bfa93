"""What the exact-ground-truth cases of a model would be, as JSON: the foreground photos
and crops it classifies confidently, and the composites and grids that build from them
(:func:`captum_gfi.evaluation.benchmark_data.describe`).

    python scripts/describe_cases.py --model efficientnet-lite0
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import torch

from captum_gfi.demo.models import load_model
from captum_gfi.evaluation.benchmark_data import describe


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--n-composites", type=int, default=200)
    parser.add_argument("--n-grids", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-per-photo", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    summary = describe(
        load_model(args.model), args.n_composites, args.n_grids, args.seed, args.max_per_photo
    )
    json.dump(summary, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
