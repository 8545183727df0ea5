"""Our MAML against learn2learn's, side by side in one process (issue 16).

Protocol: the Omniglot anchor's (configs/omniglot_maml_anchor.json: Conv-4 with 112,261
parameters, 5-way 1-shot, 15 queries, inner lr 0.4, 1 inner step, 32 tasks per meta-batch,
BatchNorm on batch statistics, Adam 1e-3), with configs/maml_vs_learn2learn.json. Three
sides: ours with float32 query passes, ours with bfloat16 ones (``query_precision``: the
inner loop and the meta-gradient stay float32), and learn2learn (float32). All start from
the same weights (one Conv-4, copied) and see the same meta-batches of our sampler, drawn
before the clock starts. learn2learn 0.2.0 runs its canonical loop around the
copy: ``learner = maml.clone(); learner.adapt(support loss); query loss / T backward``, then
Adam. The same torch thread count serves both (``torch.set_num_threads``).

1. Gradient check: on the first meta-batch, the meta-gradient of each of our sides against
   learn2learn's (MAML and first-order MAML), the largest difference relative to the largest
   entry, stated beside each side's difference from a float64 meta-gradient (its rounding);
   the run stops if a difference passes the config's tolerance for that precision.
2. Timing: ``--iterations`` meta-steps of each side, interleaved (the side that goes first
   rotates), after ``warmup`` untimed ones; medians, quartiles and the ratios of the paired
   per-iteration times (learn2learn / ours: the speed-up). Interleaved with them, the
   query passes' convolutions alone in each precision (``QueryConvolutionFloor``): the
   floor every MAML pays, so learn2learn / floor bounds any speed-up over learn2learn.
   Then where one meta-step of ours spends its time, under ``torch.profiler``: the phases of
   the batched strategy (inner loops, query passes, the backward pass through the inner loops)
   and, in each, convolutions apart from the rest.
3. ``--accuracy``: 628 MAML / 763 first-order iterations of every side, interleaved (timed
   too), then meta-test accuracy (float32) with 95% intervals on 600 episodes.

    python benchmarks/maml_vs_learn2learn.py --iterations 20
    python benchmarks/maml_vs_learn2learn.py --accuracy --name maml_vs_learn2learn_accuracy

learn2learn comes from ``bash ../shared/vendor/learn2learn/install.sh VENV`` (the bench
env of tox.ini runs it). Writes benchmarks/results/<name>.json (refusing to replace it
without --force) and <name>.md, and prints the table.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import os
import platform
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch
from _options import existing_file, positive_int, seed
from _profiling import print_breakdown, time_breakdown
from omniglot_maml_anchor import build_samplers
from torch import nn
from torch.nn import functional as F

from metantk_plugin.atomic_files import write_file_atomically
from metantk_plugin.data.episodes import derive_seed
from metantk_plugin.data.errors import DatasetError
from metantk_plugin.fewshot.conv4 import Conv4
from metantk_plugin.fewshot.evaluation import evaluate_episodes
from metantk_plugin.fewshot.maml import (
    QUERY_PRECISIONS,
    STRATEGIES,
    MetaConfig,
    MetaLearner,
    meta_gradient,
    use_batch_statistics,
)
from metantk_plugin.fewshot.task_batched import on_worker_threads

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "configs" / "maml_vs_learn2learn.json"
ALGORITHMS = ("maml", "fomaml")


def import_learn2learn():
    try:
        import learn2learn
    except ImportError:
        raise SystemExit("learn2learn is not installed here: bash ../shared/vendor/learn2learn/install.sh "
                         "<this venv> (tox -e bench runs it)") from None
    return learn2learn


class Logits(nn.Module):
    """The same Conv-4 as a plain classifier, ``x -> logits``, for learn2learn."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)[1]


