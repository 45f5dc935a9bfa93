"""The peer methods of captum_gfi.evaluation.peers (pytorch-grad-cam, TorchRay)."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import Tensor, nn

from captum_gfi.demo.toy import TinyConvNet
from captum_gfi.evaluation import peers
from captum_gfi.evaluation.methods import make_method
from captum_gfi.evaluation.peers import (
    GRAD_CAM_METHODS,
    INSTALL_HINT,
    PEERS,
    PeerPasses,
    layer_channels,
    make_peer,
    peer_passes,
)


def _net() -> TinyConvNet:
    torch.manual_seed(0)
    return TinyConvNet().eval()


def _inputs(n: int = 2, side: int = 16) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 3, side, side, generator=g), torch.arange(n) % 5


class _Counter:
    """Images through ``model``'s forward and backward passes."""

    def __init__(self, model: nn.Module) -> None:
        self.forward = 0
        self.backward = 0
        self._handle = model.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, args: object, output: Tensor) -> None:
        self.forward += output.shape[0]
        if output.requires_grad:

            def count(grad: Tensor) -> None:
                self.backward += grad.shape[0]

            output.register_hook(count)

    def remove(self) -> None:
        self._handle.remove()


# ------------------------------------------------------------ without the extra


@pytest.mark.parametrize("name, module", [("scorecam", "pytorch_grad_cam"), ("rise", "torchray")])
def test_missing_extra_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch, name: str, module: str
) -> None:
    for key in [k for k in sys.modules if k == module or k.startswith(module + ".")]:
        monkeypatch.setitem(sys.modules, key, None)
    monkeypatch.setitem(sys.modules, module, None)
    model = _net()
    with pytest.raises(ImportError) as info:
        make_peer(name, model, model.conv2)
    assert INSTALL_HINT in str(info.value)
    assert repr(name) in str(info.value)


def test_bad_arguments_are_refused_before_any_work() -> None:
    model = _net()
    with pytest.raises(ValueError, match="one of the peers"):
        make_peer("eigencam", model, model.conv2)
    with pytest.raises(ValueError, match="`layer` is required"):
        make_peer("gradcam++", model)
    with pytest.raises(ValueError, match="`max_iter`"):
        make_peer("extremal_perturbation", model, max_iter=0)
    with pytest.raises(ValueError, match="`areas`"):
        make_peer("extremal_perturbation", model, areas=(0.1, 1.5))
    with pytest.raises(ValueError, match="`num_masks`"):
        make_peer("rise", model, num_masks=0)
    with pytest.raises(ValueError, match="`channels`"):
        peer_passes("scorecam")


def test_passes_table() -> None:
    assert peer_passes("gradcam++") == PeerPasses(1, 1, 0)
    assert peer_passes("scorecam", channels=1280) == PeerPasses(1281, 0, 0)
    assert peer_passes("rise") == PeerPasses(8001, 0, 0)
    assert peer_passes("extremal_perturbation") == PeerPasses(3200, 3200, 800)
    assert peers.library("xgradcam") == "grad-cam 1.5.7"
    assert peers.library("rise") == "torchray 1.0.0.2"


# ------------------------------------------------------------ with the extra


def _require(module: str) -> None:
    pytest.importorskip(module, reason=f"the peers extra is not installed ({INSTALL_HINT})")


