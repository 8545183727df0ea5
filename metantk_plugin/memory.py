"""Sizes that cannot fit in memory are refused before anything is allocated.

Asking for ``--ways 1000000`` or ``--channels 100000000`` would otherwise make the
allocator fail (at best) or the system kill the process (at worst, after filling swap).
:func:`check_fits` compares a lower bound of what a run needs with the machine's memory;
being a lower bound, it never refuses a run that could fit.
"""

from __future__ import annotations

import os

__all__ = ["check_fits", "kernel_run_bytes", "physical_memory"]


def physical_memory() -> int | None:
    """Bytes of physical memory, or None where the platform does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def kernel_run_bytes(*, samples: int, image_channels: int, image_size: int, channels: int, cells: int,
                     kernel: bool) -> dict[str, int]:
    """Lower bounds, in bytes, of what scoring one network on ``samples`` task images
    needs: the float32 images, one float32 3x3 convolution of ``channels`` per cell, and
    when ``kernel``, the float64 kernel between all samples."""
    needs = {
        f"{samples:,} images of {image_channels} x {image_size} x {image_size}":
            4 * samples * image_channels * image_size * image_size,
        f"the weights of {cells:,} cells of {channels:,} channels": 4 * 9 * channels * channels * cells,
    }
    if kernel:
        needs[f"the {samples:,} x {samples:,} kernel of the task samples"] = 8 * samples * samples
    return needs


def check_fits(needs: dict[str, int], *, advice: str) -> None:
    """ValueError naming the largest need when the needs (bytes, keyed by what needs them)
    add up to more than the machine's memory; ``advice`` says which options to lower."""
    available = physical_memory()
    total = sum(needs.values())
    if available is None or total <= available:
        return
    largest = max(needs, key=needs.get)
    raise ValueError(
        f"these sizes need at least {_gigabytes(total)} of memory ({largest}: {_gigabytes(needs[largest])}), "
        f"but this machine has {_gigabytes(available)}; {advice}"
    )


def _gigabytes(count: int) -> str:
    return f"{count / 2**30:,.1f} GiB"
