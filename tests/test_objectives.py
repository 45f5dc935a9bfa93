import pytest
import torch

from captum_gfi.objectives import (
    class_discriminative_loss,
    class_scores,
    inversion_loss,
    l1_norm,
    target_score,
)


def test_inversion_loss_eq8_by_hand() -> None:
    guided = torch.tensor([[[[1.0, 2.0]]], [[[0.0, 0.0]]]])  # (2, 1, 1, 2)
    clean = torch.tensor([[[[0.0, 4.0]]], [[[0.0, 3.0]]]])
    w = torch.tensor([[0.5, 0.25], [0.0, 1.0]])
    # ex0: 1 + 4 + 10 * 0.75 ; ex1: 9 + 10 * 1
    torch.testing.assert_close(inversion_loss(guided, clean, w, 10.0), torch.tensor([12.5, 19.0]))


def test_class_discriminative_loss_eq9_by_hand() -> None:
    w = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    loss = class_discriminative_loss(
        torch.tensor([0.9, 0.2]), torch.tensor([0.1, 0.4]), w, 2.0, 3.0
    )
    # -0.9 + 2*0.1 + 3*1 ; -0.2 + 2*0.4 + 3*1
    torch.testing.assert_close(loss, torch.tensor([2.3, 3.6]))


def test_l1_norm_gradient_is_one_at_zero() -> None:
    w = torch.tensor([[0.0, 0.3]], requires_grad=True)
    (g,) = torch.autograd.grad(l1_norm(w).sum(), w)
    assert g.tolist() == [[1.0, 1.0]]


def test_scores() -> None:
    out = torch.tensor([[0.0, 1.0, 2.0]])
    torch.testing.assert_close(class_scores(out, "softmax"), torch.softmax(out, 1))
    torch.testing.assert_close(class_scores(out, "sigmoid"), torch.sigmoid(out))
    assert class_scores(out, "logit") is out
    with pytest.raises(ValueError, match="score must be one of"):
        class_scores(out, "probit")


def test_target_score_forms() -> None:
    out = torch.tensor([[0.0, 1.0, 2.0], [3.0, 0.0, 0.0]])
    p = torch.softmax(out, 1)
    torch.testing.assert_close(target_score(out, 2), p[:, 2])
    torch.testing.assert_close(target_score(out, [2, 0]), torch.stack([p[0, 2], p[1, 0]]))
    torch.testing.assert_close(
        target_score(out, torch.tensor([1, 0])), torch.stack([p[0, 1], p[1, 0]])
    )
    torch.testing.assert_close(target_score(out, 1, "logit"), out[:, 1])