class Learn2LearnSide:
    """learn2learn's MAML around a copy of ``network``, with Adam, in its canonical loop."""

    def __init__(self, l2l, network: nn.Module, protocol: dict, algorithm: str):
        self.maml = l2l.algorithms.MAML(Logits(copy.deepcopy(network)), lr=protocol["inner_lr"],
                                        first_order=algorithm == "fomaml")
        self.optimizer = torch.optim.Adam(self.maml.parameters(), lr=protocol["meta_lr"])
        self.steps = protocol["inner_steps"]

    def accumulate(self, tasks) -> tuple[float, float]:
        """The meta-gradient into ``.grad``; the mean query (loss, accuracy) after adaptation."""
        loss_sum = accuracy_sum = 0.0
        for t in range(tasks.n_tasks):
            learner = self.maml.clone()
            for _ in range(self.steps):
                learner.adapt(F.cross_entropy(learner(tasks.support_x[t]), tasks.support_y[t]))
            logits = learner(tasks.query_x[t])
            loss = F.cross_entropy(logits, tasks.query_y[t])
            (loss / tasks.n_tasks).backward()
            loss_sum += float(loss.detach())
            accuracy_sum += float((logits.argmax(-1) == tasks.query_y[t]).float().mean())
        return loss_sum / tasks.n_tasks, accuracy_sum / tasks.n_tasks

    def meta_step(self, tasks) -> tuple[float, float]:
        result = self.accumulate(tasks)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return result

    def evaluate(self, tasks) -> torch.Tensor:
        accuracies = []
        for t in range(tasks.n_tasks):
            learner = self.maml.clone()
            for _ in range(self.steps):
                learner.adapt(F.cross_entropy(learner(tasks.support_x[t]), tasks.support_y[t]), first_order=True)
            with torch.no_grad():
                accuracies.append((learner(tasks.query_x[t]).argmax(-1) == tasks.query_y[t]).float().mean())
        return torch.stack(accuracies)


