import numpy as np
import pytest

from captum_gfi.evaluation.report import markdown_table, summarize
from captum_gfi.evaluation.stats import (
    bootstrap_ci,
    bootstrap_mean_ci,
    cluster_bootstrap_mean_ci,
    paired_bootstrap_ci,
    paired_difference,
)

ALPHAS = (0.0, 0.5, 1.0)


def _rec(item: str, target: int, succ: list[bool], hit: bool, tune: bool = False) -> dict:
    return {
        "key": f"{item}|m|{target}",
        "item": item,
        "method": "m",
        "target": target,
        "wsol_success": succ,
        "pointing_hit": hit,
        "tune": tune,
        "insertion_auc": 0.5,
    }


def test_summary_alpha_from_tune_split_and_class_mean_pointing() -> None:
    records = [
        _rec("a", 1, [True, False, False], True),
        _rec("b", 1, [True, False, True], False),
        _rec("c", 2, [False, True, True], False),
        _rec("t", 2, [False, False, True], True, tune=True),  # tune split picks alpha=1.0
    ]
    s = summarize(records, ALPHAS)["m"]
    assert s["wsol_alpha"] == 1.0 and s["wsol_alpha_tuned_on_split"]
    assert s["wsol_error"]["mean"] == pytest.approx(1 / 3)  # test images a, b, c at alpha 1.0
    assert s["wsol_error_per_alpha"] == pytest.approx([1 / 3, 2 / 3, 1 / 3])
    # class 1: 1 of 2, class 2: 1 of 2 (tune image included: pointing has no tuning)
    assert s["pointing_accuracy"]["mean"] == pytest.approx(0.5)
    assert s["pointing_accuracy"]["n"] == 4
    assert s["insertion_auc"] == {"mean": 0.5, "low": 0.5, "high": 0.5, "n": 4}
    assert "| m | 0.333 [" in markdown_table({"m": s})


def test_bootstrap_ci_brackets_the_mean() -> None:
    est, lo, hi = bootstrap_ci([0.0, 1.0, 0.0, 1.0, 1.0], lambda v: sum(v) / len(v))
    assert est == pytest.approx(0.6) and 0.0 <= lo <= est <= hi <= 1.0
    assert bootstrap_ci([0.3], lambda v: v[0]) == (0.3, 0.3, 0.3)
    with pytest.raises(ValueError, match="values"):
        bootstrap_ci([], lambda v: 0.0)


def test_vectorised_bootstrap_equals_the_generic_one() -> None:
    rng = np.random.default_rng(3)
    v = rng.normal(size=37)
    assert bootstrap_mean_ci(v) == pytest.approx(bootstrap_ci(list(v), lambda x: float(np.mean(x))))
    assert bootstrap_mean_ci([2.5]) == (2.5, 2.5, 2.5)
    with pytest.raises(ValueError, match="empty"):
        bootstrap_mean_ci([])


def test_paired_bootstrap_sees_a_constant_shift_that_unpaired_cis_miss() -> None:
    rng = np.random.default_rng(0)
    b = rng.uniform(0, 1, size=50)  # the cases' difficulty dominates
    a = b + 0.02
    d, lo, hi = paired_bootstrap_ci(a, b)
    assert d == pytest.approx(0.02) and lo == pytest.approx(0.02) and hi == pytest.approx(0.02)
    _, a_lo, _ = bootstrap_mean_ci(a)
    _, _, b_hi = bootstrap_mean_ci(b)
    assert a_lo < b_hi  # the separate intervals overlap
    noisy = b + rng.normal(0.0, 0.05, size=50)
    d, lo, hi = paired_bootstrap_ci(noisy, b)
    assert lo < d < hi and lo < 0 < hi
    with pytest.raises(ValueError, match="pair"):
        paired_bootstrap_ci(a, b[:-1])


def test_cluster_bootstrap_widens_the_interval_when_groups_disagree() -> None:
    rng = np.random.default_rng(0)
    # three photos: two with many cases and opposite effects, one small
    values = np.concatenate([rng.normal(0.1, 0.02, 80), rng.normal(-0.1, 0.02, 80),
                             rng.normal(0.05, 0.02, 20)])  # fmt: skip
    groups = ["cat"] * 80 + ["camera"] * 80 + ["clock"] * 20
    est, lo, hi = cluster_bootstrap_mean_ci(values, groups)
    assert est == pytest.approx(values.mean())
    _, case_lo, case_hi = bootstrap_mean_ci(values)
    assert lo < case_lo and hi > case_hi
    assert hi - lo > 5 * (case_hi - case_lo)  # 3 photos, not 180 independent cases
    assert lo < 0 < hi
    # one group, or every value its own group: the case-level interval (the same draws)
    one = cluster_bootstrap_mean_ci(values[:80], groups[:80])
    assert one == pytest.approx(bootstrap_mean_ci(values[:80]), abs=1e-12)
    singletons = cluster_bootstrap_mean_ci(values, list(range(values.size)))
    assert singletons == pytest.approx(bootstrap_mean_ci(values), abs=1e-12)
    # groups that agree: the interval stays near the case-level one
    same = rng.normal(0.1, 0.02, 180)
    _, glo, ghi = cluster_bootstrap_mean_ci(same, groups)
    _, clo, chi = bootstrap_mean_ci(same)
    assert ghi - glo < 2 * (chi - clo)
    with pytest.raises(ValueError, match="groups"):
        cluster_bootstrap_mean_ci(values, groups[:-1])
    with pytest.raises(ValueError, match="empty"):
        cluster_bootstrap_mean_ci([], [])


def test_paired_difference_gives_both_intervals_and_the_reports_cell() -> None:
    # a constant shift: every interval collapses onto it, whatever the groups
    d = paired_difference([1.0, 2.0, 3.5], [0.75, 1.75, 3.25], ["a", "a", "b"])
    assert tuple(d) == pytest.approx((0.25, 0.25, 0.25, 0.25, 0.25))
    assert str(d) == "+0.250 [+0.250, +0.250] / [+0.250, +0.250]"
    assert d.excludes_zero
    # two photos with opposite effects: the photo interval straddles 0, the case one not
    a = np.array([0.3] * 10 + [-0.1] * 10)
    groups = ["cat"] * 10 + ["clock"] * 10
    d = paired_difference(a, np.zeros(20), groups)
    assert (d.difference, d.low, d.high) == pytest.approx(paired_bootstrap_ci(a, np.zeros(20)))
    assert (d.difference, d.group_low, d.group_high) == pytest.approx(
        cluster_bootstrap_mean_ci(a, groups)
    )
    assert d.low > 0 and d.group_low < 0 < d.group_high and not d.excludes_zero
    assert str(d).startswith("+0.100 [+")
    with pytest.raises(ValueError, match="pair"):
        paired_difference([1.0, 2.0], [1.0], ["a", "b"])
    with pytest.raises(ValueError, match="groups"):
        paired_difference([1.0, 2.0], [1.0, 1.0], ["a"])
