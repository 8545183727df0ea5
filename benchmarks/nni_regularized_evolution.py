"""NNI's RegularizedEvolution on NNI's NAS-Bench-201 space, scored by MetaNTK instead of training.

Runs an in-process NNI experiment (no web server) for ``--trials`` architectures; each
is scored by :class:`~metantk_plugin.integrations.nni.ProxyEvaluator` (-log MetaNTK
condition number, higher is better). The architecture NNI ranks first is looked up in
the NAS-Bench-201 ground truth (the shared table by default), next to the mean and the
best accuracy of everything the search evaluated and its percentile among all 15,625
cells. Prints a table; writes JSON (and a PNG of score vs. accuracy) under
benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from tqdm.auto import tqdm

from metantk_plugin.atomic_files import write_file_atomically
from metantk_plugin.cli_options import add_dataclass_arguments
from metantk_plugin.integrations.nni import (
    INVALID_SCORE,
    ProxyEvaluator,
    nb201_ground_truth,
    sample_to_string,
    sequential_config,
)
from metantk_plugin.integrations.nni._require import require_nni
from metantk_plugin.proxies import available_proxies
from metantk_plugin.spaces.nasbench201 import NB201Arch
from metantk_plugin.task_spec import TaskSpec

RESULTS = Path(__file__).resolve().parent / "results"
ACCURACIES = (("cifar10", "test"), ("cifar100", "test"), ("imagenet16-120", "test"))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "example:\n"
            "  python benchmarks/nni_regularized_evolution.py --trials 50 --population 10 --sample-size 3\n"
            "  python benchmarks/nni_regularized_evolution.py --trials 8 --channels 4 --cells 1 --image-size 16 "
            "--output /tmp/re.json"
        ),
    )
    p.add_argument("--trials", type=int, default=50, help="budget: architectures NNI evaluates (default 50)")
    p.add_argument("--population", type=int, default=10, help="RegularizedEvolution population size (default 10)")
    p.add_argument("--sample-size", type=int, default=3, help="tournament size (default 3)")
    p.add_argument("--mutation-prob", type=float, default=0.5,
                   help="probability that a choice mutates (default 0.5; NNI's 0.05 barely moves in small budgets)")
    p.add_argument("--seed", type=int, default=0, help="seeds the strategy, the tasks and the proxy (default 0)")
    p.add_argument("--proxy", default="metantk",
                   help=f"registered proxy (default metantk): {', '.join(available_proxies())}")
    p.add_argument("--n-tasks", type=int, default=TaskSpec.n_tasks,
                   help=f"tasks per meta-batch (default {TaskSpec.n_tasks})")
    add_dataclass_arguments(p, TaskSpec, ["data", "ways", "shots", "queries", "image_size"])
    p.add_argument("--channels", type=int, default=16,
                   help="NasBench201 stem_out_channels (default 16, the benchmark's)")
    p.add_argument("--cells", type=int, default=5,
                   help="NasBench201 num_modules_per_stack (default 5, the benchmark's)")
    p.add_argument("--ground-truth", default=None,
                   help="accuracies: the shared CSV (default), 'nni' for NNI's database, or a .db/.csv path")
    p.add_argument("--device", default=None, help="device for the kernels, e.g. cuda (default cpu)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--workdir", default=None, help="keep NNI's logs and checkpoints here (default: a temporary folder)")
    p.add_argument("--output", type=Path, default=RESULTS / "nni_regularized_evolution.json",
                   help="JSON result file; a PNG with the same name is written beside it")
    p.add_argument("--force", action="store_true", help="overwrite an existing --output")
    p.add_argument("--json", action="store_true", help="print the JSON result instead of the table")
    p.add_argument("--verbose", action="store_true", help="show NNI's own log lines")
    return p


def _check(args: argparse.Namespace) -> None:
    for name in ("trials", "population", "sample_size", "threads", "n_tasks", "ways", "shots", "queries", "image_size",
                 "channels", "cells"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.sample_size > args.population:
        raise SystemExit(f"--sample-size {args.sample_size} exceeds --population {args.population}")
    if not 0 <= args.mutation_prob <= 1:
        raise SystemExit(f"--mutation-prob must lie in [0, 1], got {args.mutation_prob}")
    if args.output.exists() and not args.force:
        raise SystemExit(f"{args.output} exists; pass --force to overwrite it or choose another --output")


def run(args: argparse.Namespace) -> dict:
    nni = require_nni("nni")
    hub = require_nni("nni.nas.hub.pytorch")
    strategies = require_nni("nni.nas.strategy")
    execution = require_nni("nni.nas.execution")
    experiment_module = require_nni("nni.nas.experiment")
    if not args.verbose:
        nni.silence_stdout()
    truth = nb201_ground_truth(args.ground_truth)
    space = hub.NasBench201(stem_out_channels=args.channels, num_modules_per_stack=args.cells,
                            num_labels=args.ways)
    evaluator = ProxyEvaluator(
        args.proxy, tasks=args.data, n_tasks=args.n_tasks, task_seed=args.seed, seed=args.seed, device=args.device,
        task_options=dict(ways=args.ways, shots=args.shots, queries=args.queries, image_size=args.image_size),
    )
    bar = tqdm(total=args.trials, desc="RegularizedEvolution + MetaNTK", unit="arch")

    class WithProgress(strategies.RegularizedEvolution):
        def _initialize(self, model_space, engine):
            engine.register_model_event_callback(execution.ModelEventType.TrainingEnd, lambda event: bar.update(1))
            return super()._initialize(model_space, engine)

    strategy = WithProgress(population_size=args.population, sample_size=args.sample_size,
                            mutation_prob=args.mutation_prob, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="metantk-nni-") as scratch:
        config = sequential_config(args.trials, args.workdir or scratch)
        exp = experiment_module.NasExperiment(space, evaluator, strategy, config)
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # degenerate kernels are scored INVALID_SCORE
                exp.run()
            seconds = time.perf_counter() - start
            models = [m for m in strategy.list_models(sort=False) if m.metric is not None]
            best = exp.export_top_models(top_k=1, formatter="dict")[0]
        finally:
            exp.stop()
    bar.close()
    return _summary(args, truth, models, best, seconds)


def _summary(args, truth, models, best, seconds) -> dict:
    trials = []
    for m in models:
        arch = NB201Arch.from_nni(m.sample)
        row = {"arch": arch.to_string(), "index": arch.index, "score": m.metric,
               "raw": m.metrics.intermediates[0] if m.metrics.intermediates else None}
        row.update({f"{d}_{s}": truth.accuracy(arch, dataset=d, split=s) for d, s in ACCURACIES})
        trials.append(row)
    chosen = next(t for t in trials if t["arch"] == sample_to_string(best))
    report = {}
    for d, s in ACCURACIES:
        key = f"{d}_{s}"
        every = truth.accuracies(dataset=d, split=s).to_numpy()
        evaluated = np.array([t[key] for t in trials])
        scores = np.array([t["score"] for t in trials])
        rho = spearmanr(scores, evaluated).statistic if len(set(scores)) > 1 else math.nan
        report[key] = {
            "chosen": chosen[key],
            "chosen_percentile": float(100 * np.mean(every <= chosen[key])),
            "evaluated_mean": float(evaluated.mean()),
            "evaluated_best": float(evaluated.max()),
            "benchmark_best": float(every.max()),
            "spearman_score_vs_accuracy": float(rho),
        }
    return {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "ground_truth": truth.description,
        "chosen": {"arch": chosen["arch"], "index": chosen["index"], "sample": best, "score": chosen["score"],
                   "raw": chosen["raw"]},
        "accuracy": report,
        "trials": trials,
        "seconds": seconds,
        "seconds_per_trial": seconds / max(len(trials), 1),
        "torch_threads": torch.get_num_threads(),
    }


def _table(result: dict) -> str:
    c = result["chosen"]
    lines = [
        f"chosen after {len(result['trials'])} trials ({result['seconds']:.1f} s): {c['arch']} "
        f"(index {c['index']}, score {c['score']:.4f})",
        f"{'accuracy (%)':<24}{'chosen':>8}{'pctile':>8}{'mean':>8}{'best':>8}{'bench':>8}{'rho':>7}",
        f"{'':<24}{'':>8}{'all':>8}{'eval.':>8}{'eval.':>8}{'best':>8}{'':>7}",
    ]
    for key, r in result["accuracy"].items():
        lines.append(f"{key:<24}{r['chosen']:>8.2f}{r['chosen_percentile']:>8.1f}{r['evaluated_mean']:>8.2f}"
                     f"{r['evaluated_best']:>8.2f}{r['benchmark_best']:>8.2f}{r['spearman_score_vs_accuracy']:>7.2f}")
    return "\n".join(lines)


def _plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials = [t for t in result["trials"] if t["score"] > INVALID_SCORE]
    invalid = len(result["trials"]) - len(trials)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.scatter([t["score"] for t in trials], [t["cifar10_test"] for t in trials], s=14,
               label="evaluated" + (f" ({invalid} degenerate not shown)" if invalid else ""))
    chosen = next(t for t in result["trials"] if t["arch"] == result["chosen"]["arch"])
    ax.scatter([chosen["score"]], [chosen["cifar10_test"]], s=80, marker="*", color="C3", label="chosen")
    ax.set_xlabel(f"{result['settings']['proxy']} score (higher is better)")
    ax.set_ylabel("CIFAR-10 test accuracy (%)")
    ax.set_title(f"RegularizedEvolution, {len(result['trials'])} NAS-Bench-201 cells")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _check(args)
    torch.set_num_threads(args.threads)
    result = run(args)
    write_file_atomically(args.output, json.dumps(result, indent=2))
    _plot(result, args.output.with_suffix(".png"))
    print(json.dumps(result, indent=2) if args.json else _table(result))
    print(f"wrote {args.output} and {args.output.with_suffix('.png')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
