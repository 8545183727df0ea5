"""The Omniglot anchor of issue 7: Conv-4 MAML and first-order MAML against learn2learn.

Protocol (benchmarks/configs/omniglot_maml_anchor.json): the 242 classes of the two
small Omniglot background zips (merged by alphabet/character), names sorted then
shuffled with random.Random(0): 162 meta-train (plus their 90/180/270-degree rotations
= 648 classes), 40 meta-val, 40 meta-test; images inverted, resized to 28x28 with
antialiasing, in [0, 1]; Conv-4 (112,261 parameters), 5-way 1-shot, 15 queries per
class, inner lr 0.4, 1 inner step, Adam 1e-3, 32 tasks per meta-batch, BatchNorm on
batch statistics; 600 meta-test episodes. Training runs for a fixed wall budget or a
fixed number of iterations, with a fixed number of torch threads.

    python benchmarks/omniglot_maml_anchor.py                    # 1,200 s each, as the anchor
    python benchmarks/omniglot_maml_anchor.py --iterations 20 --name omniglot_maml_anchor_short

Writes benchmarks/results/<name>.json and .md (refusing to replace them without --force)
and prints the table.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from metantk_plugin.data.episodes import EpisodeSampler
from metantk_plugin.data.omniglot import read_omniglot
from metantk_plugin.data.splits import select_classes, shuffled_class_split, with_rotated_classes
from metantk_plugin.data.transforms import Compose, Invert
from metantk_plugin.fewshot.conv4 import Conv4
from metantk_plugin.fewshot.evaluation import evaluate_episodes
from metantk_plugin.fewshot.maml import STRATEGIES, MetaConfig, MetaLearner
from metantk_plugin.fewshot.training import meta_train

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "configs" / "omniglot_maml_anchor.json"


def build_samplers(config: dict, data: Path) -> tuple[EpisodeSampler, EpisodeSampler, dict]:
    everything = read_omniglot(data)
    split = config["split"]
    train, _, test = shuffled_class_split(everything.class_names,
                                          [split["meta_train"], split["meta_val"], split["meta_test"]],
                                          seed=split["shuffle_seed"])
    train_data = with_rotated_classes(select_classes(everything, train), split["rotations"])
    test_data = select_classes(everything, test)
    episode = {"ways": config["ways"], "shots": config["shots"], "queries": config["queries"],
               "image_size": config["image_size"], "transform": Compose([Invert()])}
    counts = {"classes": len(everything.class_names), "meta_train_classes": len(train_data.classes),
              "meta_test_classes": len(test_data.classes)}
    return EpisodeSampler.from_images(train_data, **episode), EpisodeSampler.from_images(test_data, **episode), counts


def run_one(algorithm: str, config: dict, train: EpisodeSampler, test: EpisodeSampler, *, iterations: int | None,
            budget: float, episodes: int, strategy: str, progress: bool) -> dict:
    torch.manual_seed(config["seed"])
    network = Conv4(num_classes=config["ways"], in_channels=1)
    learner = MetaLearner(network, MetaConfig(algorithm=algorithm, inner_lr=config["inner_lr"],
                                              inner_steps=config["inner_steps"], meta_lr=config["meta_lr"],
                                              strategy=strategy))
    began, cpu_began = time.perf_counter(), time.process_time()
    history = meta_train(learner, train, iterations=iterations or 10**9, meta_batch=config["meta_batch"],
                         seed=config["seed"], time_budget=None if iterations else budget, progress=progress)
    train_seconds, cpu_seconds = time.perf_counter() - began, time.process_time() - cpu_began
    result = evaluate_episodes(learner.evaluate, test, episodes=episodes, seed=config["seed"], progress=progress)
    reference = config["learn2learn"][algorithm]
    seconds = history.seconds_per_iteration()
    return {
        "algorithm": algorithm,
        "iterations": len(history.iteration),
        "train_seconds": train_seconds,
        "seconds_per_iteration_median": seconds,
        "iterations_per_second": 1.0 / seconds,
        "cpu_seconds_per_iteration_mean": cpu_seconds / len(history.iteration),
        "speedup_vs_learn2learn": reference["seconds_per_iteration"] / seconds,
        "accuracy": result.accuracy,
        "ci95": result.ci95,
        "episodes": result.episodes,
        "final_train_accuracy": history.accuracy[-1],
        "learn2learn": reference,
        "parameters": sum(p.numel() for p in network.parameters()),
    }


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        "# Omniglot MAML anchor (issue 7)",
        "",
        f"{meta['mode']}; {meta['threads']} torch thread(s); strategy {meta['strategy']}; "
        f"{meta['machine']}; load average at start {meta['load_average']}.",
        "",
        "| | " + " | ".join(r["algorithm"] for r in rows) + " |",
        "|---|" + "---|" * len(rows),
        "| meta-iterations done | " + " | ".join(str(r["iterations"]) for r in rows) + " |",
        "| seconds per meta-iteration (median) | " + " | ".join(f"{r['seconds_per_iteration_median']:.3f}"
                                                             for r in rows) + " |",
        "| CPU seconds per meta-iteration (mean, all threads) | " + " | ".join(
            f"{r['cpu_seconds_per_iteration_mean']:.3f}" for r in rows) + " |",
        "| learn2learn seconds per meta-iteration | " + " | ".join(f"{r['learn2learn']['seconds_per_iteration']:.2f}"
                                                                  for r in rows) + " |",
        "| speed-up over learn2learn | " + " | ".join(f"{r['speedup_vs_learn2learn']:.2f}x" for r in rows) + " |",
        f"| meta-test accuracy, {rows[0]['episodes']} episodes | " + " | ".join(
            f"{100 * r['accuracy']:.2f} ± {100 * r['ci95']:.2f} %" for r in rows) + " |",
        "| learn2learn accuracy (1,200 s) | " + " | ".join(
            f"{100 * r['learn2learn']['accuracy']:.2f} ± {100 * r['learn2learn']['ci95']:.2f} %" for r in rows) + " |",
        "",
        "The accuracy is comparable with learn2learn's only after the same number of iterations "
        "(628 MAML / 763 first-order) or the same wall budget. On a shared machine the wall time "
        "per iteration grows with the load; the CPU time per iteration does much less.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=CONFIG, help="protocol and anchor figures (JSON)")
    parser.add_argument("--data", type=Path, default=None, help="Omniglot folder (default: the config's, relative "
                        "to the repository)")
    parser.add_argument("--algorithms", nargs="+", default=["maml", "fomaml"], choices=["maml", "fomaml", "anil"])
    parser.add_argument("--budget", type=float, default=None, help="wall seconds of training per algorithm "
                        "(default: the config's 1,200)")
    parser.add_argument("--iterations", type=int, default=None, help="train exactly this many meta-iterations "
                        "instead of a wall budget")
    parser.add_argument("--episodes", type=int, default=None, help="meta-test episodes (default: 600)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the config's 1)")
    parser.add_argument("--strategy", default="auto", choices=STRATEGIES)
    parser.add_argument("--out", type=Path, default=HERE / "results", help="folder for the JSON and Markdown")
    parser.add_argument("--name", default="omniglot_maml_anchor", help="file name stem of the results")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--force", action="store_true", help="overwrite existing result files")
    args = parser.parse_args()
    outputs = [args.out / f"{args.name}.json", args.out / f"{args.name}.md"]
    if any(p.exists() for p in outputs) and not args.force:
        raise SystemExit(f"{outputs[0]} exists; pass --force to overwrite it or --name to write elsewhere")

    config = json.loads(args.config.read_text())
    threads = args.threads or config["threads"]
    torch.set_num_threads(threads)
    data = args.data or (HERE.parent / config["data"])
    train, test, counts = build_samplers(config, data)
    budget = args.budget if args.budget is not None else config["budget_seconds"]
    episodes = args.episodes or config["episodes"]
    load = " ".join(f"{x:.2f}" for x in __import__("os").getloadavg())
    rows = [run_one(a, config, train, test, iterations=args.iterations, budget=budget, episodes=episodes,
                    strategy=args.strategy, progress=not args.quiet) for a in args.algorithms]
    meta = {"mode": f"{args.iterations} iterations" if args.iterations else f"{budget:.0f} s wall budget",
            "threads": threads, "strategy": args.strategy, "load_average": load,
            "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}", **counts}
    args.out.mkdir(parents=True, exist_ok=True)
    outputs[0].write_text(json.dumps({"meta": meta, "config": config, "results": rows},
                                                           indent=2) + "\n")
    table = markdown(rows, meta)
    outputs[1].write_text(table)
    print(table)


if __name__ == "__main__":
    main()
