r"""The one record store of ``captum-gfi evaluate``, shared by both runners.

An output folder ``OUT`` of a run holds:

- ``OUT/shards/rank<R>.jsonl``: the records, one JSON object per line, appended and
  flushed as soon as each is computed (one file per ``torchrun`` rank). Every record
  has a ``key`` (:func:`record_key`: ``"<item>|<method>|<target>"``); the last record
  read for a key wins. A line that is not a record (a line torn or NUL-filled by a
  killed process, bytes that are not UTF-8, JSON without a ``key``) is skipped with a
  :class:`RecordWarning`; the next run drops it from the shard and recomputes the
  record it held;
- ``OUT/config.json``: the run's configuration, every option that changes a record
  (:func:`check_config` refuses to resume with another value, naming the option;
  :func:`write_config` stores it atomically);
- ``OUT/.lock``: held (``fcntl.flock``) by the process that writes, so a second
  process on the same folder is refused (:class:`RunLock`); the operating system
  drops the lock when its holder dies, even by ``kill -9``, so no lock goes stale.

Nothing here parses command lines: the commands pass plain values.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

#: One record: a JSON object with at least ``key`` and ``item``.
Record = dict[str, Any]
SHARD_DIR = "shards"
CONFIG_FILE = "config.json"
LOCK_FILE = ".lock"


class RecordWarning(UserWarning):
    """A record line, cache or image was skipped (and will be recomputed or rebuilt)."""


def record_key(item: str, method: str, target: int) -> str:
    """The key of the record of ``item`` explained by ``method`` for class ``target``."""
    return f"{item}|{method}|{int(target)}"


def _parse(line: bytes) -> Record | None:
    try:
        rec = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(rec, dict) or not isinstance(rec.get("key"), str) or "item" not in rec:
        return None
    return rec


def read_shard(path: Path) -> tuple[list[Record], int]:
    """The records of one shard file in order, and the number of lines skipped."""
    records: list[Record] = []
    skipped = 0
    for line in Path(path).read_bytes().split(b"\n"):
        if not line.strip(b" \t\r\x00"):
            skipped += bool(line)  # a NUL-filled line counts; an empty one does not
            continue
        rec = _parse(line)
        if rec is None:
            skipped += 1
        else:
            records.append(rec)
    return records, skipped


def read_records(out: str | Path) -> dict[str, Record]:
    r"""
    Every record of the run in ``out`` (``out/shards/rank*.jsonl``), by key.

    Lines that are not records are skipped with one :class:`RecordWarning` per file
    (nothing is refused: the next run recomputes what they held).

    Args:
        out (str or Path): The run's output folder.

    Returns:
        dict[str, Record]: In shard order (the last line read for a key wins).
    """
    records: dict[str, Record] = {}
    shard_dir = Path(out) / SHARD_DIR
    if not shard_dir.is_dir():
        return records
    for path in sorted(shard_dir.glob("rank*.jsonl")):
        recs, skipped = read_shard(path)
        if skipped:
            warnings.warn(
                f"{path}: skipped {skipped} line(s) that are not records (torn, NUL-filled or "
                "not UTF-8 JSON); they will be recomputed",
                RecordWarning,
                stacklevel=2,
            )
        for rec in recs:
            records[rec["key"]] = rec
    return records


class ShardWriter:
    r"""
    Appends records to a shard file, one JSON line each, flushed and fsynced.

    Opening a shard repairs it: lines that are not records (the torn or NUL-filled
    tail of a killed writer, say; :func:`read_records` has warned about them) are
    dropped by rewriting the file atomically with the records only, in order, so
    they are not reported again once recomputed. ``removed`` counts them.
    """

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.removed = 0
        if path.exists() and path.stat().st_size > 0:
            data = path.read_bytes()
            lines = [line for line in data.split(b"\n") if line]
            good = [line for line in lines if _parse(line) is not None]
            if len(good) < len(lines) or not data.endswith(b"\n"):
                self.removed = len(lines) - len(good)
                tmp = path.with_name(path.name + ".tmp")
                with tmp.open("wb") as fh:
                    fh.write(b"".join(line + b"\n" for line in good))
                    fh.flush()
                    os.fsync(fh.fileno())
                tmp.replace(path)
        self._fh = path.open("a", encoding="utf-8")

    def write(self, rec: Record) -> None:
        """Append ``rec`` (it must have a ``key``)."""
        if not isinstance(rec.get("key"), str):
            raise ValueError(f"a record needs a string `key`, got {rec.get('key')!r}")
        self._fh.write(json.dumps(rec, sort_keys=True) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- output folder


def check_out_dir(out: str | Path, option: str = "--out") -> Path:
    r"""
    ``out`` as a Path, after checking that it is (or can become) a folder: refuses an
    ``out`` that is a regular file or lies under one, naming ``option``.
    """
    out = Path(out)
    for p in (out, *out.parents):
        if p.exists():
            if not p.is_dir():
                where = "is" if p == out else f"lies under {p}, which is"
                raise ValueError(f"`{option}` {out} {where} a file, not a folder; choose another")
            break
    return out


class RunLock:
    r"""
    An exclusive lock on an output folder, held while a run writes into it.

    Uses ``fcntl.flock`` on ``out/.lock``: the operating system releases it when the
    holding process exits or is killed (``kill -9`` included), so a lock never goes
    stale. The file records the holder's pid for the message. Where ``fcntl`` does
    not exist (Windows) the lock is a no-op.

    Raises:
        RuntimeError: On ``__enter__``, when another process holds the lock.
    """

    def __init__(self, out: str | Path) -> None:
        self.path = Path(out) / LOCK_FILE
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise RuntimeError(
                f"{self.path.parent} is in use by another evaluate process (pid {holder}); "
                "wait for it to finish or use another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


# --------------------------------------------------------------------------- run configuration


def read_config(out: str | Path) -> dict[str, Any] | None:
    """The stored configuration of ``out``, or None when there is none (or it is unreadable,
    with a :class:`RecordWarning`)."""
    path = Path(out) / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        config = None
    if not isinstance(config, dict):
        warnings.warn(f"{path} is unreadable; it is rewritten", RecordWarning, stacklevel=2)
        return None
    return config


def _option(key: str, options: Mapping[str, str]) -> str:
    return options.get(key, "--" + key.replace("_", "-"))


def check_config(
    out: str | Path,
    config: Mapping[str, Any],
    keys: Iterable[str],
    *,
    options: Mapping[str, str] | None = None,
    merge: Sequence[str] = ("methods",),
) -> dict[str, Any]:
    r"""
    ``config`` checked against the configuration stored in ``out``.

    Args:
        out (str or Path): The output folder.
        config (Mapping): This run's configuration (JSON values).
        keys (iterable of str): The entries that change a record: a stored value that
                    differs refuses the run (a key that the stored configuration lacks, as
                    in runs of older versions, or that ``config`` lacks, because it is not
                    known yet, is not compared).
        options (Mapping, optional): Command-line spelling of a key, for the message.
                    Default: ``--`` + the key with ``_`` as ``-``.
        merge (sequence of str): List entries that accumulate (methods added to a run).

    Returns:
        dict: ``config`` with the ``merge`` entries joined to the stored ones, in order.

    Raises:
        ValueError: Naming every differing option with its stored and new value.
    """
    old = read_config(out)
    merged = dict(config)
    if old is None:
        return merged
    names = options or {}
    diff = [k for k in keys if k in old and k in config and old[k] != config[k]]
    if diff:
        what = ", ".join(f"{_option(k, names)} was {old[k]!r}, now {config.get(k)!r}" for k in diff)
        raise ValueError(
            f"{out} holds the records of another run ({what}); resume it with the same "
            "options, or use another --out"
        )
    for k in merge:
        if k in config:
            merged[k] = list(dict.fromkeys([*old.get(k, []), *config[k]]))
    return merged


def write_config(out: str | Path, config: Mapping[str, Any]) -> None:
    """Store ``config`` as ``out/config.json`` (atomically: written aside, then renamed)."""
    path = Path(out) / CONFIG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(dict(config), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
