"""research/settings_search.py: the setting search as settings of the package, and the
tables of docs/research_settings.md regenerated from the committed stores."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from captum_gfi.settings import SETTINGS, get_setting

REPO = Path(__file__).resolve().parents[1]


def _search() -> ModuleType:
    path = REPO / "research" / "settings_search.py"
    spec = importlib.util.spec_from_file_location("settings_search", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("settings_search", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def registered() -> Iterator[tuple[ModuleType, list[str]]]:
    """The search module with its candidates registered, and their names; unregistered after."""
    search = _search()
    names = search.register_candidates()
    try:
        yield search, names
    finally:
        for name in names:
            SETTINGS.pop(name, None)


def test_every_candidate_is_a_registered_setting(
    registered: tuple[ModuleType, list[str]],
) -> None:
    search, names = registered
    assert names == [search.PREFIX + n for n in search.CANDIDATES] + list(search.RUN_NAMES)
    for name in names[: len(search.CANDIDATES)]:
        assert get_setting(name) == search.CANDIDATES[name[len(search.PREFIX) :]]
    # the names of the committed runs: refined before its last two changes
    assert get_setting("refined_beta6") == dataclasses.replace(SETTINGS["refined"], delta=6.0)
    assert get_setting("refined_beta4") == dataclasses.replace(SETTINGS["refined"], delta=4.0)
    # the shipped settings are the search's winners, field for field
    assert search.CANDIDATES["c10_beta48"] == SETTINGS["refined"]
    assert search.CANDIDATES["paper"] == SETTINGS["paper"]
    assert set(search.CANDIDATES).isdisjoint(search.NOT_SETTINGS)


def test_the_documented_larger_step_override_is_the_measured_candidate(
    registered: tuple[ModuleType, list[str]],
) -> None:
    """research_settings.md measured ``research:c10_beta48_lr4e-2`` and documents it as
    ``attribute(..., setting="refined", lr=4e-2)``: the two give the same maps."""
    import torch

    from captum_gfi import GuidedFeatureInversion
    from captum_gfi.demo.toy import toy_convnet

    search, _ = registered
    assert search.CANDIDATES["c10_beta48_lr4e-2"] == dataclasses.replace(
        SETTINGS["refined"], lr=4e-2
    )
    torch.manual_seed(0)
    model = toy_convnet().eval()
    x = torch.rand(2, 3, 32, 32)
    gfi = GuidedFeatureInversion(model, model.conv1)
    override = gfi.attribute(x, target=1, setting="refined", lr=4e-2)
    measured = gfi.attribute(x, target=1, setting="research:c10_beta48_lr4e-2")
    default = gfi.attribute(x, target=1, setting="refined")
    torch.testing.assert_close(override, measured, rtol=0, atol=0)
    assert not torch.allclose(override, default)


def test_the_docs_tables_regenerate_from_the_committed_stores() -> None:
    search = _search()
    rows: set[str] = set()
    for store in sorted((REPO / "docs" / "research_settings").glob("*.json")):
        rows |= set(search.report_table(json.loads(store.read_text())).splitlines()[3:])
    doc = (REPO / "docs" / "research_settings.md").read_text().splitlines()
    quoted = [line for line in doc if re.match(r"^\| [\w.\-]+ \| [0-9.]+ \(", line)]
    assert len(quoted) >= 30
    assert [line for line in quoted if line not in rows] == []


def _module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "research" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_scorecam_gap_pixel_ranks_give_every_map_the_same_values() -> None:
    import torch

    from captum_gfi.evaluation.benchmark_metrics import energy_share, topk_precision

    gap = _module("scorecam_gap")
    maps = torch.tensor([[[[0.0, 3.0], [1.0, 2.0]]], [[[9.0, 0.5], [0.5, 0.1]]]])
    ranks = gap.pixel_ranks(maps)
    third = 1 / 3
    expected = torch.tensor([[[[0.0, 1.0], [third, 2 * third]]], [[[1.0, third], [2 * third, 0]]]])
    torch.testing.assert_close(ranks, expected)  # ties (0.5, 0.5) broken by position
    masks = torch.tensor([[[True, False], [False, False]], [[True, False], [False, False]]])
    # a monotone transform: top-k precision unchanged, the energy share not
    torch.testing.assert_close(topk_precision(ranks, masks), topk_precision(maps, masks))
    assert energy_share(maps, masks)[1] > energy_share(ranks, masks)[1]


def test_rise_weighting_gives_torchray_the_softmax_through_its_sigmoid() -> None:
    import torch
    from torch import nn

    rise = _module("rise_weighting")
    logits = torch.tensor([[4.0, 1.0, -2.0], [0.0, 0.0, 8.0]])

    class Fixed(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return logits[: x.shape[0]]

    wrapped = rise.BothWeightings(Fixed(), target=2)
    out = wrapped(torch.zeros(2, 3, 4, 4))
    assert out.shape == (2, 6)
    torch.testing.assert_close(out[:, :3], logits)  # TorchRay's sigmoid reads these
    torch.testing.assert_close(torch.sigmoid(out[:, 3:]), logits.softmax(dim=1))  # the paper's
    torch.testing.assert_close(wrapped.weights[0], torch.sigmoid(logits[:, 2]))


def test_map_contrast_separates_where_a_map_puts_its_mass_from_its_contrast(
    tmp_path: Path, capsys: object
) -> None:
    import pytest
    import torch

    from captum_gfi.evaluation._thumbnails import encode_thumbnail

    contrast = _module("map_contrast")
    gt = torch.zeros(64, 64)
    gt[:, :32] = 1  # the object: the left half
    peaked, flat = gt.clone(), gt.clone()
    flat[:, 32:] = 0.5  # the same ranking of pixels, less contrast
    rows: list[dict] = []
    for i, (item, split) in enumerate([("c0", "test"), ("c1", "tune"), ("c2", "test")]):
        rows.append({"record": "case", "key": f"{item}|case|1", "item": item, "index": i,
                     "split": split, "target": 1, "source": {"photo": f"photo{i}"},
                     "thumb_gt": encode_thumbnail(gt)})  # fmt: skip
        for method, m, share in (("peaked", peaked, 1.0), ("flat", flat, 0.6)):
            rows.append({"record": "method", "key": f"{item}|{method}|1", "item": item,
                         "index": i, "method": method, "split": split, "target": 1,
                         "energy_share": share, "thumb_map": encode_thumbnail(m)})  # fmt: skip
    (tmp_path / "shards").mkdir()
    lines = "\n".join(json.dumps(r) for r in rows) + "\n"
    (tmp_path / "shards" / "rank0.jsonl").write_text(lines)
    photos, gts, values = contrast.collect([tmp_path], ["peaked", "flat"])
    assert photos == ["photo0", "photo2"] and gts.shape == (2, 64, 64)  # the test cases
    half = 128 / 255  # 0.5 as the 8-bit thumbnail stores it
    assert values["peaked"]["thumbnail"].tolist() == [1.0, 1.0]
    assert values["flat"]["thumbnail"] == pytest.approx([1 / (1 + half)] * 2)
    assert values["flat"]["recorded"].tolist() == [0.6, 0.6]
    # the rank transform leaves only the ranking: the two maps score the same
    torch.testing.assert_close(values["flat"]["rank"], values["peaked"]["rank"])
    assert values["peaked"]["mean / max"] == pytest.approx([0.5, 0.5])
    assert values["flat"]["mean / max"] == pytest.approx([(1 + half) / 2] * 2)
    assert contrast.main([str(tmp_path), "--reference", "peaked", "--methods", "flat"]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "2 test cases, 2 photos; reference: peaked" in out
    assert "| flat | 0.600 (+0.400 [+0.400, +0.400] / [+0.400, +0.400]) |" in out
    with pytest.raises(ValueError, match="no test case"):
        contrast.collect([tmp_path], ["peaked", "missing"])
    # equal values share their mean rank: no order by position among ties
    ranks = contrast.tied_ranks(torch.tensor([[[0.0, 2.0], [0.0, 1.0]], [[3.0, 3.0], [3.0, 3.0]]]))
    torch.testing.assert_close(
        ranks, torch.tensor([[[1 / 6, 1.0], [1 / 6, 2 / 3]], [[0.5, 0.5], [0.5, 0.5]]]).double()
    )
