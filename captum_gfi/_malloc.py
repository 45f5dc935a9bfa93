"""Keep the memory PyTorch frees inside the process (glibc), so that an optimisation loop
does not fault its tensors' pages in again on every step.

PyTorch allocates CPU tensors with the C library's ``malloc``. glibc serves large requests
with a fresh ``mmap`` and gives it back to the kernel on ``free``, and trims the heap when
enough is free at its top; every step of GFI (or of TorchRay's extremal perturbation) then
allocates its activations anew and the kernel zero-fills every page of them again: a
minor page fault per 4 KiB, which showed as system time above the user time of a run.
:func:`keep_freed_memory` turns both off for the process (``mallopt(M_MMAP_MAX, 0)``,
``mallopt(M_TRIM_THRESHOLD, 2**31 - 1)``): freed memory stays in ``malloc``'s heap and is
reused. The cost: the process keeps its peak memory until it exits.

The ``captum-gfi`` commands call it, and so do the repository's scripts that compute maps
(``scripts/``, ``research/``); a library call never does (it would change the whole
process). In your own script, set the same through the environment before Python starts::

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647 python my_script.py

``CAPTUM_GFI_MALLOC=default`` leaves ``malloc`` as it is for the commands too.
"""

from __future__ import annotations

import ctypes
import os
import platform

#: ``mallopt`` parameters (glibc's ``malloc.h``).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
#: the largest trim threshold ``mallopt``'s ``int`` takes: never trim in practice
TRIM_THRESHOLD = 2**31 - 1
#: set to this to leave ``malloc`` as it is
OPT_OUT = ("CAPTUM_GFI_MALLOC", "default")


def keep_freed_memory() -> bool:
    r"""
    On Linux with glibc, make ``malloc`` keep freed memory for reuse (see the module
    docstring); elsewhere, or with ``CAPTUM_GFI_MALLOC=default``, do nothing.

    Returns:
        bool: whether ``malloc``'s settings were changed.
    """
    if os.environ.get(OPT_OUT[0], "") == OPT_OUT[1]:
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    # mallopt returns 1 on success
    return bool(libc.mallopt(M_MMAP_MAX, 0) == 1 and
                libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)  # fmt: skip
