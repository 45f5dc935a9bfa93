"""Quantus 0.6 runs the benchmark's methods through our explain_func and agrees
with our own pointing game and energy share on the same maps; its AUC metrics run on
NumPy >= 2.4 (no np.trapz); explain_func passes GFI's options through."""

import numpy as np
import pytest
import torch

from captum_gfi import GuidedFeatureInversion
from captum_gfi.demo.toy import toy_convnet
from captum_gfi.evaluation.benchmark_metrics import energy_share, pointing_hits
from captum_gfi.evaluation.quantus_adapter import explain_func, patch_quantus_auc

quantus = pytest.importorskip("quantus")

N, S = 8, 24


@pytest.fixture()
def batch() -> tuple[torch.nn.Module, np.ndarray, np.ndarray, np.ndarray]:
    model = toy_convnet()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(N, 3, S, S, generator=g)
    with torch.no_grad():
        y = model(x).argmax(1)
    masks = np.zeros((N, 1, S, S), dtype=np.float32)
    for i in range(N):  # a rectangle per image, at varying places
        r, c = (3 * i) % 12, (5 * i) % 12
        masks[i, 0, r : r + 9, c : c + 11] = 1
    return model, x.numpy(), y.numpy(), masks


@pytest.mark.parametrize("method", ["saliency", "gradcam", "ig", "gfi"])
def test_quantus_agrees_with_our_pointing_and_energy(one_thread: None, batch, method) -> None:
    model, x, y, s = batch
    kwargs = {"method": method, "layer": "conv2"}
    a = explain_func(model, x, y, **kwargs)
    assert a.shape == (N, 1, S, S) and a.dtype == np.float32
    pg = quantus.PointingGame(disable_warnings=True, display_progressbar=False)
    q_hits = np.asarray(pg(model=model, x_batch=x, y_batch=y, a_batch=None, s_batch=s,
                           explain_func=explain_func, explain_func_kwargs=kwargs,
                           device="cpu"), dtype=float)  # fmt: skip
    al = quantus.AttributionLocalisation(
        abs=False, positive_attributions=True, disable_warnings=True, display_progressbar=False
    )
    q_share = np.asarray(al(model=model, x_batch=x, y_batch=y, a_batch=None, s_batch=s,
                            explain_func=explain_func, explain_func_kwargs=kwargs,
                            device="cpu"), dtype=float)  # fmt: skip
    maps, masks = torch.from_numpy(a), torch.from_numpy(s[:, 0] > 0)
    ours_hits = pointing_hits(maps, masks, tolerance=0).numpy()
    ours_share = energy_share(maps, masks).numpy()
    # Quantus counts a hit when any tied maximum is in the mask; ours takes the first
    # maximum: compare where the maximum is unique (all of them for these methods).
    flat = a.reshape(N, -1)
    unique = (flat == flat.max(1, keepdims=True)).sum(1) == 1
    assert unique.sum() >= N // 2
    np.testing.assert_array_equal(q_hits[unique], ours_hits[unique].astype(float))
    np.testing.assert_allclose(q_share, ours_share, rtol=1e-5, atol=1e-7)
    assert 0 < ours_share.mean() < 1  # non-trivial maps


def test_explain_func_center_and_bad_arguments(batch) -> None:
    model, x, y, _ = batch
    a = explain_func(model, x, y, method="center")
    assert a.shape == (N, 1, S, S)
    np.testing.assert_allclose(a[0], a[-1])  # the same map for every image
    with pytest.raises(ValueError, match="method"):
        explain_func(model, x, y, method="lime")
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['steps'\]; only the gfi"):
        explain_func(model, x, y, method="center", steps=3)
    with pytest.raises(TypeError, match=r"\['steps'\]; GFI takes the keyword arguments"):
        explain_func(model, x, y, method="gfi", layer="conv2", steps=3)
    with pytest.raises(TypeError, match="return_weights"):
        explain_func(model, x, y, method="gfi", layer="conv2", return_weights=True)
    with pytest.raises(ValueError, match="targets"):
        explain_func(model, x, y[:3], method="saliency")


def test_quantus_auc_works_on_this_numpy() -> None:
    from quantus.helpers import utils

    patched = patch_quantus_auc()
    assert patched == (not hasattr(np, "trapz"))  # NumPy 2.4 removed np.trapz
    assert patch_quantus_auc() == patched  # idempotent
    # the composite trapezoidal rule, dx = 1: exact values
    assert utils.calculate_auc(np.array([0.0, 1.0, 2.0])) == 2.0
    np.testing.assert_array_equal(
        utils.calculate_auc(np.array([[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]]), batched=True), [2.0, 2.0]
    )


def test_quantus_auc_metrics_run(one_thread: None, batch) -> None:
    # Selectivity's AUC and PixelFlipping's per-sample AUC are calculate_auc of their curves:
    # both crashed on NumPy 2.4 unpatched
    model, x, y, _ = batch
    kwargs = {"explain_func": explain_func, "explain_func_kwargs": {"method": "saliency"}}
    selectivity = quantus.Selectivity(
        patch_size=8, disable_warnings=True, display_progressbar=False
    )
    curves = selectivity(model=model, x_batch=x, y_batch=y, a_batch=None, device="cpu", **kwargs)
    assert len(curves) == N
    expected = np.mean([np.trapezoid(np.asarray(c)) for c in curves])
    assert selectivity.get_auc_score == pytest.approx(expected, rel=1e-12)
    flipping = quantus.PixelFlipping(
        features_in_step=24 * 6, return_auc_per_sample=True, disable_warnings=True,
        display_progressbar=False,
    )  # fmt: skip
    aucs = flipping(model=model, x_batch=x, y_batch=y, a_batch=None, device="cpu", **kwargs)
    assert len(aucs) == N and np.isfinite(aucs).all()


def test_explain_func_passes_gfi_options(one_thread: None, batch) -> None:
    model, x, y, _ = batch
    options = {"target_steps": 2, "inversion_steps": 1, "seed": 3, "lr": 0.05}
    a = explain_func(model, x, y, method="gfi", layer="conv2", **options)
    gfi = GuidedFeatureInversion(model, model.conv2)
    expected = gfi.attribute(torch.from_numpy(x), target=torch.from_numpy(y), **options)
    np.testing.assert_array_equal(a, expected.detach().numpy())
    default = explain_func(model, x, y, method="gfi", layer="conv2")
    assert not np.allclose(a, default)  # the options took effect
    # a setting by name, and its fields overridden
    refined = explain_func(model, x, y, method="gfi:refined", layer="conv2", target_steps=2)
    expected = gfi.attribute(torch.from_numpy(x), target=torch.from_numpy(y), setting="refined",
                             target_steps=2, seed=0)  # fmt: skip
    np.testing.assert_array_equal(refined, expected.detach().numpy())


def test_quantus_max_sensitivity_with_a_cheap_gfi(one_thread: None, batch) -> None:
    model, x, y, _ = batch
    metric = quantus.MaxSensitivity(nr_samples=2, disable_warnings=True, display_progressbar=False)
    kwargs = {"method": "gfi:refined", "layer": "conv2", "target_steps": 2}
    scores = metric(model=model, x_batch=x[:2], y_batch=y[:2], a_batch=None,
                    explain_func=explain_func, explain_func_kwargs=kwargs,
                    device="cpu")  # fmt: skip
    assert len(scores) == 2 and np.isfinite(scores).all() and min(scores) >= 0
