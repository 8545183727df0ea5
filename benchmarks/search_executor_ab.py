"""Where the DARTS search scores its candidates, side by side in one run (issue 16): this
process with all its torch threads against a pool of worker processes of 1 thread each.

The workload is the first round of the full-size search of ``configs/darts_full_search.json``
(C=48, 5 cells, Omniglot tasks at 32x32, all 7 operations on every edge): its first repeat's
setting, the origin and the first ``--candidates`` candidates, scored (MetaNTK condition
number and linear regions) exactly as ``metantk search`` scores them. Each side is warmed up
once (the pool started, both networks built in every worker), then the sides are timed in
turn, the side that goes first alternating, ``--repeats`` times. Reported: the median
seconds per evaluation of each side, the median of the paired ratios (this process /
pool: the speed-up of the pool) with its quartiles, and whether both sides gave the same
scores (in their last bits they depend on the thread count).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/search_executor_ab.py --repeats 3

Writes benchmarks/results/search_executor_ab.{json,md} (refusing to replace them without --force).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import sys
import time

import torch
from _options import BENCHMARKS, existing_file, paired_speedup, positive_int, write_result_files
from darts_full_search import CONFIG, SHARED

from metantk_plugin.data.sources import task_sampler_from_spec
from metantk_plugin.scoring.executors import LocalExecutor, ProcessExecutor
from metantk_plugin.search import SearchSettings
from metantk_plugin.search.darts_space import DartsFewshotSearchSpace
from metantk_plugin.search.pruning import Candidate, _crop_pool, _repeat_setting, _Scorer, _with_removed
from metantk_plugin.spaces.mixed_edges import active_operations


def workload(config: dict, candidates: int):
    """(settings, the round-1 repeat-0 setting, its origin + first ``candidates`` trials)."""
    space = DartsFewshotSearchSpace(channels=config["channels"], cells=config["cells"])
    settings = SearchSettings(repeats=config["repeats"], n_tasks=config["tasks"], seed=config["seed"])
    sampler = task_sampler_from_spec(config["data"].format(shared=SHARED), split="train",
                                     image_size=config["image_size"], seed=config["seed"])
    alphas = space.initial_alphas()
    setting = _repeat_setting(space, sampler, settings, alphas, 0, 0, _crop_pool(sampler, settings))
    cands = [Candidate(c, e, space.op_names[o]) for c in space.cell_types
             for e, ops in enumerate(active_operations(alphas[c])) for o in ops][:candidates]
    trials = [("origin", alphas)] + [(f"{c.cell}/{c.edge}/{c.op}",
                                      _with_removed(alphas, c, space.op_names.index(c.op))) for c in cands]
    return settings, setting, trials


def timed(scorer: _Scorer, setting, trials) -> tuple[float, list[tuple[float, float]]]:
    start = time.perf_counter()
    scores = list(scorer.trials(setting, trials))
    return time.perf_counter() - start, scores


def markdown(r: dict) -> str:
    local, pool = r["sides"]
    lines = [
        "# Where the DARTS search scores its candidates",
        "",
        f"Round 1 of the full-size search (C={r['config']['channels']}, {r['config']['cells']} cells), "
        f"the origin and {r['candidates']} candidates per timing, {r['repeats']} interleaved repeats; "
        f"{r['cpus']} CPUs ({r['machine']}), torch {r['torch']}.",
        "",
        "| side | seconds per evaluation (median) |",
        "|---|---|",
        f"| {local} | {r['seconds_per_evaluation'][local]:.2f} |",
        f"| {pool} | {r['seconds_per_evaluation'][pool]:.2f} |",
        "",
        f"Speed-up of the pool: **{r['speedup']:.2f}x** [{r['speedup_quartiles'][0]:.2f}, "
        f"{r['speedup_quartiles'][1]:.2f}] (median of paired ratios [quartiles]); largest relative "
        f"difference of a condition number between the sides: {r['largest_kappa_difference']:.1e}.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=existing_file, default=CONFIG)
    parser.add_argument("--candidates", type=positive_int, default=9,
                        help="candidates per timing (default 9: with the origin, 10 evaluations, which 2 workers "
                             "share evenly; an odd count leaves one worker idle at the end, against the pool)")
    parser.add_argument("--workers", type=positive_int, default=2, help="worker processes of the pool (default 2)")
    parser.add_argument("--repeats", type=positive_int, default=3)
    parser.add_argument("--results", default=str(BENCHMARKS / "results"))
    parser.add_argument("--force", action="store_true", help="replace existing result files")
    args = parser.parse_args(argv)
    out = os.path.join(args.results, "search_executor_ab.json")
    if os.path.exists(out) and not args.force:
        parser.error(f"{out} exists; pass --force to replace it")
    signal.signal(signal.SIGINT, signal.default_int_handler)  # started in the background, SIGINT is ignored
    config = json.loads(args.config.read_text())
    settings, setting, trials = workload(config, args.candidates)
    local_name = f"this process, {torch.get_num_threads()} threads"
    pool_name = f"{args.workers} worker processes, 1 thread each"
    seconds: dict[str, list[float]] = {local_name: [], pool_name: []}
    kappas: dict[str, list[float]] = {}
    try:
        with ProcessExecutor(args.workers) as pool:
            scorers = {local_name: _Scorer(settings, LocalExecutor()), pool_name: _Scorer(settings, pool)}
            for scorer in scorers.values():  # warm-up: the pool started, the networks built everywhere
                list(scorer.trials(setting, trials[: max(2, args.workers)]))
            for repeat in range(args.repeats):
                order = list(scorers) if repeat % 2 == 0 else list(reversed(scorers))
                for name in order:
                    took, scores = timed(scorers[name], setting, trials)
                    seconds[name].append(took / len(trials))
                    kappas[name] = [k for k, _ in scores]
                    print(f"repeat {repeat + 1}/{args.repeats}: {name}: {seconds[name][-1]:.2f} s per evaluation",
                          flush=True)
    except KeyboardInterrupt:
        print("search_executor_ab.py: interrupted; nothing was written", file=sys.stderr)
        return 130
    speedup, q1, q3 = paired_speedup(seconds[local_name], seconds[pool_name])
    result = {
        "config": config, "candidates": args.candidates, "repeats": args.repeats, "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "sides": [local_name, pool_name], "seconds": seconds,
        "seconds_per_evaluation": {k: statistics.median(v) for k, v in seconds.items()},
        "speedup": speedup, "speedup_quartiles": [q1, q3],
        "largest_kappa_difference": max(abs(a - b) / max(abs(a), 1e-300)
                                        for a, b in zip(kappas[local_name], kappas[pool_name])),
    }
    text = markdown(result)
    print(text)
    write_result_files(out, result, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
