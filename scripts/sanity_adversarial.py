"""Cascading model-parameter randomisation and the paper's FGSM protocol on a real model's
benchmark cases (captum_gfi.evaluation.sanity, captum_gfi.evaluation.adversarial).

The cases are the test-split cases of a committed benchmark run, rebuilt from their records
(no case building, no model needed for that), taken one photo at a time in turn so that a few
cases cover as many photos as possible:

    python scripts/sanity_adversarial.py docs/benchmark/efficientnet-lite0/composites-gpu \\
        --methods gradcam,gfi:refined --cases 8 --epsilons 2,8 --out /tmp/sa-lite0.json

The cascade is captum_gfi.evaluation.sanity.cascade_steps of the model: for EfficientNet-Lite,
from the top, the classifier (``_fc``), the head (``_bn1`` + ``_conv_head``), then one stage
of blocks at a time (consecutive blocks with the same output shape), the stem (``_bn0`` +
``_conv_stem``) last, a step of its own (versions before December 2026 randomised it with
block 0); the same grouping works on torchvision's ResNets and VGGs. ``--steps K`` keeps the
first K steps. Epsilons are in grey levels of 255. Peers (captum_gfi.evaluation.peers) are
methods too; ``--peer-iterations`` and ``--peer-masks`` scale extremal perturbation and RISE
down for a CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from captum_gfi._malloc import keep_freed_memory
from captum_gfi.demo.models import load_model
from captum_gfi.evaluation.adversarial import fgsm_protocol
from captum_gfi.evaluation.benchmark_data import case_from_record
from captum_gfi.evaluation.benchmark_report import load_records
from captum_gfi.evaluation.methods import check_methods, make_method
from captum_gfi.evaluation.peers import is_peer, make_peer
from captum_gfi.evaluation.sanity import cascade_steps, cascading_randomization, method_factory
from captum_gfi.presets import resolve_layers


def pick_cases(run: Path, n: int) -> list[Any]:
    """``n`` test-split cases of ``run``, one photo at a time in turn (record order)."""
    config = json.loads((run / "config.json").read_text())
    records, _ = load_records(run)
    by_photo: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        if r.get("split") == "test":
            by_photo.setdefault(str(r["source"].get("photo")), []).append(r)
    chosen: list[dict[str, Any]] = []
    queues = list(by_photo.values())
    while len(chosen) < n and any(queues):
        for q in queues:
            if q and len(chosen) < n:
                chosen.append(q.pop(0))
    return [case_from_record(r, int(config["input_size"])) for r in chosen]


def main(argv: list[str] | None = None) -> int:
    keep_freed_memory()  # as the captum-gfi commands do: no page faults on every step
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a committed benchmark run folder")
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--methods", default="gradcam,gfi:refined,gfi")
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--steps", type=int, default=None, help="first K cascade steps")
    parser.add_argument("--epsilons", default="2,8", help="FGSM steps in grey levels of 255")
    parser.add_argument("--skip", choices=["sanity", "adversarial"], default=None)
    parser.add_argument("--peer-iterations", type=int, default=800, help="extremal's")
    parser.add_argument("--peer-masks", type=int, default=8000, help="RISE's")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    check_methods([m for m in methods if not is_peer(m)] or ["center"])
    peer_options = {"max_iter": args.peer_iterations, "num_masks": args.peer_masks}
    loaded = load_model(args.model)
    model = loaded.classifier.eval()
    preset = resolve_layers(model)
    names = {id(m): n for n, m in model.named_modules()}
    layer, inversion = names[id(preset.layer)], names[id(preset.inversion_layer)]
    cases = pick_cases(args.run, args.cases)
    x = torch.stack([c.image for c in cases])
    t = torch.tensor([c.target for c in cases])
    masks = torch.stack([c.mask for c in cases])
    steps = cascade_steps(model, x, args.steps)
    eps = [float(e) / 255 for e in args.epsilons.split(",")]
    result: dict[str, Any] = {
        "command": " ".join(["python", *sys.argv]),
        "model": args.model,
        "layer": layer,
        "inversion_layer": inversion,
        "cases": [c.case_id for c in cases],
        "photos": sorted({str(c.source.get("photo")) for c in cases}),
        "steps": ["+".join(s) for s in steps],
        "epsilons": eps,
        "peer_options": peer_options,
        "sanity": {},
        "seconds": {},
    }
    for name in methods:
        if args.skip != "sanity":
            start = time.perf_counter()
            options = peer_options if is_peer(name) else {}
            factory = method_factory(name, layer, inversion, **options)
            r = cascading_randomization(model, factory, x, t, steps)
            result["seconds"][f"sanity:{name}"] = round(time.perf_counter() - start, 1)
            result["sanity"][name] = {
                "final": r.final,
                "mean_curve": r.mean_curve,
                "passed": r.passed,
                "rows": r.rows(),
            }
            curve = [round(float(v), 3) for v in r.mean()]
            print(name, "sanity", curve, "passed", r.passed, flush=True)
            args.out.write_text(json.dumps(result, indent=1) + "\n")  # partial results survive
    if args.skip != "adversarial":
        fns = {
            m: make_peer(m, model, preset.layer, **peer_options)
            if is_peer(m)
            else make_method(m, model, preset.layer, preset.inversion_layer)
            for m in methods
        }
        start = time.perf_counter()
        adv = fgsm_protocol(model, x, t, masks, fns, epsilons=eps, batch_size=4)
        result["seconds"]["adversarial"] = round(time.perf_counter() - start, 1)
        result["adversarial"] = adv.rows()
        result["adversarial_kept"] = adv.kept.sum(1).tolist()
        for row in adv.rows():
            print(row, flush=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
