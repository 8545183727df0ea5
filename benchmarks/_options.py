"""Options every scoring benchmark takes: how to run it and where its files go."""

from __future__ import annotations

import argparse
from pathlib import Path

from metantk_plugin.scoring.executors import EXECUTORS

BENCHMARKS = Path(__file__).resolve().parent


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """``--executor --workers --work --results --force``."""
    parser.add_argument("--executor", default="local", choices=EXECUTORS)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--work", type=Path, default=BENCHMARKS / "work", help="folder of the resumable score files")
    parser.add_argument("--results", type=Path, default=BENCHMARKS / "results", help="folder of the results")
    parser.add_argument("--force", action="store_true", help="replace existing result files")
