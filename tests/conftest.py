"""Shared fixtures. Data from ../shared/data is read in place; when it is missing the
tests that need it fail under CI (env CI set) and are skipped elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ../shared/data folder beside the repository."""
    if not SHARED_DATA.is_dir():
        message = f"shared data folder {SHARED_DATA} is missing"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI is set, so this is an error, not a skip)")
        pytest.skip(message)
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _deterministic_threads():
    """Keep every test on one intra-op thread: results do not depend on scheduling and
    parallel test workers do not oversubscribe the cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
