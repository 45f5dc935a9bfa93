"""The ``captum-gfi`` commands make glibc's ``malloc`` keep freed memory: a loop that
allocates and frees the same large tensor then faults its pages in once, not every time.

``mallopt`` changes the whole process, so each measurement runs in a subprocess."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from captum_gfi import _malloc

LOOP = """
import resource, sys, torch
from captum_gfi._malloc import keep_freed_memory
print(keep_freed_memory())
for _ in range(10):  # glibc settles after a few rounds
    x = torch.ones(16 * 2**20)  # 64 MiB: glibc would mmap it
    del x
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(30):
    x = torch.ones(16 * 2**20)
    del x
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def _faults(env: dict[str, str]) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", LOOP], env={**os.environ, **env},
                         capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    return out[0], int(out[1])


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt")
def test_freed_tensors_are_reused_without_new_page_faults() -> None:
    changed, kept = _faults({})
    opted_out, default = _faults({"CAPTUM_GFI_MALLOC": "default"})
    assert (changed, opted_out) == ("True", "False")
    pages = 16 * 2**20 * 4 // 4096  # of one 64 MiB tensor
    assert default >= 25 * pages  # every allocation faulted in again
    assert kept < pages  # reused: no page is faulted in again


def test_nothing_changes_off_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "libc_ver", lambda *a, **k: ("musl", "1.2"))
    assert _malloc.keep_freed_memory() is False
    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    assert _malloc.keep_freed_memory() is False


def test_the_commands_keep_freed_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    from captum_gfi import cli

    calls: list[bool] = []
    monkeypatch.setattr(_malloc, "keep_freed_memory", lambda: calls.append(True) or True)
    assert cli.main(["evaluate", "--dataset", "composites", "--num-cases", "0"]) == 2
    assert calls == [True]
