"""The FGSM protocol of captum_gfi.evaluation.adversarial (Du et al., Sec. 4.1.3)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from captum_gfi.demo.toy import TinyConvNet
from captum_gfi.evaluation.adversarial import (
    fgsm_examples,
    fgsm_key,
    fgsm_protocol,
    fgsm_records,
    grey_levels,
)
from captum_gfi.evaluation.benchmark_metrics import energy_share
from captum_gfi.evaluation.methods import center_map, make_method
from captum_gfi.evaluation.rank_correlation import spearman

SIDE = 8


def _linear() -> nn.Sequential:
    """Two classes, logits linear in the pixels: FGSM's effect is known in closed form."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * SIDE * SIDE, 2)).eval()


def _cases(model: nn.Module) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Images in [0.25, 0.75] (no clamping for eps <= 0.25), their predicted classes
    as targets, the margin of the target logit and the L1 norm of the weight difference."""
    g = torch.Generator().manual_seed(3)
    x = 0.25 + 0.5 * torch.rand(6, 3, SIDE, SIDE, generator=g)
    with torch.no_grad():
        z = model(x)
    t = z.argmax(1)
    w = model[1].weight
    margin = (z[torch.arange(6), t] - z[torch.arange(6), 1 - t]).detach()
    l1 = (w[t] - w[1 - t]).abs().sum(1).detach()
    masks = torch.zeros(6, SIDE, SIDE, dtype=torch.bool)
    masks[:, 2:6, 1:5] = True
    return x, t, masks, margin, l1


def _image_map(inputs: Tensor, target: Tensor) -> Tensor:
    return inputs.sum(1, keepdim=True)


def test_fgsm_is_the_sign_step_on_the_logits_cross_entropy() -> None:
    model = _linear()
    x, t, _, _, _ = _cases(model)
    w = model[1].weight.detach()
    adv = fgsm_examples(model, x, t, 0.1)
    # d CE / dx = p_other * (w_other - w_true): its sign is that of w_other - w_true
    step = torch.sign(w[1 - t] - w[t]).reshape(6, 3, SIDE, SIDE)
    torch.testing.assert_close(adv, x + 0.1 * step, atol=1e-7, rtol=0)
    clamped = fgsm_examples(model, x, t, 0.5)
    assert float(clamped.min()) == 0.0 and float(clamped.max()) == 1.0
    with pytest.raises(ValueError, match="`epsilon`"):
        fgsm_examples(model, x, t, 0.0)


def test_kept_cases_are_exactly_the_flips_the_margin_predicts() -> None:
    model = _linear()
    x, t, masks, margin, l1 = _cases(model)
    t_wrong = t.clone()
    t_wrong[0] = 1 - t[0]  # the model gets case 0 wrong: never kept
    threshold = margin / l1  # the prediction flips when eps * ||w_t - w_o||_1 > margin
    ordered = threshold.sort().values
    epsilons = [float(ordered[2] + ordered[3]) / 2, float(ordered[-1]) * 1.01]
    assert max(epsilons) <= 0.25
    saliency = make_method("saliency", model)
    result = fgsm_protocol(model, x, t_wrong, masks, {"saliency": saliency}, epsilons=epsilons)
    expected = np.stack([(threshold < e).numpy() for e in epsilons])
    expected[:, 0] = False
    assert np.array_equal(result.kept, expected)
    assert result.kept[-1, 1:].all() and 1 <= result.kept[0].sum() <= 3
    assert np.array_equal(result.clean_class, t.numpy())
    assert np.array_equal(result.adversarial_class[-1, 1:], 1 - t[1:].numpy())
    rows = result.rows()
    assert [r["n"] for r in rows] == [int(k.sum()) for k in expected]


def test_input_independent_maps_are_unmoved_and_image_maps_move() -> None:
    # a linear model's gradient does not depend on the input: saliency is unmoved by any
    # attack; a map of the image itself moves with the perturbation
    model = _linear()
    x, t, masks, margin, l1 = _cases(model)
    eps = float((margin / l1).max()) * 1.01
    methods = {
        "saliency": make_method("saliency", model),
        "center": make_method("center", model),
        "image": _image_map,
    }
    result = fgsm_protocol(model, x, t, masks, methods, epsilons=[eps], batch_size=4)
    assert result.kept.all()
    for name in ("saliency", "center"):
        adv, clean = result.adversarial[name], result.clean[name]
        np.testing.assert_allclose(adv["rank_correlation"], 1.0, rtol=0, atol=1e-12)
        np.testing.assert_allclose(adv["energy_share"][0], clean["energy_share"], atol=1e-6)
        assert np.array_equal(adv["pointing_hit"][0], clean["pointing_hit"])
    share = energy_share(center_map(x), masks).numpy()
    np.testing.assert_allclose(result.adversarial["center"]["energy_share"][0], share, atol=1e-7)
    adv_x = fgsm_examples(model, x, t, eps)
    rho = spearman(_image_map(adv_x, t), _image_map(x, t)).numpy()
    np.testing.assert_allclose(result.adversarial["image"]["rank_correlation"][0], rho, atol=1e-12)
    assert (rho < 0.999).all()


def test_nothing_kept_gives_empty_rows_and_the_model_is_left_as_found() -> None:
    torch.manual_seed(0)
    model = TinyConvNet().train()
    model.fc.weight.requires_grad_(False)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 16, 16, generator=g)
    with torch.no_grad():
        t = model.eval()(x).argmax(1)
    model.train()
    masks = torch.ones(2, 16, 16, dtype=torch.bool)
    result = fgsm_protocol(model, x, t, masks, {"center": make_method("center", model)},
                           epsilons=[1e-9])  # fmt: skip
    assert not result.kept.any()
    assert result.rows()[0]["n"] == 0 and result.rows()[0]["energy_share"] is None
    assert all(m.training for m in model.modules())
    assert not model.fc.weight.requires_grad and model.conv1.weight.requires_grad
    assert all(p.grad is None for p in model.parameters())


def test_bad_arguments() -> None:
    model = _linear()
    x, t, masks, _, _ = _cases(model)
    center = {"center": make_method("center", model)}
    with pytest.raises(ValueError, match="`masks`"):
        fgsm_protocol(model, x, t, masks[:2], center)
    with pytest.raises(ValueError, match="`masks` must not be empty"):
        fgsm_protocol(model, x, t, torch.zeros_like(masks), center)
    with pytest.raises(ValueError, match="`epsilons`"):
        fgsm_protocol(model, x, t, masks, center, epsilons=[-0.1])
    with pytest.raises(ValueError, match=r"\[0.0, 1.0\]"):
        fgsm_protocol(model, x * 4, t, masks, center)
    with pytest.raises(TypeError, match="`targets`"):
        fgsm_protocol(model, x, t.float(), masks, center)
    with pytest.raises(ValueError, match="`methods`"):
        fgsm_protocol(model, x, t, masks, {})


# ------------------------------------------------------------ records of benchmark cases

Guard = Callable[[nn.Module], AbstractContextManager[None]]


@dataclass(frozen=True)
class Case:  # the fields of benchmark_data.BenchmarkCase that fgsm_records reads
    case_id: str
    kind: str
    split: str
    image: Tensor
    target: int
    mask: Tensor
    source: dict[str, Any] = field(default_factory=dict)


def _as_cases(x: Tensor, t: Tensor, masks: Tensor) -> list[Case]:
    return [Case(f"c{i}", "grid2", "test", x[i], int(t[i]), masks[i], {"photo": f"p{i % 3}"})
            for i in range(x.shape[0])]  # fmt: skip


def _plain(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [dict(r) for r in records]


def test_fgsm_keys_are_in_grey_levels() -> None:
    assert grey_levels(2 / 255) == 2.0 and grey_levels(0.5 / 255) == 0.5
    assert fgsm_key("c3", 2 / 255, "gfi", 7) == "c3|fgsm:2:gfi|7"
    assert fgsm_key("c3", 0.5 / 255, "gradcam", 7) == "c3|fgsm:0.5:gradcam|7"


def test_fgsm_records_flip_as_the_margin_predicts(untouched: Guard) -> None:
    model = _linear()
    x, t, masks, margin, l1 = _cases(model)
    threshold = (margin / l1).sort().values
    epsilons = [float(threshold[2] + threshold[3]) / 2, float(threshold[-1]) * 1.01]
    methods = {"saliency": make_method("saliency", model), "center": make_method("center", model)}
    cases = _as_cases(x, t, masks)
    with untouched(model):
        records = list(fgsm_records(cases, methods, model, epsilons, batch_size=4,
                                    model_name="linear"))  # fmt: skip
    assert len(records) == 6 * 2 * 2  # every (case, epsilon, method), flipped or not
    assert [r["key"] for r in records[:4]] == [
        fgsm_key("c0", epsilons[0], "saliency", int(t[0])),
        fgsm_key("c0", epsilons[0], "center", int(t[0])),
        fgsm_key("c0", epsilons[1], "saliency", int(t[0])),
        fgsm_key("c0", epsilons[1], "center", int(t[0])),
    ]
    result = fgsm_protocol(model, x, t, masks, methods, epsilons)
    flips = (margin / l1)[None] < torch.tensor(epsilons)[:, None]
    for r in records:
        i, e = int(r["item"][1:]), epsilons.index(r["epsilon"])
        assert r["record"] == "fgsm" and r["model"] == "linear" and r["photo"] == f"p{i % 3}"
        assert r["epsilon_255"] == grey_levels(r["epsilon"]) and r["clean_correct"]
        assert r["flipped"] == bool(flips[e, i]) == bool(result.kept[e, i])
        assert r["adversarial_class"] == int(result.adversarial_class[e, i])
        metrics = {"energy_share", "pointing_hit", "rank_correlation", "clean_energy_share",
                   "clean_pointing_hit"}  # fmt: skip
        assert metrics <= r.keys() if r["flipped"] else not metrics & r.keys()
        if r["flipped"]:
            adv = result.adversarial[r["method"]]
            assert r["energy_share"] == round(float(adv["energy_share"][e, i]), 6)
            assert r["pointing_hit"] == bool(adv["pointing_hit"][e, i])
            # a linear model's saliency and the center map ignore the attack
            assert r["rank_correlation"] == 1.0
            assert r["energy_share"] == pytest.approx(r["clean_energy_share"], abs=2e-6)
    assert sum(r["flipped"] for r in records if r["epsilon"] == epsilons[1]) == 12


def test_a_constant_model_never_flips() -> None:
    linear = nn.Linear(3 * SIDE * SIDE, 3)
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.copy_(torch.tensor([0.0, 1.0, 0.5]))
    model = nn.Sequential(nn.Flatten(), linear).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, SIDE, SIDE, generator=g)
    masks = torch.ones(3, SIDE, SIDE, dtype=torch.bool)
    cases = _as_cases(x, torch.ones(3, dtype=torch.long), masks)
    records = list(fgsm_records(cases, {"center": make_method("center", model)}, model,
                                [2 / 255, 8 / 255, 64 / 255]))  # fmt: skip
    assert len(records) == 9
    assert all(not r["flipped"] and r["adversarial_class"] == 1 for r in records)
    assert not any("energy_share" in r for r in records)
    assert sorted({r["epsilon_255"] for r in records}) == [2.0, 8.0, 64.0]


def test_fgsm_records_resume_skips_done_keys_and_repeats_the_rest() -> None:
    model = _linear()
    x, t, masks, margin, l1 = _cases(model)
    eps = [float((margin / l1).max()) * 1.01]
    cases = _as_cases(x, t, masks)
    methods = {"image": _image_map, "center": make_method("center", model)}
    first = list(fgsm_records(cases, methods, model, eps, batch_size=4))
    # the lost records: every image record of batch 1 and one center record of batch 2
    lost = {r["key"] for r in first if r["item"] in ("c0", "c2") and r["method"] == "image"}
    lost.add(fgsm_key("c5", eps[0], "center", int(t[5])))
    done = {r["key"] for r in first} - lost
    again = list(fgsm_records(cases, methods, model, eps, batch_size=4, done=done))
    assert _plain(again) == _plain([r for r in first if r["key"] in lost])
    assert list(fgsm_records(cases, methods, model, eps, done={r["key"] for r in first})) == []


def test_fgsm_records_bad_arguments_fail_at_the_call() -> None:
    model = _linear()
    x, t, masks, _, _ = _cases(model)
    cases = _as_cases(x, t, masks)
    center = {"center": make_method("center", model)}
    with pytest.raises(ValueError, match="differ in grey levels"):
        fgsm_records(cases, center, model, [2 / 255, 2.0000001 / 255])
    with pytest.raises(ValueError, match="`epsilons`"):
        fgsm_records(cases, center, model, [0.0])
    with pytest.raises(ValueError, match="`methods`"):
        fgsm_records(cases, {}, model)
    with pytest.raises(ValueError, match="`batch_size`"):
        fgsm_records(cases, center, model, batch_size=0)
    empty = Case("e", "grid2", "test", x[0], int(t[0]), torch.zeros(SIDE, SIDE, dtype=torch.bool))
    with pytest.raises(ValueError, match="case e's `mask`"):
        fgsm_records([*cases, empty], center, model)
    bright = Case("b", "grid2", "test", x[0] * 4, int(t[0]), masks[0])
    with pytest.raises(ValueError, match=r"case b's image must lie in \[0.0, 1.0\]"):
        fgsm_records([bright], center, model)
    assert list(fgsm_records([], center, model)) == []
