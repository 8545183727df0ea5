"""Shared by the NNI tests: import an NNI module, failing under CI and skipping elsewhere."""

from __future__ import annotations

import os

import pytest


def require_nni_module(module: str):
    """The imported NNI ``module``; a test failure when NNI is missing and ``CI`` is set, else a skip."""
    from metantk_plugin.integrations.nni._require import require_nni

    try:
        return require_nni(module)
    except ImportError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"NNI is not installed but CI is set: {exc}")
        pytest.skip(str(exc))
