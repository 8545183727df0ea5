"""Freed memory kept for reuse in a long scoring process (glibc's allocator only).

Scoring a network allocates and frees the same few GB of activations at every evaluation.
glibc serves each block above its mmap threshold (128 KiB, adapting up to 32 MiB) with
fresh pages and hands them back on free, and trims the top of its heap, so every evaluation
page-faults its activations in again: one MetaNTK score of the C=48, 5-cell DARTS supernet on
one thread took about 500,000 minor page faults and 1 s of system time. Raising both
thresholds keeps the freed blocks in the heap for the next evaluation; the process then holds
on to its peak memory until it ends.

The worker processes of ``--executor processes`` and the ``metantk`` command call
:func:`keep_freed_memory`; a library user may call it in their own process. It leaves the
allocator alone where malloc is already tuned through the environment (``MALLOC_*``,
``GLIBC_TUNABLES``) and where there is no glibc.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_THRESHOLD_BYTES = 2**31 - 1  # mallopt takes a C int


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds to 2 GiB, so freed blocks are reused rather than
    returned to the system. True when done; False where there is no glibc, or where the
    environment tunes malloc already (then nothing is changed)."""
    if not sys.platform.startswith("linux"):
        return False
    if any(name.startswith("MALLOC_") for name in os.environ) or "glibc.malloc" in os.environ.get(
            "GLIBC_TUNABLES", ""):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - glibc's own symbol: not musl or another libc
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _THRESHOLD_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, _THRESHOLD_BYTES))