def test_grad_cam_gradcam_agrees_with_captum_layergradcam() -> None:
    _require("pytorch_grad_cam")
    model = _net()
    x, t = _inputs(3)
    ours = make_method("gradcam", model, model.conv2)(x, t)
    theirs = make_peer("pgc_gradcam", model, model.conv2)(x, t)
    assert theirs.shape == (3, 1, 16, 16)
    flat = ours.flatten(1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    scaled = (flat - lo) / (hi - lo)  # pytorch-grad-cam min-max scales every map
    torch.testing.assert_close(theirs.flatten(1), scaled, atol=1e-5, rtol=0)
    for i in range(3):
        r = torch.corrcoef(torch.stack([flat[i], theirs.flatten(1)[i]]))[0, 1]
        assert float(r) > 0.99999


@pytest.mark.parametrize("name", list(GRAD_CAM_METHODS))
def test_grad_cam_peers_maps_passes_and_model_state(name: str) -> None:
    _require("pytorch_grad_cam")
    model = _net().train()  # the library calls model.eval(); the flags come back
    model.fc.weight.requires_grad_(False)
    model.conv1.weight.grad = torch.ones_like(model.conv1.weight)
    x, t = _inputs(2)
    counter = _Counter(model)
    try:
        maps = make_peer(name, model, model.conv2, batch_size=5)(x, t)
    finally:
        counter.remove()
    assert maps.shape == (2, 1, 16, 16) and maps.dtype == torch.float32
    assert float(maps.amin()) >= 0 and abs(float(maps.amax()) - 1) < 1e-5
    channels = layer_channels(model, model.conv2, x)
    assert channels == 16
    expected = peer_passes(name, channels=channels)
    assert (counter.forward, counter.backward) == (2 * expected.forward, 2 * expected.backward)
    assert all(m.training for m in model.modules())
    assert not model.fc.weight.requires_grad and model.conv2.weight.requires_grad
    assert torch.equal(model.conv1.weight.grad, torch.ones_like(model.conv1.weight))
    assert model.conv2.weight.grad is None
    assert not model.conv2._forward_hooks and not model._forward_hooks


def test_scorecam_is_silent_and_its_batch_size_does_not_change_the_map(
    capfd: pytest.CaptureFixture[str],
) -> None:
    _require("pytorch_grad_cam")
    import pytorch_grad_cam.score_cam as score_cam

    model = _net()
    x, t = _inputs(1)
    capfd.readouterr()
    a = make_peer("scorecam", model, model.conv2, batch_size=3)(x, t)
    assert capfd.readouterr().err == ""  # no tqdm bar per batch of masked images
    assert score_cam.tqdm.__name__ == "tqdm"  # the library's module is restored
    b = make_peer("scorecam", model, model.conv2, batch_size=16)(x, t)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_extremal_perturbation_passes_map_and_model_state() -> None:
    _require("torchray")
    model = _net()
    model.conv1.weight.requires_grad_(False)
    x, t = _inputs(2, side=24)
    counter = _Counter(model)
    try:
        maps = make_peer("extremal_perturbation", model, max_iter=3)(x, t)
    finally:
        counter.remove()
    assert maps.shape == (2, 1, 24, 24)
    assert float(maps.amin()) >= 0 and float(maps.amax()) <= len(peers.EXTREMAL_AREAS) + 1e-6
    expected = peer_passes("extremal_perturbation", max_iter=3)
    assert expected == PeerPasses(12, 12, 3)
    assert (counter.forward, counter.backward) == (2 * expected.forward, 2 * expected.backward)
    # TorchRay freezes every parameter and leaves it so; the wrapper restores the flags
    assert not model.conv1.weight.requires_grad and model.conv2.weight.requires_grad


def test_rise_is_torchrays_seeded_and_leaves_the_generator() -> None:
    _require("torchray")
    from torchray.attribution.rise import rise

    model = _net()
    x, t = _inputs(2)
    state = torch.get_rng_state()
    counter = _Counter(model)
    try:
        maps = make_peer("rise", model, num_masks=40, batch_size=16)(x, t)
    finally:
        counter.remove()
    assert torch.equal(torch.get_rng_state(), state)
    assert counter.forward == 2 * peer_passes("rise", num_masks=40).forward
    assert counter.backward == 0
    with torch.no_grad():
        direct = rise(model, x, seed=0, num_masks=40, num_cells=7, batch_size=16, p=0.5)
    torch.testing.assert_close(maps, direct[torch.arange(2), t].unsqueeze(1), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", ["gradcam++", "scorecam", "extremal_perturbation", "rise"])
def test_an_out_of_range_target_fails_at_the_first_forward_pass(name: str) -> None:
    _require("pytorch_grad_cam" if name in GRAD_CAM_METHODS else "torchray")
    model = _net()
    x, _ = _inputs(1)
    fn = make_peer(name, model, model.conv2, max_iter=5, num_masks=64, batch_size=8)
    counter = _Counter(model)
    try:
        with pytest.raises(ValueError, match=r"`target` = 5 is out of range .* 0 to 4"):
            fn(x, torch.tensor([5]))
    finally:
        counter.remove()
    assert counter.forward == (4 if name == "extremal_perturbation" else 1)
    with pytest.raises(ValueError, match=">= 0"):
        fn(x, torch.tensor([-1]))
    if name in GRAD_CAM_METHODS:
        with pytest.raises(ValueError, match="did not run in the model's forward pass"):
            make_peer(name, model, nn.Conv2d(8, 16, 3))(x, torch.tensor([0]))
    assert not model.conv2._forward_hooks and all(p.requires_grad for p in model.parameters())


def test_every_peer_runs_on_a_batch_with_one_target_for_all() -> None:
    _require("pytorch_grad_cam")
    _require("torchray")
    model = _net()
    x, _ = _inputs(2)
    for name in PEERS:
        fn = make_peer(name, model, model.conv2, max_iter=1, num_masks=8)
        assert fn(x, torch.tensor(3)).shape == (2, 1, 16, 16), name
    with pytest.raises(ValueError, match="one class or one per image"):
        make_peer("layercam", model, model.conv2)(x, torch.tensor([0, 1, 2]))
