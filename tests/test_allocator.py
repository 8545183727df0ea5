"""keep_freed_memory: a freed block stays with the process for reuse instead of going back to
the system, and a user's own malloc settings are left alone. Each case runs in a fresh process,
whose allocator it changes. Measured as resident memory (not page faults, which transparent huge
pages would make few either way)."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator: Linux only")

# A 48 MiB block, above the 32 MiB that glibc's own mmap threshold can adapt to: by default it
# is mapped for itself and unmapped when freed.
_RESIDENT_AFTER_FREEING = """
import os, sys
import torch
from metantk_plugin.allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
def resident():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
before = resident()
block = torch.ones(48 * 2**20 // 4)
del block
print(applied, resident() - before)
"""
_MIB = 2**20


def _resident_growth(mode: str, **env: str) -> tuple[str, int]:
    """(what keep_freed_memory returned, bytes still resident after a 48 MiB block was freed)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    done = subprocess.run([sys.executable, "-c", _RESIDENT_AFTER_FREEING, mode], capture_output=True,
                          text=True, env={**environment, **env}, check=True)
    applied, growth = done.stdout.split()
    return applied, int(growth)


def test_a_freed_block_stays_for_reuse():
    applied, kept = _resident_growth("keep")
    _, plain = _resident_growth("plain")
    assert applied == "True"
    assert kept >= 40 * _MIB  # still resident, so the next evaluation finds it without faulting it in
    assert plain < 8 * _MIB  # glibc's default: unmapped on free


@pytest.mark.parametrize("variable, value", [("MALLOC_ARENA_MAX", "2"),
                                             ("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0")])
def test_malloc_settings_of_the_environment_are_left_alone(variable, value):
    applied, growth = _resident_growth("keep", **{variable: value})
    assert applied == "False"
    assert growth < 8 * _MIB
