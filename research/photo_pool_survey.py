"""Survey of registry-served packages as sources of foreground photos for the benchmark.

For every image file under the given source folders (each the unpacked files of one PyPI
wheel or Debian package), the survey loads the image, classifies it with the shipped
models and writes one JSON row per photo: package, version, path inside the package,
size, the top-1 class and probability of the whole photo and of its best candidate crop
per model, and whether the photo passes the benchmark's foreground criterion.

**Criterion** (the one of :func:`captum_gfi.evaluation.benchmark_data.foreground_photos`):
a photo is a foreground for a model when at least one of its candidate crops
(:func:`~captum_gfi.evaluation.benchmark_data.candidate_crops`: the whole photo and the
0.8 / 0.6 / 0.4 windows at 3 x 3 positions), stretched to the model's input square with
:func:`~captum_gfi.evaluation.benchmark_data.resize_image`, has a top-1 softmax probability
>= ``--min-confidence`` (default 0.5, the benchmark's default). ``--crops reduced`` tries
only the whole photo and the centre 0.8 and 0.6 windows (a subset of the candidate crops,
so a photo that passes it passes the benchmark's criterion: a lower bound, 9x cheaper);
``--crops whole`` tries the whole photo only (the cheapest lower bound, 28x cheaper);
``--whole-only PACKAGE`` tries the whole photo only (cut-out stamps on transparency).

**Loading.** Files are opened with Pillow; transparent images are composited over white
(``alpha: true`` in the row); photos whose longer side exceeds ``--max-side`` (1024) are
first downscaled with Pillow's LANCZOS filter (every crop is then resized to at most
260 px, so this does not change what the model sees beyond resampling). Files whose
shorter side is below ``--min-side`` (96 px: icons, MNIST/CIFAR samples) are skipped.

**Duplicates.** Each row has a 64-bit average hash (8 x 8 grey). Rows whose hashes differ
in at most ``--dup-bits`` (6) bits are one photo: ``duplicate_of`` names the first row of
its group. KDE-style wallpaper folders (``NAME/contents/images*/WxH.ext``) hold one
picture at many resolutions: only the one closest to 1920 x 1080 is classified and the
others are counted in ``variants``.

Example::

    python research/photo_pool_survey.py \\
        --source pypi:foolbox==3.3.4:/tmp/x/foolbox/foolbox/data \\
        --source deb:mate-backgrounds==1.26.0-1:/tmp/x/mate-backgrounds \\
        --models efficientnet-lite0 efficientnet-lite1 efficientnet-lite2 \\
        --out research/photo_pool_survey.json
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import re
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from captum_gfi.demo.models import LoadedModel, load_model
from captum_gfi.evaluation.benchmark_data import candidate_crops, resize_image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".jfif", ".gif"}
_KDE_VARIANT = re.compile(r"(.*/contents/images[^/]*)/(\d+)x(\d+)\.\w+$")


def _parse_source(text: str) -> tuple[str, str, str, Path]:
    kind, rest = text.split(":", 1)
    name_version, root = rest.split(":/", 1)  # Debian versions may hold ':' (epochs)
    name, version = name_version.split("==", 1)
    return kind, name, version, Path("/" + root)


def _image_files(root: Path, exclude: list[str]) -> list[Path]:
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    files = [
        p for p in files if not any(fnmatch.fnmatch(str(p.relative_to(root)), e) for e in exclude)
    ]
    # KDE wallpaper folders: keep the resolution closest to 1920 x 1080 per folder.
    groups: dict[str, list[tuple[float, Path]]] = defaultdict(list)
    kept: list[Path] = []
    for p in files:
        m = _KDE_VARIANT.match(str(p))
        if m is None:
            kept.append(p)
            continue
        w, h = int(m.group(2)), int(m.group(3))
        groups[m.group(1).rsplit("/contents/", 1)[0]].append((abs(w * h - 1920 * 1080), p))
    variants: dict[Path, int] = {}
    for members in groups.values():
        best = min(members)[1]
        kept.append(best)
        variants[best] = len(members)
    _image_files.variants = variants  # type: ignore[attr-defined]
    return sorted(kept)


def _load(path: Path, max_side: int) -> tuple[torch.Tensor, bool, tuple[int, int]]:
    with Image.open(path) as image:
        image.seek(0)
        size = image.size
        has_alpha = image.mode in ("RGBA", "LA", "PA") or (
            image.mode == "P" and "transparency" in image.info
        )
        if has_alpha:
            rgba = image.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            rgb = Image.alpha_composite(white, rgba).convert("RGB")
        else:
            rgb = image.convert("RGB")
    if max(rgb.size) > max_side:
        scale = max_side / max(rgb.size)
        rgb = rgb.resize(
            (max(1, round(rgb.size[0] * scale)), max(1, round(rgb.size[1] * scale))),
            Image.Resampling.LANCZOS,
        )
    array = np.asarray(rgb, dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous(), has_alpha, size


def _average_hash(image: torch.Tensor) -> int:
    grey = resize_image(image, (8, 8)).mean(dim=0).flatten()
    bits = (grey > grey.mean()).tolist()
    return sum(1 << i for i, b in enumerate(bits) if b)


def _classify(model: LoadedModel, images: torch.Tensor, batch: int = 16) -> torch.Tensor:
    with torch.inference_mode():
        return torch.cat(
            [
                torch.softmax(model.classifier(images[i : i + batch]).float(), dim=-1)
                for i in range(0, len(images), batch)
            ]
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--source",
        action="append",
        required=True,
        help="KIND:PACKAGE==VERSION:FOLDER (KIND is pypi or deb); repeatable",
    )
    parser.add_argument(
        "--whole-only",
        action="append",
        default=[],
        help="PACKAGE whose photos are tried whole only (no candidate crops); repeatable",
    )
    parser.add_argument(
        "--crops",
        choices=("benchmark", "reduced", "whole"),
        default="benchmark",
        help=(
            "benchmark: all candidate crops; reduced: whole, centre 0.8 and centre 0.6; "
            "whole: the whole photo only"
        ),
    )
    parser.add_argument("--exclude", action="append", default=[], help="glob of paths to skip")
    parser.add_argument(
        "--models",
        nargs="+",
        default=["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"],
    )
    parser.add_argument("--min-confidence", type=float, default=0.5)
    parser.add_argument("--min-side", type=int, default=96)
    parser.add_argument("--max-side", type=int, default=1024)
    parser.add_argument("--dup-bits", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("research/photo_pool_survey.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.time()

    models = {spec: load_model(spec) for spec in args.models}
    categories = next(iter(models.values())).categories
    rows: list[dict[str, Any]] = []
    skipped: dict[str, int] = defaultdict(int)
    for source in args.source:
        kind, package, version, root = _parse_source(source)
        files = _image_files(root, args.exclude)
        variants = getattr(_image_files, "variants", {})
        for path in files:
            try:
                image, has_alpha, size = _load(path, args.max_side)
            except Exception:  # unreadable or unsupported file: counted, not fatal
                skipped[f"{package}: unreadable"] += 1
                continue
            if min(size) < args.min_side:
                skipped[f"{package}: smaller than {args.min_side} px"] += 1
                continue
            h, w = image.shape[1:]
            if package in args.whole_only or args.crops == "whole":
                boxes = [(0, 0, w, h)]
            elif args.crops == "benchmark":
                boxes = candidate_crops(str(path), h, w)
            else:  # whole, centre 0.8 and centre 0.6: a subset of candidate_crops
                boxes = [candidate_crops(str(path), h, w)[i] for i in (0, 5, 14)]
            crops = [image[:, y0:y1, x0:x1] for x0, y0, x1, y1 in boxes]
            row: dict[str, Any] = {
                "kind": kind,
                "package": package,
                "version": version,
                "path": str(path.relative_to(root)),
                "width": size[0],
                "height": size[1],
                "bytes": path.stat().st_size,
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest()[:16],
                "ahash": f"{_average_hash(image):016x}",
                "alpha": has_alpha,
                "crops_tried": len(boxes),
            }
            if path in variants:
                row["variants"] = variants[path]
            for spec, model in models.items():
                s = model.input_size
                probs = _classify(model, torch.stack([resize_image(c, (s, s)) for c in crops]))
                conf, top1 = probs.max(dim=1)
                best = int(conf.argmax())
                row[spec] = {
                    "whole": [categories[int(top1[0])], round(float(conf[0]), 4)],
                    "best": [
                        categories[int(top1[best])],
                        round(float(conf[best]), 4),
                        list(boxes[best]),
                    ],
                    "passes": bool(float(conf[best]) >= args.min_confidence),
                }
            rows.append(row)
            print(
                package,
                row["path"],
                {m: row[m]["best"][:2] for m in models},
                flush=True,
            )

    # duplicates by average hash
    hashes = [int(r["ahash"], 16) for r in rows]
    for i, r in enumerate(rows):
        for j in range(i):
            if "duplicate_of" not in rows[j] and bin(hashes[i] ^ hashes[j]).count("1") <= (
                args.dup_bits
            ):
                r["duplicate_of"] = f"{rows[j]['package']}:{rows[j]['path']}"
                break

    summary: dict[str, Any] = {}
    for spec in models:
        per_source: dict[str, int] = defaultdict(int)
        classes: dict[str, int] = defaultdict(int)
        for r in rows:
            if r[spec]["passes"] and "duplicate_of" not in r:
                per_source[f"{r['package']}=={r['version']}"] += 1
                classes[r[spec]["best"][0]] += 1
        summary[spec] = {
            "distinct_confident_photos": sum(per_source.values()),
            "per_source": dict(per_source),
            "distinct_classes": len(classes),
            "classes": dict(sorted(classes.items(), key=lambda kv: (-kv[1], kv[0]))),
        }
    report = {
        "criterion": (
            f"some tried crop ({args.crops}: "
            + {
                "benchmark": "all of benchmark_data.candidate_crops",
                "reduced": "whole photo, centre 0.8 and centre 0.6 windows of candidate_crops",
                "whole": "the whole photo",
            }[args.crops]
            + f"; the whole photo only for {sorted(args.whole_only)}) has top-1 softmax >= "
            f"{args.min_confidence}"
        ),
        "settings": {
            "min_confidence": args.min_confidence,
            "min_side": args.min_side,
            "max_side": args.max_side,
            "dup_bits": args.dup_bits,
            "exclude": args.exclude,
            "crops": args.crops,
            "whole_only": args.whole_only,
        },
        "sources": [
            dict(zip(("kind", "package", "version"), _parse_source(s)[:3])) for s in args.source
        ],
        "skipped": dict(skipped),
        "seconds": round(time.time() - start, 1),
        "summary": summary,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w") as f:
        f.write("{\n")
        items = list(report.items())
        for k, (key, value) in enumerate(items):
            sep = "," if k < len(items) - 1 else ""
            if key == "rows":
                f.write('"rows": [\n')
                for i, r in enumerate(value):
                    f.write(json.dumps(r) + ("," if i < len(value) - 1 else "") + "\n")
                f.write(f"]{sep}\n")
            else:
                f.write(f"{json.dumps(key)}: {json.dumps(value)}{sep}\n")
        f.write("}\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
