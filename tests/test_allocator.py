"""keep_freed_memory: freed blocks are reused rather than faulted in again, and a user's own
malloc settings are left alone. Each case runs in a fresh process, whose allocator it changes."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator: Linux only")

# Blocks of 40-48 MiB, above the 32 MiB that glibc's own mmap threshold can adapt to.
_PAGE_FAULTS_OF_REPEATED_WORK = """
import resource, sys
import torch
from metantk_plugin.allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
def work():
    for _ in range(3):
        blocks = [torch.ones(mib * 2**20 // 4) for mib in (40, 48, 40)]
        del blocks
work()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
work()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
_PAGES_ALLOCATED = 3 * (40 + 48 + 40) * 2**20 // os.sysconf("SC_PAGE_SIZE")


def _page_faults(mode: str, **env: str) -> tuple[str, int]:
    """(what keep_freed_memory returned, minor page faults of the work done a second time)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    done = subprocess.run([sys.executable, "-c", _PAGE_FAULTS_OF_REPEATED_WORK, mode], capture_output=True,
                          text=True, env={**environment, **env}, check=True)
    applied, faults = done.stdout.split()
    return applied, int(faults)


def test_freed_blocks_are_reused_instead_of_faulted_in_again():
    applied, kept = _page_faults("keep")
    _, plain = _page_faults("plain")
    assert applied == "True"
    assert plain >= _PAGES_ALLOCATED  # glibc's default: every block comes back as fresh pages
    assert kept < _PAGES_ALLOCATED / 2  # most are reused (a block freed just below a larger request is not)


@pytest.mark.parametrize("variable, value", [("MALLOC_ARENA_MAX", "2"),
                                             ("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0")])
def test_malloc_settings_of_the_environment_are_left_alone(variable, value):
    applied, faults = _page_faults("keep", **{variable: value})
    assert applied == "False"
    assert faults >= _PAGES_ALLOCATED