class QueryConvolutionFloor:
    """The convolutions of the query passes alone, in ``precision``: per task, the Conv-4's
    convolutions chained on its query images (forward, then the backward that a meta-gradient
    needs: weight gradients everywhere, input gradients past the first layer), channels_last
    as ours, the tasks in k chunks on torch's k threads as ours (one intra-op thread each).
    BatchNorm, ReLU, the head, the loss and the whole inner loop are left out, so every MAML
    that runs these convolutions in this precision takes at least this long, and learn2learn's
    time over it bounds any speed-up over learn2learn."""

    def __init__(self, network: nn.Module, precision: str):
        self.dtype = getattr(torch, precision)
        self.convolutions = [m for m in network.modules() if isinstance(m, nn.Conv2d)]
        self.weights = [m.weight.detach().to(self.dtype, memory_format=torch.channels_last).requires_grad_()
                        for m in self.convolutions]

    def meta_step(self, tasks) -> None:
        n, workers = tasks.n_tasks, min(torch.get_num_threads(), tasks.n_tasks)
        if workers == 1:
            self.tasks(tasks, range(n))
        else:
            on_worker_threads([functools.partial(self.tasks, tasks, range(i * n // workers, (i + 1) * n // workers))
                               for i in range(workers)])

    def tasks(self, tasks, indices: range) -> None:
        for t in indices:
            x = tasks.query_x[t].to(self.dtype, memory_format=torch.channels_last)
            for conv, weight in zip(self.convolutions, self.weights):
                x = F.conv2d(x, weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)
            torch.autograd.grad(x, self.weights, torch.ones_like(x))


PHASES = ("inner loops", "query passes", "backward through the inner loops")
OUTSIDE = "outside them (meta-optimiser, set-up)"


def phase_breakdown(named: dict, tasks) -> dict:
    """Per side of ours, the rows of ``_profiling.time_breakdown`` for one meta-step on ``tasks``,
    on one thread (torch.profiler does not see the worker threads of a k-thread step)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {name: time_breakdown(lambda side=side: side.meta_step(tasks), outside=OUTSIDE, detailed=PHASES)
                for name, side in named.items() if name.startswith("ours_")}
    finally:
        torch.set_num_threads(threads)


def phase_shares(rows: list[dict]) -> dict:
    """Share of each phase, and of the convolutions in all of them, of one profiled meta-step."""
    shares = {phase: sum(r["share"] for r in rows if r["phase"] == phase) for phase in (*PHASES, OUTSIDE)}
    shares["convolutions"] = sum(r["share"] for r in rows if "conv" in r["layer"])
    return shares


def ours_name(precision: str) -> str:
    return f"ours_{precision}"


def floor_name(precision: str) -> str:
    return f"floor_{precision}"


def sides(l2l, protocol: dict, algorithm: str, strategy: str, precisions: list[str]) -> dict:
    """Ours in each query precision, then learn2learn's, from one Conv-4 (BatchNorm on batch
    statistics): ``{"ours_float32": MetaLearner, ..., "learn2learn": Learn2LearnSide}``."""
    torch.manual_seed(protocol["seed"])
    network = use_batch_statistics(Conv4(num_classes=protocol["ways"], in_channels=1))
    out = {ours_name(precision): MetaLearner(copy.deepcopy(network), MetaConfig(
        algorithm=algorithm, inner_lr=protocol["inner_lr"], inner_steps=protocol["inner_steps"],
        meta_lr=protocol["meta_lr"], strategy=strategy, query_precision=precision)) for precision in precisions}
    out["learn2learn"] = Learn2LearnSide(l2l, network, protocol, algorithm)
    return out


def gradient_check(l2l, protocol: dict, tasks, algorithm: str, strategy: str, precisions: list[str]) -> dict:
    """Each side's meta-gradient on ``tasks``; per side of ours, its largest difference from
    learn2learn's; per side, its largest difference from a float64 one (``loop``): the
    rounding to expect. Differences are relative to the largest float64 entry."""
    named = sides(l2l, protocol, algorithm, strategy, precisions)
    theirs = named.pop("learn2learn")
    first = next(iter(named.values()))
    reference, _, _ = meta_gradient(copy.deepcopy(first.network).double(), tasks.to(dtype=torch.float64),
                                    replace(first.config, strategy="loop", query_precision="float32"))
    their_loss, their_accuracy = theirs.accumulate(tasks)
    names = [name for name, _ in first.network.named_parameters()]
    their_grads = dict(zip(names, (p.grad for p in theirs.maml.parameters())))
    scale = max(float(g.abs().max()) for g in reference.values())

    def largest(a: dict, b: dict) -> float:
        return max(float((a[name].double() - b[name].double()).abs().max()) for name in names) / scale

    check = {"max_abs_gradient": scale, "learn2learn": {"vs_float64": largest(their_grads, reference),
                                                        "loss": their_loss, "accuracy": their_accuracy}}
    for name, ours in named.items():
        grads, loss, accuracy = meta_gradient(ours.network, tasks, ours.config)
        check[name] = {"vs_learn2learn": largest(grads, their_grads), "vs_float64": largest(grads, reference),
                       "loss": loss, "accuracy": accuracy}
    return check


def interleaved(named: dict, batches, warmup: int, report_every: int = 0) -> dict:
    """Per-iteration wall and CPU seconds of every side, rotating which goes first; a line
    every ``report_every`` iterations if set."""
    times = {name: {"wall": [], "cpu": []} for name in named}
    order = list(named.items())
    for i, tasks in enumerate(batches):
        shift = i % len(order)
        for name, side in order[shift:] + order[:shift]:
            wall, cpu = time.perf_counter(), time.process_time()
            side.meta_step(tasks)
            if i >= warmup:
                times[name]["wall"].append(time.perf_counter() - wall)
                times[name]["cpu"].append(time.process_time() - cpu)
        if report_every and (i + 1) % report_every == 0:
            print(f"  {i + 1} iterations: " + ", ".join(f"{sum(t['wall']):.0f} s {name}" for name, t in times.items()),
                  flush=True)
    return times


def summary(times: dict) -> dict:
    """Medians and quartiles of each side, and of the paired ratios learn2learn / ours for
    each side of ours (``speedup``)."""
    def spread(values: list[float]) -> dict:
        q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
        return {"median": statistics.median(values), "q1": q[0], "q3": q[2], "min": min(values), "max": max(values)}

    out = {}
    for clock in ("wall", "cpu"):
        theirs = times["learn2learn"][clock]
        out[clock] = {name: spread(t[clock]) for name, t in times.items()}
        out[clock]["speedup"] = {name: spread([b / a for a, b in zip(t[clock], theirs)])
                                 for name, t in times.items() if name != "learn2learn"}
    return out


def lazy_batches(train, protocol: dict, iterations: int):
    for i in range(iterations):
        yield train.sample(protocol["meta_batch"], derive_seed(protocol["seed"], i))


def table(rows: dict, meta: dict) -> str:
    lines = [f"# MAML vs learn2learn, one process ({meta['threads']} thread(s), OMP_WAIT_POLICY "
             f"{meta['omp_wait_policy']}, strategy {meta['strategy']}, seed {meta['seed']}, load average at start "
             f"{meta['load_average']})", "",
             "| algorithm | our query passes | iterations | ours s/it (median [q1, q3]) | learn2learn s/it | speed-up "
             "(median of paired ratios [q1, q3]) | CPU-time speed-up | gradient difference from learn2learn / "
             "largest entry (from float64: ours, learn2learn) | query-convolution floor s/it | learn2learn / floor "
             "(the most any MAML running these convolutions can gain) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for algorithm, row in rows.items():
        wall, cpu, check = row["timing"]["wall"], row["timing"]["cpu"], row["gradient_check"]
        theirs = wall["learn2learn"]
        for name, speedup in wall["speedup"].items():
            if not name.startswith("ours_"):
                continue
            ours, precision = wall[name], name.removeprefix("ours_")
            floor, ceiling = wall.get(floor_name(precision)), wall["speedup"].get(floor_name(precision))
            bound = (f"{floor['median']:.3f} | {ceiling['median']:.2f}x [{ceiling['q1']:.2f}, {ceiling['q3']:.2f}]"
                     if floor else "– | –")
            lines.append(
                f"| {algorithm} | {precision} | {row['timed_iterations']} | {ours['median']:.3f} "
                f"[{ours['q1']:.3f}, {ours['q3']:.3f}] | {theirs['median']:.3f} "
                f"[{theirs['q1']:.3f}, {theirs['q3']:.3f}] | {speedup['median']:.2f}x "
                f"[{speedup['q1']:.2f}, {speedup['q3']:.2f}] | "
                f"{cpu['speedup'][name]['median']:.2f}x | {check[name]['vs_learn2learn']:.1e} "
                f"({check[name]['vs_float64']:.1e}, {check['learn2learn']['vs_float64']:.1e}) | {bound} |")
    lines += ["", "Where a meta-step of ours spends its time (shares of self CPU time under torch.profiler, one "
              "step on one thread, which the profiler sees whole). Profiling inflates small ops, the more so in "
              "the inner loops, which have the most of them: compare the profiled step's seconds with the median "
              "above.", "",
              "| algorithm | our query passes | " + " | ".join(PHASES) + f" | {OUTSIDE} | convolutions, in all | "
              "profiled step s |", "|---|---|---|---|---|---|---|---|"]
    for algorithm, row in rows.items():
        for name, breakdown in row.get("breakdown", {}).items():
            shares = phase_shares(breakdown)
            lines.append(f"| {algorithm} | {name.removeprefix('ours_')} | "
                         + " | ".join(f"{100 * shares[k]:.0f} %" for k in (*PHASES, OUTSIDE, "convolutions"))
                         + f" | {sum(r['seconds'] for r in breakdown):.3f} |")
    accuracy_rows = {a: r["accuracy"] for a, r in rows.items() if "accuracy" in r}
    if accuracy_rows:
        lines += ["", "| algorithm | side | iterations | meta-test accuracy (95 % interval) | episodes | speed-up over "
                  "learn2learn in the run (median of paired ratios [q1, q3]) |", "|---|---|---|---|---|---|"]
        for algorithm, r in accuracy_rows.items():
            speedups = r["timing"]["wall"]["speedup"]
            for name in [*speedups, "learn2learn"]:
                result, speedup = r[name], speedups.get(name)
                ratio = f"{speedup['median']:.2f}x [{speedup['q1']:.2f}, {speedup['q3']:.2f}]" if speedup else "1"
                lines.append(f"| {algorithm} | {name.replace('ours_', 'ours, ')} | {r['iterations']} | "
                             f"{100 * result['accuracy']:.2f} ± {100 * result['ci95']:.2f} % | {result['episodes']} | "
                             f"{ratio} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=existing_file, default=CONFIG)
    parser.add_argument("--data", type=Path, default=None, help="Omniglot folder (default: the anchor config's)")
    parser.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS), choices=ALGORITHMS)
    parser.add_argument("--iterations", type=positive_int, default=None, help="timed meta-iterations of each side "
                        "(default: the config's 20)")
    parser.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: the anchor's 1)")
    parser.add_argument("--strategy", default=None, choices=STRATEGIES, help="ours (default: the config's auto)")
    parser.add_argument("--query-precisions", nargs="+", default=None, choices=QUERY_PRECISIONS,
                        help="our sides (default: the config's float32 bfloat16)")
    parser.add_argument("--accuracy", action="store_true", help="also train both sides for 628 / 763 iterations "
                        "and compare meta-test accuracy (hours on one thread)")
    parser.add_argument("--episodes", type=positive_int, default=None, help="meta-test episodes (default: 600)")
    parser.add_argument("--seed", type=seed, default=None, help="seed of the initial weights, the meta-batches and "
                        "the meta-test episodes (default: the anchor's 0); other seeds give an accuracy's spread")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--name", default="maml_vs_learn2learn", help="file name stem of the results")
    parser.add_argument("--force", action="store_true", help="overwrite an existing result file")
    args = parser.parse_args()
    output = args.out / f"{args.name}.json"
    if output.exists() and not args.force:
        raise SystemExit(f"{output} exists; pass --force to overwrite it or --name to write elsewhere")
    l2l = import_learn2learn()

    config = json.loads(args.config.read_text())
    protocol = json.loads((args.config.parent / config["anchor"]).read_text())
    if args.seed is not None:
        protocol["seed"] = args.seed
    threads = args.threads or protocol["threads"]
    torch.set_num_threads(threads)
    strategy = args.strategy or config["strategy"]
    precisions = args.query_precisions or config["query_precisions"]
    iterations = args.iterations or config["timing"]["iterations"]
    warmup = config["timing"]["warmup"]
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    wait_policy = os.environ.get("OMP_WAIT_POLICY", "unset")  # learn2learn's intra-op threads depend on it
    try:
        train, test, counts = build_samplers(protocol, args.data or (HERE.parent / protocol["data"]))
    except DatasetError as error:
        parser.error(str(error))
    began = time.perf_counter()
    batches = list(lazy_batches(train, protocol, warmup + iterations))
    data_seconds = (time.perf_counter() - began) / len(batches)

    rows = {}
    for algorithm in args.algorithms:
        check = gradient_check(l2l, protocol, batches[0], algorithm, strategy, precisions)
        for precision in precisions:
            ours, tolerance = check[ours_name(precision)], config["gradient_tolerance"][precision]
            print(f"{algorithm}, {precision} queries: the meta-gradient differs from learn2learn's by at most "
                  f"{ours['vs_learn2learn']:.2e} of the largest entry (from float64: ours {ours['vs_float64']:.2e}, "
                  f"learn2learn {check['learn2learn']['vs_float64']:.2e})", flush=True)
            if ours["vs_learn2learn"] > tolerance:
                raise SystemExit(f"{algorithm}, {precision} queries: the meta-gradients differ by more than the "
                                 f"tolerance {tolerance}; the timing would compare different computations")
        named = sides(l2l, protocol, algorithm, strategy, precisions)
        floors = {floor_name(precision): QueryConvolutionFloor(named[ours_name(precision)].network, precision)
                  for precision in precisions}
        rows[algorithm] = {"gradient_check": check, "timed_iterations": iterations,
                           "timing": summary(interleaved({**named, **floors}, batches, warmup)),
                           "breakdown": phase_breakdown(named, batches[-1])}
        for name, breakdown in rows[algorithm]["breakdown"].items():
            print_breakdown(f"{algorithm}, {name}", breakdown)
        if args.accuracy:
            named = sides(l2l, protocol, algorithm, strategy, precisions)
            steps = config["accuracy_iterations"][algorithm]
            long_run = interleaved(named, lazy_batches(train, protocol, steps), warmup=0, report_every=50)
            episodes = args.episodes or protocol["episodes"]
            rows[algorithm]["accuracy"] = {
                "iterations": steps, "timing": summary(long_run),
                **{name: evaluate_episodes(side.evaluate, test, episodes=episodes, seed=protocol["seed"]).to_dict()
                   for name, side in named.items()}}
        print(table({algorithm: rows[algorithm]}, {"threads": threads, "strategy": strategy, "seed": protocol["seed"],
                                                   "load_average": load, "omp_wait_policy": wait_policy}), flush=True)

    meta = {"threads": threads, "omp_wait_policy": wait_policy, "strategy": strategy, "seed": protocol["seed"],
            "load_average": load, "warmup": warmup,
            "data_seconds_per_meta_batch": data_seconds, "learn2learn": l2l.__version__,
            "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}", **counts}
    args.out.mkdir(parents=True, exist_ok=True)
    text = table(rows, meta)
    write_file_atomically(output, json.dumps({"meta": meta, "config": config, "protocol": protocol,
                                              "results": rows}, indent=2) + "\n")
    write_file_atomically(output.with_suffix(".md"), text)
    print(text)


if __name__ == "__main__":
    main()
