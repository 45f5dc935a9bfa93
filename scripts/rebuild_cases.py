"""Rebuild a benchmark run's cases from its records, without the model, to resume or extend it
elsewhere.

``captum-gfi evaluate --dataset composites|grids`` caches its built cases in ``OUT/cases.pt``
(hundreds of MB, not committed) and builds them again, classifying thousands of candidates,
when the file is missing. The committed run folders keep every case's provenance in its
``case`` record, so this script writes ``cases.pt`` for a new or
resumed run folder from them in seconds, with the cache key ``evaluate`` expects for the
run's data options:

    python scripts/rebuild_cases.py docs/benchmark/efficientnet-lite2/composites /tmp/lite2
    captum-gfi evaluate --dataset composites --model efficientnet-lite2 --num-cases 200 \\
        --max-per-photo 60 --max-tries 5000 --out /tmp/lite2 --device cuda ...

(the data options must be those of the run's ``config.json``, else ``evaluate`` builds the
cases again; the run's ``build_stats.json`` goes into ``cases.pt`` as ``evaluate`` saves it).
``--check PATH/cases.pt`` compares the rebuilt cases with a ``cases.pt`` that
``evaluate`` built, and ``--fingerprints FILE`` writes / ``--expect FILE`` checks each image's
sum, to confirm that another machine's photo files and resize give the same images (exit
status 3 when they differ, 1 when ``--check`` fails).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

from captum_gfi.evaluation.benchmark_data import BenchmarkCase, BuildStats, case_from_record
from captum_gfi.evaluation.benchmark_report import load_records
from captum_gfi.evaluation.benchmark_runner import CASES_FILE, cases_key


def rebuild(run: Path) -> tuple[list[BenchmarkCase], dict[str, Any]]:
    """The cases of the run folder ``run`` in build order, and its ``config.json``."""
    config = json.loads((run / "config.json").read_text())
    records, _ = load_records(run)  # ordered by index
    if not records:
        raise ValueError(f"{run}/shards holds no case records")
    indices = [int(r["index"]) for r in records]
    if indices != list(range(len(records))):
        raise ValueError(f"{run}: case records are not indices 0..{len(records) - 1}")
    size = int(config["input_size"])
    return [case_from_record(r, size) for r in records], config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a run folder with config.json and shards/")
    parser.add_argument("out", type=Path, help="the folder to write cases.pt into")
    parser.add_argument("--check", type=Path, default=None, help="a cases.pt to compare with")
    parser.add_argument("--fingerprints", type=Path, default=None, help="write image sums here")
    parser.add_argument("--expect", type=Path, default=None, help="check image sums from here")
    args = parser.parse_args(argv)

    cases, config = rebuild(args.run)
    key = cases_key(config)
    args.out.mkdir(parents=True, exist_ok=True)
    # the build statistics travel in cases.pt, as evaluate saves them: a resumed run writes
    # its build_stats.json from there
    stats_file = args.run / "build_stats.json"
    stats = BuildStats(**json.loads(stats_file.read_text())) if stats_file.is_file() else None
    torch.save({"key": key, "cases": cases, "stats": stats}, args.out / CASES_FILE)
    print(f"{len(cases)} cases of {args.run} -> {args.out / CASES_FILE}")
    sums = {c.case_id: float(c.image.double().sum()) for c in cases}
    if args.fingerprints:
        args.fingerprints.write_text(json.dumps(sums, indent=0, sort_keys=True))
    status = 0
    if args.expect:
        expected = json.loads(args.expect.read_text())
        worst = max(abs(sums[k] - v) for k, v in expected.items())
        missing = sorted(set(expected) ^ set(sums))
        print(f"image sums vs {args.expect}: max |difference| {worst:.3g}, ids differing {missing}")
        status = 3 if missing or worst > 1e-2 else status
    if args.check:
        built = torch.load(args.check, weights_only=False)
        if built.get("key") != key:
            print(f"{args.check} was built for {built.get('key')}, not {key}")
            return 1
        pairs = list(zip(built["cases"], cases, strict=True))
        worst = max(float((a.image - b.image).abs().max()) for a, b in pairs)
        same = all(
            a.case_id == b.case_id and a.target == b.target and a.box == b.box
            and a.split == b.split and torch.equal(a.mask, b.mask)
            for a, b in pairs
        )  # fmt: skip
        print(f"vs {args.check}: ids/targets/boxes/masks equal {same}, "
              f"max |image difference| {worst:.3g}")  # fmt: skip
        status = status or (1 if not same or worst > 0 else 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
