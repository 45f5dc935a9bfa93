import pytest
import torch

from captum_gfi.evaluation.saliency_metrics import (
    SODScores,
    aggregate_sod,
    f_measure,
    salient_object_scores,
)


def test_f_measure_beta2() -> None:
    assert f_measure(0.5, 1.0) == pytest.approx(1.3 * 0.5 / (0.3 * 0.5 + 1.0))
    assert f_measure(0.0, 0.0) == 0.0
    with pytest.raises(ValueError, match="beta2"):
        f_measure(0.5, 0.5, beta2=0.0)


def test_salient_object_scores_hand_computed() -> None:
    s = torch.tensor([[4.0, 4.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0]])  # mean 1.25 -> thr 2.5
    g = torch.tensor([[1, 0, 0, 0], [1, 0, 0, 0]])
    sc = salient_object_scores(s, g)
    # predicted {(0,0),(0,1)}, gt {(0,0),(1,0)}: tp 1 -> P = R = 0.5
    assert sc.precision == pytest.approx(0.5) and sc.recall == pytest.approx(0.5)
    assert sc.f_measure == pytest.approx(0.5)
    # normalised map [[1,1,0,0],[.5,0,0,0]] vs g: |0|+|1|+0+0+|.5|+0+0+0 = 1.5 / 8
    assert sc.mae == pytest.approx(1.5 / 8)
    with pytest.raises(ValueError, match="differ"):
        salient_object_scores(s, g[:, :3])


def test_aggregate_uses_f_of_mean_precision_recall() -> None:
    agg = aggregate_sod([SODScores(1.0, 0.5, 0.0, 0.1), SODScores(0.5, 0.5, 0.0, 0.3)])
    assert agg.precision == 0.75 and agg.recall == 0.5
    assert agg.f_measure == pytest.approx(1.3 * 0.375 / (0.3 * 0.75 + 0.5))
    assert agg.mae == pytest.approx(0.2)
