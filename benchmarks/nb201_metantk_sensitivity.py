"""Sensitivity of MetaNTK's rank correlation on NAS-Bench-201 to its settings (number of
tasks, ways, queries, inner_lr_time, ridge reg, network width, seed), one change at a
time from the benchmark's configuration, on a small seeded sample of cells.

    python benchmarks/nb201_metantk_sensitivity.py --workers 2

Writes benchmarks/results/nb201_metantk_sensitivity.{md,json}; score files (one per
setting) go to benchmarks/work/ and are resumed when the script is run again.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path

import torch
from _options import add_run_options

from metantk_plugin import __version__
from metantk_plugin.commands import parse_option_value
from metantk_plugin.scoring.architectures import select_architectures
from metantk_plugin.scoring.report import correlate_score_file
from metantk_plugin.scoring.run import score_architectures
from metantk_plugin.scoring.settings import ScoreSettings
from metantk_plugin.scoring.store import read_scores

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CONFIG = REPO / "benchmarks" / "configs" / "nb201_metantk_sensitivity.json"


def settings_for(config: dict, change: dict) -> ScoreSettings:
    s = {**config["base"], **change}
    options = {"inner_lr_time": parse_option_value(str(s["inner_lr_time"])), "reg": float(s["reg"])}
    return ScoreSettings(proxies=("metantk",), data=config["data"].format(shared=SHARED), n_tasks=s["tasks"],
                         ways=s["ways"], shots=s["shots"], queries=s["queries"], channels=s["channels"],
                         seed=s["seed"], proxy_options={"metantk": options})


def label(change: dict) -> str:
    return "baseline" if not change else ", ".join(f"{k} = {v}" for k, v in change.items())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=CONFIG)
    add_run_options(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    config = json.loads(args.config.read_text())
    outputs = {ext: args.results / f"{args.config.stem}.{ext}" for ext in ("md", "json")}
    if any(p.exists() for p in outputs.values()) and not args.force:
        print(f"refusing to replace {outputs['md']} / .json; pass --force", file=sys.stderr)
        return 2
    archs = select_architectures("nb201", config["archs"])[: config["cells"]]
    args.work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows = []
    for i, change in enumerate([{}, *config["variations"]]):
        settings = settings_for(config, change)
        path = args.work / f"{args.config.stem}_{i:02d}.h5"
        score_architectures(settings, archs, path, executor=args.executor, workers=args.workers, progress=False)
        report = correlate_score_file(path, datasets=config["datasets"], split=config["metric"],
                                      epochs=config["epochs"], n_bootstrap=config["bootstrap"])
        table = read_scores(path, times=True)
        row = {"setting": label(change), "change": change, "cells": len(table),
               "infinite_scores": int((~table["metantk"].apply(math.isfinite)).sum()),
               "seconds_per_cell": float(table["seconds_metantk"].mean()),
               "results": [r.to_dict() for r in report.results]}
        rows.append(row)
        print(f"{row['setting']:>24}: " + "  ".join(f"{r.target} ρ={r.spearman:+.3f}" for r in report.results),
              flush=True)
    wall = time.perf_counter() - start
    command = "python benchmarks/nb201_metantk_sensitivity.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    args.results.mkdir(parents=True, exist_ok=True)
    outputs["json"].write_text(json.dumps({"command": command, "config": config, "wall_seconds": wall,
                                           "rows": rows}, indent=2) + "\n")
    outputs["md"].write_text(markdown(config, rows, command, wall))
    print(outputs["md"].read_text())
    return 0


def markdown(config: dict, rows: list, command: str, wall: float) -> str:
    targets = config["datasets"]

    def cell(result: dict) -> str:
        lo, hi = result["spearman_ci"]
        return f"{result['spearman']:+.3f} [{lo:+.2f}, {hi:+.2f}]" if result["spearman"] is not None else "nan"

    lines = [
        "# MetaNTK on NAS-Bench-201: sensitivity to its settings",
        "",
        config["description"],
        "",
        f"Command: `{command}` (this invocation: {wall:.0f} s on the shared 2-core machine; cells already in "
        "the score files are reused, not recomputed; s/cell gives the scoring cost). "
        f"{config['cells']} cells; Spearman ρ of −MetaNTK condition number with the 200-epoch "
        f"{config['metric']} accuracy, percentile 95% intervals from {config['bootstrap']} bootstrap resamples. "
        "`infinite` counts cells whose MetaNTK is singular (κ = inf; ranked last).",
        "",
        "| setting | " + " | ".join(f"ρ {t} [95% CI]" for t in targets) + " | infinite | s/cell |",
        "|---|" + "---:|" * len(targets) + "---:|---:|",
    ]
    for row in rows:
        by_target = {r["target"]: r for r in row["results"]}
        lines.append(f"| {row['setting']} | " + " | ".join(cell(by_target[t]) for t in targets)
                     + f" | {row['infinite_scores']} | {row['seconds_per_cell']:.2f} |")
    lines += ["", f"metantk-plugin {__version__}, torch {torch.__version__}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
