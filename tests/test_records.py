"""The record store: keys, shards that survive torn and foreign lines, the run
configuration and the lock on an output folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from captum_gfi.evaluation.records import (
    RecordWarning,
    RunLock,
    ShardWriter,
    check_config,
    check_out_dir,
    read_config,
    read_records,
    read_shard,
    record_key,
    write_config,
)


def _rec(i: int, **extra: object) -> dict[str, object]:
    return {"key": record_key(f"im{i}", "gradcam", i), "item": f"im{i}", **extra}


def test_record_key() -> None:
    assert record_key("im3", "gfi:refined", 7) == "im3|gfi:refined|7"


def test_writer_appends_and_reader_takes_the_last_record_of_a_key(tmp_path: Path) -> None:
    with ShardWriter(tmp_path / "shards" / "rank0.jsonl") as w:
        w.write(_rec(0, v=1))
        w.write(_rec(1))
        w.write(_rec(0, v=2))
        with pytest.raises(ValueError, match="key"):
            w.write({"item": "x"})
    recs = read_records(tmp_path)
    assert list(recs) == ["im0|gradcam|0", "im1|gradcam|1"] and recs["im0|gradcam|0"]["v"] == 2
    assert read_records(tmp_path / "nothing") == {}


def test_lines_that_are_not_records_are_skipped_with_one_warning_then_dropped(
    tmp_path: Path,
) -> None:
    shard = tmp_path / "shards" / "rank0.jsonl"
    shard.parent.mkdir()
    good = [json.dumps(_rec(i), sort_keys=True).encode() for i in range(3)]
    junk = [b"\xff\xfe\x00bytes", b'"a string"', b'{"key": 3, "item": "x"}', b'{"item": "y"}']
    shard.write_bytes(b"\n".join([good[0], *junk, good[1], b"", good[2][:9]]) + b"\x00" * 8)
    assert read_shard(shard) == ([json.loads(good[0]), json.loads(good[1])], 5)
    with pytest.warns(RecordWarning, match="skipped 5 line"):
        assert len(read_records(tmp_path)) == 2
    writer = ShardWriter(shard)  # a writing run drops them
    writer.close()
    assert writer.removed == 5
    assert shard.read_bytes() == good[0] + b"\n" + good[1] + b"\n"
    with ShardWriter(shard) as again:  # a sound shard is left as it is
        assert again.removed == 0
    assert shard.read_bytes() == good[0] + b"\n" + good[1] + b"\n"


def test_a_complete_last_record_without_its_newline_is_kept(tmp_path: Path) -> None:
    shard = tmp_path / "rank0.jsonl"
    line = json.dumps(_rec(0), sort_keys=True)
    shard.write_text(line)
    with ShardWriter(shard) as w:
        w.write(_rec(1))
    assert [json.loads(x)["item"] for x in shard.read_text().splitlines()] == ["im0", "im1"]


def test_check_config_refuses_naming_the_option_and_merges_methods(tmp_path: Path) -> None:
    keys = ("model", "n", "input_size")
    assert check_config(tmp_path, {"model": "a", "methods": ["x"]}, keys) == {
        "model": "a", "methods": ["x"]}  # fmt: skip
    write_config(tmp_path, {"model": "a", "n": 5, "methods": ["x", "y"], "seed": 1})
    assert read_config(tmp_path) == {"model": "a", "n": 5, "methods": ["x", "y"], "seed": 1}
    merged = check_config(tmp_path, {"model": "a", "n": 5, "methods": ["z", "x"]}, keys)
    assert merged["methods"] == ["x", "y", "z"]
    # a key this run does not know yet, or the stored run never stored, is not compared
    assert check_config(tmp_path, {"n": 5, "input_size": 32, "methods": []}, keys)
    with pytest.raises(ValueError, match=r"--num-cases was 5, now 6\); resume it") as err:
        check_config(tmp_path, {"model": "b", "n": 6}, keys, options={"n": "--num-cases"})
    assert "--model was 'a', now 'b'" in str(err.value)
    assert not list(tmp_path.glob("*.tmp"))


def test_unreadable_config_is_rewritten_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_bytes(b'{"model": "a"')
    with pytest.warns(RecordWarning, match="unreadable"):
        assert read_config(tmp_path) is None


def test_check_out_dir(tmp_path: Path) -> None:
    assert check_out_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    (tmp_path / "f").write_text("")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        check_out_dir(tmp_path / "f")
    with pytest.raises(ValueError, match=r"lies under .*f, which is a file"):
        check_out_dir(tmp_path / "f" / "x" / "y")


def test_lock_refuses_a_second_holder_until_released(tmp_path: Path) -> None:
    with RunLock(tmp_path / "run"):
        assert (tmp_path / "run" / ".lock").read_text().strip().isdigit()
        with pytest.raises(RuntimeError, match="in use by another evaluate process"):
            RunLock(tmp_path / "run").acquire()
    with RunLock(tmp_path / "run"):  # released: free again
        pass
