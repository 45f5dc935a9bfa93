"""The benchmark's ``"large"`` foreground pool measured on EfficientNet-Lite0 and -Lite1.

For each model: how many distinct photos of :data:`FOREGROUND_POOLS["large"]
<captum_gfi.evaluation.benchmark_data.FOREGROUND_POOLS>` the model classifies confidently
by the benchmark's own rule (:func:`~captum_gfi.evaluation.benchmark_data.foreground_photos`,
some candidate crop with top-1 >= 0.5), per source package with its installed version,
and per split. Then, for the first model only (CPU-heavy), one
``build_cases("composites", model, n, seed=0, pool="large")`` with its time, the cap and
split quotas it applied, the cases and photos per split, and the largest share of one
photo in each split.

Needs the pool's packages installed (``pip install --no-deps foolbox==3.3.4
sporco==0.2.2.post1`` and ``apt-get install tuxpaint-stamps-default``); photos of absent
packages are simply not counted.

Example::

    python research/photo_pool_large.py --out research/photo_pool_large.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from captum_gfi.demo.models import load_model
from captum_gfi.evaluation.benchmark_data import (
    FOREGROUND_POOLS,
    LARGE_POOL_PACKAGES,
    PHOTO_SHARE,
    build_cases,
    foreground_photos,
)
from captum_gfi.evaluation.photos import available_photos, photo_source


def _package(photo: str) -> str:
    source = photo_source(photo)
    return f"{source['package']}=={source['version']}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["efficientnet-lite0", "efficientnet-lite1"])
    parser.add_argument("--n", type=int, default=240, help="composites built for the first model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("research/photo_pool_large.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pool = FOREGROUND_POOLS["large"]
    installed = available_photos(pool)
    report: dict[str, Any] = {
        "pool": "large",
        "packages_added": list(LARGE_POOL_PACKAGES),
        "pool_photos": len(pool),
        "installed_photos": len(installed),
        "installed_per_package": dict(Counter(_package(p) for p in installed)),
        "rule": "foreground_photos(model, pool='large'): some candidate crop has top-1 >= 0.5",
        "threads": args.threads,
        "models": {},
    }
    for index, spec in enumerate(args.models):
        model = load_model(spec)
        start = time.perf_counter()
        foregrounds = foreground_photos(model, pool="large")
        seconds = time.perf_counter() - start
        print(spec, f"foregrounds in {seconds:.0f} s", flush=True)
        split = {f.photo: f.split for f in foregrounds}
        entry: dict[str, Any] = {
            "foreground_seconds": round(seconds, 1),
            "foreground_crops": len(foregrounds),
            "confident_photos": len(split),
            "confident_photos_per_package": dict(Counter(_package(p) for p in split)),
            "confident_photos_per_split": dict(Counter(split.values())),
            "default_pool_confident_photos": len(
                {f.photo for f in foreground_photos(model, pool="default")}
            ),
            "classes": len({f.target for f in foregrounds}),
            "confident_photos_list": sorted(split),
        }
        if index == 0:
            start = time.perf_counter()
            cases, stats = build_cases(
                "composites",
                model,
                args.n,
                seed=args.seed,
                pool="large",
                progress=lambda kept, tried: print(f"kept {kept} of {tried}", flush=True),
            )
            seconds = time.perf_counter() - start
            n_tune = round(args.n * sum(s == "tune" for s in split.values()) / len(split))
            quotas = {"tune": n_tune, "test": args.n - n_tune}
            composites: dict[str, Any] = {
                "n": args.n,
                "seed": args.seed,
                "seconds": round(seconds, 1),
                "tried": stats.tried,
                "kept": stats.kept,
                "per_reason": stats.per_reason,
                "quotas": quotas,
                "caps": {s: max(1, math.floor(PHOTO_SHARE * q)) for s, q in quotas.items()},
                "per_split": stats.per_split,
            }
            for name in ("tune", "test"):
                per_photo = Counter(c.source["photo"] for c in cases if c.split == name)
                total = sum(per_photo.values())
                top = per_photo.most_common(1)
                composites[name] = {
                    "cases": total,
                    "photos": len(per_photo),
                    "max_cases_of_one_photo": top[0][1] if top else 0,
                    "max_share_of_one_photo": round(top[0][1] / total, 4) if total else 0.0,
                    "cases_per_package": dict(
                        Counter(_package(c.source["photo"]) for c in cases if c.split == name)
                    ),
                    "cutout_cases": sum(
                        bool(c.source.get("alpha_mask")) for c in cases if c.split == name
                    ),
                }
            entry["composites"] = composites
        report["models"][spec] = entry
        print(spec, json.dumps({k: v for k, v in entry.items() if k != "confident_photos_list"}))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
