"""The benchmark report's sections of the randomisation test and of the FGSM test
(captum_gfi.evaluation.benchmark_report), from the records of sanity_records and
fgsm_records on the toy net."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

from captum_gfi.demo.toy import toy_convnet
from captum_gfi.evaluation.adversarial import fgsm_records
from captum_gfi.evaluation.benchmark_report import (
    summarize_fgsm,
    summarize_sanity,
    write_benchmark_report,
)
from captum_gfi.evaluation.localization import PAPER_ALPHAS
from captum_gfi.evaluation.methods import make_method
from captum_gfi.evaluation.records import ShardWriter, record_key
from captum_gfi.evaluation.sanity import sanity_records

S = 32


@dataclass(frozen=True)
class Case:  # the fields of benchmark_data.BenchmarkCase the producers read
    case_id: str
    kind: str
    split: str
    image: Tensor
    target: int
    mask: Tensor
    source: dict[str, Any] = field(default_factory=dict)


def _cases(n: int = 4) -> list[Case]:
    net = toy_convnet()
    g = torch.Generator().manual_seed(5)
    x = torch.rand(n, 3, S, S, generator=g)
    with torch.no_grad():
        t = net(x).argmax(1)  # the net is right on every case: FGSM can flip it
    mask = torch.zeros(S, S, dtype=torch.bool)
    mask[8:24, 6:20] = True
    return [Case(f"c{i}", "composite", "test", x[i], int(t[i]), mask, {"photo": f"p{i % 2}"})
            for i in range(n)]  # fmt: skip


def _method_records(cases: list[Case]) -> list[dict[str, Any]]:
    """Case and method records as benchmark_runner writes them (the fields the report reads)."""
    recs: list[dict[str, Any]] = []
    for i, c in enumerate(cases):
        recs.append({"key": record_key(c.case_id, "case", c.target), "record": "case",
                     "item": c.case_id, "kind": c.kind, "split": c.split, "index": i,
                     "target": c.target, "source": c.source})  # fmt: skip
        recs.append(
            {
                "key": record_key(c.case_id, "center", c.target),
                "record": "method",
                "item": c.case_id,
                "method": "center",
                "kind": c.kind,
                "split": c.split,
                "index": i,
                "target": c.target,
                "full": True,
                "seconds": 0.01,
                "energy_share": 0.1 * (i + 1),
                "pointing_hit": i % 2 == 0,
                "topk_precision": 0.5,
                "wsol_success": [i % 2 == 0] * len(PAPER_ALPHAS),
            }
        )
    return recs


def _write(out: Path, name: str, records: list[dict[str, Any]]) -> None:
    with ShardWriter(out / "shards" / name) as writer:
        for r in records:
            writer.write(r)


def test_sections_appear_with_the_records_and_leave_the_rest_as_it_was(
    one_thread: None, tmp_path: Path
) -> None:
    cases = _cases(4)
    _write(tmp_path, "rank0.jsonl", _method_records(cases))
    write_benchmark_report(tmp_path)
    before_md = (tmp_path / "summary.md").read_text()
    before = json.loads((tmp_path / "summary.json").read_text())
    assert "## Randomisation test" not in before_md and "## Adversarial" not in before_md
    assert "sanity" not in before and "adversarial" not in before

    net = toy_convnet()
    sanity = list(sanity_records(cases, ["center", "saliency"], net, batch_size=3))
    methods = {m: make_method(m, net) for m in ("center", "saliency")}
    fgsm = list(fgsm_records(cases, methods, net, [2 / 255, 64 / 255], batch_size=3))
    _write(tmp_path, "rank1.jsonl", sanity + fgsm)
    summary = write_benchmark_report(tmp_path)
    md = (tmp_path / "summary.md").read_text()
    # the tables before the new sections are byte-identical
    assert md.startswith(before_md) and md[len(before_md) :].startswith("\n## Randomisation test")
    assert {k: v for k, v in summary.items() if k not in ("sanity", "adversarial")} == before

    rows = summary["sanity"]
    assert [r["method"] for r in rows] == ["center", "saliency"]  # config order, then seen
    center = rows[0]
    assert (center["n"], center["photos"], center["steps"]) == (4, 2, ["fc", "conv2", "conv1"])
    assert center["spearman_abs"] == [1.0, 1.0, 1.0] and center["pass_share"] == 0.0
    assert center["final"]["mean"] == 1.0 and not center["passed"]
    assert center["constant_last"] == 0
    saliency = [r for r in sanity if r["method"] == "saliency"]
    assert rows[1]["pass_share"] == pytest.approx(sum(r["passed"] for r in saliency) / 4)
    assert "Steps: 1 = `fc`; 2 = `conv2`; 3 = `conv1`." in md
    line = "| center | 4 | 2 | 1.000 | 1.000 | 1.000 | 1.000 [1.000, 1.000] | 0.000 | 0 | fail |"
    assert line in md.splitlines()

    adv = summary["adversarial"]
    assert [(r["epsilon_255"], r["method"]) for r in adv] == [
        (2.0, "center"), (2.0, "saliency"), (64.0, "center"), (64.0, "saliency"),
    ]  # fmt: skip
    for r in adv:
        mine = [f for f in fgsm if f["epsilon_255"] == r["epsilon_255"]
                and f["method"] == r["method"]]  # fmt: skip
        assert r["n"] == 4 and r["flipped"] == sum(f["flipped"] for f in mine)
        if r["flipped"]:
            assert r["energy_share"]["n"] == r["flipped"]
            assert r["energy_share"]["mean"] == pytest.approx(
                sum(f["energy_share"] for f in mine if f["flipped"]) / r["flipped"]
            )
        else:
            assert "energy_share" not in r
    big = adv[2]
    assert big["flipped"] > 0 and big["rank_correlation"]["mean"] == 1.0  # center ignores x
    assert "## Adversarial (FGSM)" in md
    assert f"| 64 | center | {big['flipped']} / 4 | " in md


def test_summaries_of_records_alone() -> None:
    def sanity(item: str, method: str, final: float, photo: str) -> dict[str, Any]:
        return {
            "record": "sanity",
            "item": item,
            "method": method,
            "steps": ["a", "b"],
            "spearman": [1.0, final],
            "spearman_abs": [1.0, final],
            "final": final,
            "passed": final < 0.5,
            "threshold": 0.5,
            "split": "test",
            "photo": photo,
        }

    flat = {**sanity("z", "k", 0.0, "q"), "constant_map": [False, True]}
    rows = summarize_sanity([sanity("x", "m", 0.2, "p"), sanity("y", "m", 0.6, "p"),
                             sanity("x", "k", 0.9, "q"), flat], methods=["k"])  # fmt: skip
    assert [r["method"] for r in rows] == ["k", "m"]
    m = rows[1]
    assert m["n"] == 2 and m["photos"] == 1 and m["pass_share"] == 0.5
    assert m["spearman_abs"] == pytest.approx([1.0, 0.4]) and m["passed"]
    assert m["constant_last"] == 0  # records without constant_map count as not constant
    assert rows[0]["constant_last"] == 1 and rows[0]["n"] == 2
    assert summarize_sanity([]) == [] and summarize_fgsm([]) == []
    fgsm = [{"record": "fgsm", "item": "x", "method": "m", "epsilon_255": 8.0,
             "flipped": False}]  # fmt: skip
    assert summarize_fgsm(fgsm) == [
        {"epsilon_255": 8.0, "method": "m", "n": 1, "photos": None, "flipped": 0}
    ]
