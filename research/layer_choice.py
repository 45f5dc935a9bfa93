"""Compare candidate (l1, l0) layer pairs for the demo EfficientNet-Lite0.

On the 2x2 cat/espresso grid of tests/test_real_model.py, prints the fraction of
each class map's mass on its own two cells, for each pair (paper defaults).
Produces the table in docs/howto.md, "Choose the layers l1 and l0".

    python research/layer_choice.py [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch

from captum_gfi import GuidedFeatureInversion
from captum_gfi._malloc import keep_freed_memory
from captum_gfi.demo.models import load_efficientnet_lite0
from captum_gfi.demo.samples import image_to_tensor, load_sample

CAT, ESPRESSO = 285, 967


def grid_input() -> torch.Tensor:
    cat = image_to_tensor(load_sample("cat"), 112)[0]
    cup = image_to_tensor(load_sample("coffee"), 112)[0]
    grid = torch.cat([torch.cat([cat, cup], 2), torch.cat([cup, cat], 2)], 1)[None]
    return (grid - 0.5) / 0.5


def main() -> None:
    keep_freed_memory()  # as the captum-gfi commands do: no page faults on every step
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_efficientnet_lite0()
    x = grid_input()
    cat_cells = torch.zeros(1, 1, 224, 224)
    cat_cells[..., :112, :112] = 1
    cat_cells[..., 112:, 112:] = 1
    pairs = [
        ("_conv_head", "_bn1", model._conv_head, model._bn1),
        ("_bn1", "_bn1", model._bn1, model._bn1),
        ("_conv_head", "_conv_head", model._conv_head, model._conv_head),
        ("_blocks[-1]", "_bn1", model._blocks[-1], model._bn1),
    ]
    print("| l1 | l0 | cat (285) | espresso (967) | seconds |")
    print("| --- | --- | --- | --- | --- |")
    for l1_name, l0_name, l1, l0 in pairs:
        gfi = GuidedFeatureInversion(model, l1, l0)
        start = time.perf_counter()
        masks = gfi.attribute(torch.cat([x, x]), target=[CAT, ESPRESSO])
        seconds = time.perf_counter() - start
        on_cat = float((masks[0] * cat_cells).sum() / masks[0].sum())
        on_cup = float((masks[1] * (1 - cat_cells)).sum() / masks[1].sum())
        print(f"| `{l1_name}` | `{l0_name}` | {on_cat:.3f} | {on_cup:.3f} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
