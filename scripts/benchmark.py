"""The benchmark with exact ground truth for one model: composites and grids,
every method, through ``captum-gfi evaluate`` (resumable: rerun the same
command after an interruption). docs/results.md quotes its tables.

    python scripts/benchmark.py --model efficientnet-lite0            # n=200 each
    python scripts/benchmark.py --model efficientnet-lite1 --n 100
    python scripts/benchmark.py --model efficientnet-lite0 --report-only

It runs, for DATASET in composites and grids::

    captum-gfi evaluate --dataset DATASET --model MODEL --n N --seed 0 --split test \\
        --out OUT/MODEL/DATASET [--threads T] [--device D] [extra evaluate options]

and leaves in each folder the records (``shards/``, ``records.jsonl``), the tables
(``summary.md``/``.csv``/``.json``, ``paired.csv``) and the figures (``metrics.png``,
``gallery.png``). Under ``torchrun --nproc_per_node=K`` each dataset is sharded over
the K processes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from captum_gfi.cli import main as cli_main
from captum_gfi.evaluation.benchmark_runner import BENCHMARK_DATASETS


def commands(args: argparse.Namespace, extra: list[str]) -> list[list[str]]:
    """The ``captum-gfi`` argument lists this script runs."""
    out: list[list[str]] = []
    for dataset in args.datasets.split(","):
        if dataset not in BENCHMARK_DATASETS:
            raise SystemExit(f"--datasets: {dataset!r} is not one of {BENCHMARK_DATASETS}")
        cmd = ["evaluate", "--dataset", dataset, "--model", args.model, "--n", str(args.n),
               "--seed", str(args.seed), "--split", "test",
               "--out", str(Path(args.out) / args.model / dataset)]  # fmt: skip
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        if args.device:
            cmd += ["--device", args.device]
        if args.report_only:
            cmd.append("--report-only")
        out.append(cmd + extra)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--n", type=int, default=200, help="cases per dataset (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--datasets", default=",".join(BENCHMARK_DATASETS))
    parser.add_argument("--out", default="results/benchmark")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--report-only", action="store_true")
    args, extra = parser.parse_known_args()
    for cmd in commands(args, extra):
        print("captum-gfi " + " ".join(cmd), flush=True)
        rc = cli_main(cmd)
        if rc:
            return rc
    return 0


if __name__ == "__main__":
    sys.exit(main())
