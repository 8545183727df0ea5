"""MetaNTK in reduced precision: does bf16 keep the ranking, and how much faster is it?

Every cell of the sample (``configs/reduced_precision.json``: the first 200 cells of
nb201_proxy_correlation's seed-0 sample, on its Omniglot tasks and weights) is scored with
``metantk`` twice, in float32 and under ``torch.autocast(dtype=bfloat16)`` (forward and
backward in bf16 where autocast chooses it; per-sample gradients cast to float32 before
their Gram matrices, see :mod:`metantk_plugin.kernels.ntk`), the two in alternating order.
The table gives Spearman ρ between the two scorings with its 95% bootstrap interval (the
bar: at least ``threshold``), each scoring's ρ with the NAS-Bench-201 accuracy, the median
relative change of the condition number, and the wall time of both, cell by cell, side by
side; then the few-shot DARTS supernet of ``speed.py``, timed both ways, interleaved.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/reduced_precision.py    # writes results/reduced_precision.{json,md}
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from _options import BENCHMARKS, existing_file
from nb201_frontier import _bootstrap_spearman
from nb201_proxy_correlation import settings_from_config
from speed import networks, synthetic_tasks
from tqdm import tqdm

from metantk_plugin import __version__
from metantk_plugin.atomic_files import write_file_atomically
from metantk_plugin.proxies import compute_proxy, resolve_proxy
from metantk_plugin.scoring.architectures import build_architecture, select_architectures
from metantk_plugin.scoring.correlation import oriented
from metantk_plugin.scoring.run import sample_tasks
from metantk_plugin.scoring.settings import architecture_seed
from metantk_plugin.spaces.nasbench201 import GroundTruth

CONFIG = BENCHMARKS / "configs" / "reduced_precision.json"


def _precision(dtype: torch.dtype | None):
    return torch.autocast("cpu", dtype=dtype) if dtype is not None else nullcontext()


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def _bootstrap(x: np.ndarray, y: np.ndarray, n: int) -> tuple[float, float, float]:
    rho, (low, high) = _bootstrap_spearman(x, y, n)
    return rho, low, high


def score_cells(config: dict, dtype: torch.dtype) -> dict:
    """Scores and seconds of every cell in float32 and in ``dtype``, alternating the order."""
    task = json.loads((BENCHMARKS / "configs" / config["task_settings"]).read_text())
    settings = settings_from_config({**task, "proxies": [config["proxy"]]})
    tasks = sample_tasks(settings)
    archs = select_architectures("nb201", config["archs"])
    rows = {"float32": ([], []), "reduced": ([], [])}
    for i, arch in enumerate(tqdm([archs[0], *archs], desc="cells", unit="cell")):  # the first warms up
        net = build_architecture("nb201", arch, norm=settings.norm_for(config["proxy"]), channels=settings.channels,
                                 cells=settings.cells, num_classes=settings.num_classes,
                                 in_channels=settings.image_channels, seed=architecture_seed(settings.seed, arch))
        order = ("float32", "reduced") if i % 2 else ("reduced", "float32")
        for key in order:
            with _precision(dtype if key == "reduced" else None):
                value, seconds = _timed(lambda net=net: compute_proxy(config["proxy"], net, tasks, seed=settings.seed))
            if i:
                rows[key][0].append(float(value) if math.isfinite(value) else None)  # None: a degenerate kernel
                rows[key][1].append(seconds)
    return {"archs": archs, **{k: {"scores": s, "seconds": t} for k, (s, t) in rows.items()}}


def darts_times(config: dict, dtype: torch.dtype) -> dict:
    name, factory = networks()["darts"]
    net = factory()
    tasks = synthetic_tasks(n_tasks=3, ways=5, shots=1, queries=1, image_size=32, seed=0)
    times: dict[str, list[float]] = {"float32": [], "reduced": []}
    values: dict[str, float] = {}
    keys = ["float32", "reduced"]
    for r in range(config["darts_repeats"] + 1):  # the first round warms up
        for key in keys if r % 2 == 0 else keys[::-1]:
            with _precision(dtype if key == "reduced" else None):
                value, seconds = _timed(lambda: compute_proxy(config["proxy"], net, tasks, seed=0))
            values[key] = float(value)
            if r:
                times[key].append(seconds)
    return {"network": name, "seconds": times, "scores": values}


def build_report(config: dict, cells: dict, darts: dict) -> dict:
    higher = resolve_proxy(config["proxy"]).higher_is_better
    full = np.asarray(cells["float32"]["scores"], dtype=np.float64)
    reduced = np.asarray(cells["reduced"]["scores"], dtype=np.float64)
    finite = np.isfinite(full) & np.isfinite(reduced)
    rho, low, high = _bootstrap(full[finite], reduced[finite], config["bootstrap"])
    truth = GroundTruth.open(None).accuracies(cells["archs"], dataset=config["dataset"], split=config["metric"],
                                              epochs=config["epochs"]).to_numpy(dtype=np.float64)
    with_truth = finite & np.isfinite(truth)
    accuracy = {key: _bootstrap(oriented(np.asarray(cells[key]["scores"], dtype=np.float64)[with_truth], higher),
                                truth[with_truth], config["bootstrap"]) for key in ("float32", "reduced")}
    change = np.abs(reduced[finite] - full[finite]) / np.abs(full[finite])
    t_full, t_reduced = np.asarray(cells["float32"]["seconds"]), np.asarray(cells["reduced"]["seconds"])
    d_full, d_reduced = (statistics.median(darts["seconds"][k]) for k in ("float32", "reduced"))
    return {
        "config": config, "package_version": __version__, "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
        "cells": int(finite.sum()), "cells_not_finite": int((~finite).sum()),
        "spearman_with_float32": {"rho": rho, "ci95": [low, high]},
        "ranking_holds": bool(rho >= config["threshold"]),
        "spearman_with_accuracy": {k: {"rho": v[0], "ci95": [v[1], v[2]]} for k, v in accuracy.items()},
        "median_relative_change": float(np.median(change)), "max_relative_change": float(change.max()),
        "nb201_seconds_per_cell": {"float32": float(t_full.mean()), "reduced": float(t_reduced.mean())},
        "nb201_speedup": float(np.median(t_full / t_reduced)),
        "darts": {**darts, "median_seconds": {"float32": d_full, "reduced": d_reduced}, "speedup": d_full / d_reduced},
    }


def markdown(report: dict) -> str:
    c = report["config"]
    s = report["spearman_with_float32"]
    acc = report["spearman_with_accuracy"]
    verdict = ("holds: kept as an option" if report["ranking_holds"] else
               f"does **not** hold (below {c['threshold']}), so bf16 is not offered as an option")
    return "\n".join([
        f"# MetaNTK in {c['dtype']} against float32",
        "",
        f"{report['cells']} NAS-Bench-201 cells ({c['archs']}, the tasks and weights of {c['task_settings']}; "
        f"{report['cells_not_finite']} left out for a degenerate kernel in either precision), "
        f"{report['threads']} torch threads, {report['machine']}, torch {report['torch']}. The bar: Spearman ρ "
        f"with float32 of at least {c['threshold']}. Intervals: 95% bootstrap over the cells.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| Spearman ρ, {c['dtype']} vs float32 scores | {s['rho']:.4f} [{s['ci95'][0]:.4f}, {s['ci95'][1]:.4f}] |",
        f"| ρ with {c['dataset']} accuracy, float32 | {acc['float32']['rho']:.3f} "
        f"[{acc['float32']['ci95'][0]:.3f}, {acc['float32']['ci95'][1]:.3f}] |",
        f"| ρ with {c['dataset']} accuracy, {c['dtype']} | {acc['reduced']['rho']:.3f} "
        f"[{acc['reduced']['ci95'][0]:.3f}, {acc['reduced']['ci95'][1]:.3f}] |",
        f"| relative change of the condition number, median (max) | {report['median_relative_change']:.3g} "
        f"({report['max_relative_change']:.3g}) |",
        f"| NB201 seconds per cell, float32 / {c['dtype']} | {report['nb201_seconds_per_cell']['float32']:.3f} / "
        f"{report['nb201_seconds_per_cell']['reduced']:.3f} (median ratio {report['nb201_speedup']:.2f}x) |",
        f"| {report['darts']['network']} seconds, float32 / {c['dtype']} | "
        f"{report['darts']['median_seconds']['float32']:.2f} / {report['darts']['median_seconds']['reduced']:.2f} "
        f"({report['darts']['speedup']:.2f}x, median of {c['darts_repeats']} interleaved) |",
        "",
        f"The ranking {verdict}.",
        "",
    ])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=existing_file, default=CONFIG)
    parser.add_argument("--results", type=Path, default=BENCHMARKS / "results")
    parser.add_argument("--force", action="store_true", help="replace existing result files")
    args = parser.parse_args(argv)
    config = json.loads(args.config.read_text())
    out = args.results / "reduced_precision.json"
    if out.exists() and not args.force:
        parser.error(f"{out} exists; pass --force to replace it")
    dtype = getattr(torch, config["dtype"], None)
    if not isinstance(dtype, torch.dtype) or dtype not in (torch.bfloat16, torch.float16):
        parser.error(f"config dtype must be 'bfloat16' or 'float16', got {config['dtype']!r}")
    torch.set_num_threads(config["threads"])
    cells = score_cells(config, dtype)
    darts = darts_times(config, dtype)
    report = build_report(config, cells, darts)
    text = markdown(report)
    print(text)
    args.results.mkdir(parents=True, exist_ok=True)
    write_file_atomically(out, json.dumps({**report, "scores": cells}, indent=1, allow_nan=False).encode())
    write_file_atomically(out.with_suffix(".md"), text.encode())
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
