import pytest
import torch
from torch import nn

from captum_gfi.evaluation.captum_metrics import infidelity_score, sensitivity_score


class _Linear(nn.Module):
    """f_k(x) = sum_{c,h,w} w_k[h, w] x[c, h, w]: its exact attribution map is w_k."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w = nn.Parameter(torch.randn(2, 4, 4, generator=g), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("nchw,khw->nk", x, self.w)


def test_infidelity_zero_for_exact_map_positive_otherwise() -> None:
    model = _Linear()
    x = torch.rand(2, 3, 4, 4)
    target = torch.tensor([0, 1])

    def exact(inputs: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return model.w[t].unsqueeze(1).expand(inputs.shape[0], 1, 4, 4)

    def wrong(inputs: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.rand(inputs.shape[0], 1, 4, 4, generator=torch.Generator().manual_seed(1))

    inf_exact = infidelity_score(model, exact, x, target)
    inf_wrong = infidelity_score(model, wrong, x, target)
    assert inf_exact.shape == (2,)
    torch.testing.assert_close(inf_exact, torch.zeros(2), atol=1e-5, rtol=0)
    assert bool((inf_wrong > 1e-3).all())
    with pytest.raises(ValueError, match="noise_std"):
        infidelity_score(model, exact, x, target, noise_std=0)


def test_sensitivity_zero_for_input_independent_map() -> None:
    x = torch.rand(2, 3, 4, 4)
    target = torch.tensor([0, 1])

    def constant(inputs: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.ones(inputs.shape[0], 1, 4, 4)

    def identity(inputs: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return inputs[:, :1]

    torch.testing.assert_close(sensitivity_score(constant, x, target), torch.zeros(2))
    sens = sensitivity_score(identity, x, target, perturb_radius=0.02)
    assert bool((sens > 0).all())
    # relative change: each of the 3 * 16 broadcast entries moves by at most the radius
    bound = 0.02 * (3 * 16) ** 0.5 / x[:, :1].expand(-1, 3, -1, -1).flatten(1).norm(dim=1)
    assert bool((sens <= bound + 1e-6).all())
