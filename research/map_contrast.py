"""Is a method's lead on energy share where its maps put their mass, or only their contrast?
A research driver on benchmark records alone (no model, no cases, no recomputation).

Energy share (the fraction of a map's positive mass inside the object) rewards peaked maps:
two maps with the same ranking of pixels score differently if one is squared. A rank
transform (each pixel replaced by its rank in its map) gives every map the same values,
so only where the map puts its highest values remains. This driver reads the 64x64
thumbnails ``captum-gfi evaluate`` stores in the records of the first test cases of a run
(``thumb_map`` of each method, ``thumb_gt`` of each case; up to 8 cases per run folder)
and prints, per method, on the cases where every method has a thumbnail:

- ``recorded``: the energy share in the records (full-resolution maps);
- ``thumbnail``: the energy share of the thumbnails (the ground-truth thumbnail is
  area-averaged, so edge pixels count fractionally); it should track ``recorded``;
- ``rank``: the energy share of the rank-transformed thumbnails (:func:`tied_ranks`: equal
  values share their mean rank, so the ties of 8-bit thumbnails and the flat zero regions
  of masks carry no position order);
- ``mean / max``: the maps' contrast (lower is more peaked);

and the paired difference reference − method with intervals resampling cases and photos
(:func:`captum_gfi.evaluation.stats.paired_difference`). Run folders are merged by case
(as ``scripts/comparison_table.py`` does), e.g. TorchRay's extremal perturbation against
``refined`` on the large pool's Lite0 composites::

    python research/map_contrast.py docs/benchmark/efficientnet-lite0/composites-large \\
        docs/benchmark/efficientnet-lite0/composites-large-extremal \\
        --reference gfi:research:c10_beta48 \\
        --methods extremal_perturbation,occlusion,gradcam
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from captum_gfi.evaluation._thumbnails import decode_thumbnail
from captum_gfi.evaluation.benchmark_report import load_records
from captum_gfi.evaluation.stats import paired_difference

COLUMNS = ("recorded", "thumbnail", "rank")


def soft_energy_share(maps: Tensor, gt: Tensor) -> Tensor:
    """``sum(map * gt) / sum(map)`` per map, ``gt`` in ``[0, 1]`` (``0`` for an empty map)."""
    m, g = maps.flatten(1).clamp(min=0), gt.flatten(1)
    total = m.sum(1)
    return torch.where(total > 0, (m * g).sum(1) / total.clamp(min=1e-30), torch.zeros_like(total))


def tied_ranks(maps: Tensor) -> Tensor:
    """Each map's pixels replaced by their rank in it scaled to ``[0, 1]``, equal values
    sharing their mean rank (a constant map becomes 0.5 everywhere)."""
    flat = maps.flatten(1).double()
    out = torch.empty_like(flat)
    n = flat.shape[1]
    for i, row in enumerate(flat):
        values, inverse, counts = torch.unique(row, return_inverse=True, return_counts=True)
        first = torch.cumsum(counts, 0) - counts  # rank of each value's first pixel
        mean_rank = first + (counts - 1) / 2
        out[i] = mean_rank[inverse] / max(n - 1, 1)
    return out.view_as(maps)


def contrast(maps: Tensor) -> Tensor:
    """Each map's mean divided by its maximum (``0`` for an empty map)."""
    flat = maps.flatten(1)
    top = flat.amax(1)
    return torch.where(top > 0, flat.mean(1) / top.clamp(min=1e-30), torch.zeros_like(top))


def _thumb(text: str) -> Tensor:
    return torch.from_numpy(decode_thumbnail(text).astype(np.float64) / 255.0)


def collect(
    runs: Sequence[Path], methods: Sequence[str]
) -> tuple[list[str], Tensor, dict[str, dict[str, Tensor]]]:
    """``(photos, gt thumbnails (N, 64, 64), method -> column -> (N,) values)`` on the test
    cases where every method of ``methods`` has a map thumbnail, in case order."""
    cases: dict[str, dict] = {}
    recs: dict[tuple[str, str], dict] = {}
    for run in runs:
        case_records, method_records = load_records(Path(run))
        for c in case_records:  # a case record with thumbnails wins over one without
            if c["item"] not in cases or "thumb_gt" in c and "thumb_gt" not in cases[c["item"]]:
                cases[c["item"]] = c
        for r in method_records:
            if "thumb_map" in r:
                recs.setdefault((r["item"], r["method"]), r)
    items = [
        i for i, c in sorted(cases.items(), key=lambda kv: kv[1]["index"])
        if c.get("split") == "test" and "thumb_gt" in c
        and all((i, m) in recs for m in methods)
    ]  # fmt: skip
    if not items:
        raise ValueError(
            f"no test case of {[str(r) for r in runs]} has a map thumbnail of every method "
            f"of {list(methods)}: give the run folders that hold those methods' records"
        )
    photos = [str(cases[i].get("source", {}).get("photo", i)) for i in items]
    gt = torch.stack([_thumb(cases[i]["thumb_gt"]) for i in items])
    out: dict[str, dict[str, Tensor]] = {}
    for m in methods:
        maps = torch.stack([_thumb(recs[(i, m)]["thumb_map"]) for i in items])
        out[m] = {
            "recorded": torch.tensor(
                [float(recs[(i, m)]["energy_share"]) for i in items], dtype=torch.float64
            ),
            "thumbnail": soft_energy_share(maps, gt),
            "rank": soft_energy_share(tied_ranks(maps), gt),
            "mean / max": contrast(maps),
        }
    return photos, gt, out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="evaluate --out folders (merged by case)")
    p.add_argument("--reference", required=True, help="method of the paired differences")
    p.add_argument("--methods", required=True, help="comma list of the methods to compare")
    args = p.parse_args(argv)
    methods = [args.reference] + [m for m in args.methods.split(",") if m != args.reference]
    photos, _, values = collect(args.runs, methods)
    print(f"{len(photos)} test cases, {len(set(photos))} photos; reference: {args.reference}\n")
    head = [*COLUMNS, "mean / max"]
    print(f"| method | {' | '.join(head)} |\n|---|" + "---|" * len(head))
    ref = values[args.reference]
    for m in methods:
        cells = []
        for k in head:
            cell = f"{float(values[m][k].mean()):.3f}"
            if m != args.reference and k in COLUMNS:
                cell += f" ({paired_difference(ref[k].numpy(), values[m][k].numpy(), photos)})"
            cells.append(cell)
        print(f"| {m} | {' | '.join(cells)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
