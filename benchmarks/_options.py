"""Options every scoring benchmark takes: how to run it and where its files go."""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

from metantk_plugin.atomic_files import write_file_atomically
from metantk_plugin.scoring.executors import EXECUTORS

BENCHMARKS = Path(__file__).resolve().parent


def _int_in(text: str, low: int, high: int | None, expected: str) -> int:
    """``text`` as an int in ``[low, high)``; an argparse usage error naming it and ``expected`` otherwise."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if value < low or (high is not None and value >= high):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    return _int_in(text, 1, None, "an integer >= 1")


def seed(text: str) -> int:
    """argparse type: a seed, an integer in [0, 2**63) (what torch.manual_seed takes)."""
    return _int_in(text, 0, 2**63, "a seed, an integer in [0, 2**63)")


def paired_speedup(slower: list[float], faster: list[float]) -> tuple[float, float, float]:
    """Median, first and third quartile of the paired ratios ``slower[i] / faster[i]`` (one pair
    per interleaved repeat): the speed-up of the ``faster`` side and its spread."""
    ratios = [s / f for s, f in zip(slower, faster)]
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    return statistics.median(ratios), quartiles[0], quartiles[2]


def existing_file(text: str) -> Path:
    """argparse type: a path that is a readable file."""
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text} is not a file")
    return path


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """``--executor --workers --work --results --force``."""
    parser.add_argument("--executor", default="local", choices=EXECUTORS)
    parser.add_argument("--workers", type=positive_int)
    parser.add_argument("--work", type=Path, default=BENCHMARKS / "work", help="folder of the resumable score files")
    parser.add_argument("--results", type=Path, default=BENCHMARKS / "results", help="folder of the results")
    parser.add_argument("--force", action="store_true", help="replace existing result files")


def write_result_files(json_path: str | os.PathLike, result: dict, text: str) -> None:
    """``result`` as JSON at ``json_path`` and the markdown ``text`` beside it (``.md``), each atomically."""
    path = Path(json_path)
    write_file_atomically(path, json.dumps(result, indent=1))
    write_file_atomically(path.with_suffix(".md"), text)
