"""``metantk search``: MetaNTK-NAS, a training-free search by operator pruning."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

from metantk_plugin.cli_options import add_dataclass_arguments, dataclass_values
from metantk_plugin.commands._runner import (
    add_executor_arguments,
    check_device,
    check_writable,
    command,
    refuse_overwrite,
    write_atomic,
)
from metantk_plugin.commands._vocabulary import METANTK_ALGORITHMS
from metantk_plugin.search.settings import SearchSettings
from metantk_plugin.search.spaces import SEARCH_SPACES
from metantk_plugin.task_spec import TaskSpec

_EPILOG = """\
examples:
  metantk search --space nb201 --data synthetic
      the built-in default: NAS-Bench-201 on synthetic tasks, a few minutes on a CPU;
      prints the chosen cell and its real accuracies when the NAS-Bench-201 table is found
  metantk search --space darts-fewshot --data omniglot:../shared/data/fewshot/omniglot --seed 1 --out run1
  metantk search --space darts-fewshot --data mini-imagenet:~/data/miniImageNet \\
      --channels 48 --cells 5 --repeats 3 --device cuda        # the paper's full-size search
  metantk search --space nb201 --indicator ntk --faithful     # TE-NAS, official behaviour
  metantk search --space darts-fewshot --data omniglot:../shared/data/fewshot/omniglot --repeats 3 \\
      --executor processes --workers 2 --out run2
      candidates scored by 2 processes of 1 thread each: on 2 CPU cores about 1.2x as fast as one
      process with 2 threads

The NAS-Bench-201 table is looked up at --truth, else $METANTK_NB201_CSV, else
../shared/data/nasbench201/nb201_accuracies.csv.gz beside the repository."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "search",
        help="find an architecture without training (MetaNTK-NAS operator pruning)",
        description="Prune a supernet operator by operator, ranking each removal by the change of the "
        "MetaNTK condition number and of the number of linear regions (TE-NAS recipe with MetaNTK).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--space", choices=tuple(sorted(SEARCH_SPACES)), default="nb201",
                   help="search space (default nb201)")
    p.add_argument("--channels", type=int, help="supernet channels C (default 16; the paper uses 48 for DARTS)")
    p.add_argument("--cells", type=int,
                   help="nb201: cells per stage (default 1, official net 5); darts-fewshot: 5 or 8 (default 5)")
    add_dataclass_arguments(p, SearchSettings, choices={"algorithm": METANTK_ALGORITHMS})
    add_dataclass_arguments(p, TaskSpec, ["data", "ways", "shots", "queries", "image_size"])
    add_executor_arguments(p, scope="where candidates are scored: ")
    p.add_argument("--truth", help="NAS-Bench-201 accuracy file (.csv.gz, .pth, .db, NATS-Bench) for nb201")
    p.add_argument("--out", type=Path,
                   help="folder for search.json (refused if it already holds one, unless --force); an unfinished "
                        "search keeps its state in search-checkpoint.json there, and the same command resumes it")
    p.add_argument("--force", action="store_true",
                   help="start afresh: replace search.json and any checkpoint in --out")
    p.add_argument("--json", action="store_true", help="print the result object as JSON on stdout")
    p.set_defaults(func=run_command)


def _supernet_size(args: argparse.Namespace) -> tuple[int, int]:
    """(channels, cells) of the supernet: the options, else the space's defaults."""
    from metantk_plugin.search.spaces import supernet_size

    channels, cells = supernet_size(args.space, args.channels, args.cells)
    for option, value in (("--channels", channels), ("--cells", cells)):
        if value < 1:
            raise ValueError(f"{option} must be a positive int, got {value}")
    return channels, cells


def _ground_truth(args: argparse.Namespace):
    """The NAS-Bench-201 accuracy table (None when none is found and none was asked for),
    opened before the search so that a bad --truth costs nothing."""
    if args.space != "nb201":
        if args.truth is not None:
            raise ValueError(f"--truth {args.truth} applies to --space nb201 only, not {args.space}")
        return None
    from metantk_plugin.spaces.nasbench201.ground_truth import find_ground_truth

    return find_ground_truth(args.truth)


def _nb201_truth(arch: str, table) -> dict[str, Any] | None:
    """The chosen cell's accuracies; None (with a warning) when the table lacks them, so
    that the finished search is still reported and saved."""
    if table is None:
        return None
    try:
        standing = table.standing(arch, split="test", epochs=200)
    except ValueError as error:
        warnings.warn(f"the chosen cell's accuracy cannot be looked up: {error}", UserWarning, stacklevel=2)
        return None
    return {"source": table.description, "test_accuracy_200_epochs": standing}


CHECKPOINT_NAME = "search-checkpoint.json"


def _interrupted(args: argparse.Namespace) -> str:
    checkpoint = args.out / CHECKPOINT_NAME if args.out else None
    if checkpoint is not None and checkpoint.is_file():
        return f"the search so far is checkpointed in {checkpoint}; run the same command to resume it"
    return "the search stopped before it finished, so there is no result to keep"


def _checkpoint(args: argparse.Namespace, settings: SearchSettings, channels: int, cells: int):
    """The resumable state of this search in --out (None without --out, or for a faithful search)."""
    from metantk_plugin.search.checkpoint import SearchCheckpoint

    if args.out is None or settings.faithful:
        return None
    checkpoint = SearchCheckpoint(args.out / CHECKPOINT_NAME, {
        "space": args.space, "data": args.data, "channels": channels, "cells": cells, "ways": args.ways,
        "shots": args.shots, "queries": args.queries, "image_size": args.image_size, "settings": asdict(settings)})
    if args.force:
        checkpoint.remove()
    return checkpoint


@command("search", interrupted=_interrupted)
def run_command(args: argparse.Namespace) -> int:
    from metantk_plugin.data.sources import task_sampler_from_spec
    from metantk_plugin.memory import check_fits, kernel_run_bytes
    from metantk_plugin.scoring.executors import make_executor
    from metantk_plugin.search.pruning import run_pruning_search
    from metantk_plugin.search.spaces import build_search_space

    out_file = args.out / "search.json" if args.out else None
    refuse_overwrite(out_file, force=args.force, option="--out")
    check_writable(args.out, option="--out", folder=True)
    table = _ground_truth(args)
    settings = SearchSettings(**dataclass_values(args, SearchSettings))
    check_device(args.device)
    channels, cells = _supernet_size(args)
    needs = kernel_run_bytes(samples=args.tasks * args.ways * (args.shots + args.queries), image_channels=3,
                             image_size=args.image_size, channels=channels, cells=cells,
                             kernel=args.indicator != "regions")
    executor = make_executor(args.executor, args.workers, ray_address=args.ray_address)
    if args.executor == "processes":  # every worker process scores networks of this size at once
        needs = {f"{what}, in each of {executor.workers} workers": size * executor.workers
                 for what, size in needs.items()}
    check_fits(needs, advice="lower --tasks, --ways, --shots, --queries, --image-size, --channels or --cells"
                             + (" or --workers" if args.executor == "processes" else ""))
    space = build_search_space(args.space, channels, cells)
    sampler = task_sampler_from_spec(args.data, split="train", image_size=args.image_size, ways=args.ways,
                                     shots=args.shots, queries=args.queries, seed=args.seed)
    checkpoint = _checkpoint(args, settings, channels, cells)
    with executor:
        result = run_pruning_search(space, sampler, settings, progress=not args.json, checkpoint=checkpoint,
                                    executor=executor)
    report: dict[str, Any] = {"space": space.name, "data": args.data, **result.to_dict()}
    report.update(report.pop("architecture"))
    if space.name == "nb201":
        report["ground_truth"] = _nb201_truth(report["arch"], table)
    failure = _save(report, out_file) if out_file is not None else None
    if checkpoint is not None and failure is None:
        checkpoint.remove()
    if args.json:
        print(json.dumps(report))
    else:
        _print_summary(report, None if failure else out_file)
    if failure is not None:
        raise failure
    return 0


def _save(report: dict[str, Any], out_file: Path) -> OSError | None:
    """Write ``report`` to ``out_file``. When that fails (the disk filled up, the folder was
    removed during the search), keep it in a file in the current or the temporary folder
    and return the error saying where, so a finished search is never lost."""
    text = json.dumps(report, indent=1)
    try:
        write_atomic(out_file, text)
        return None
    except OSError as error:
        reason = error.strerror or str(error)
    for folder in (Path.cwd(), Path(tempfile.gettempdir())):
        try:
            handle, rescue = tempfile.mkstemp(dir=folder, prefix="metantk-search-", suffix=".json")
            with os.fdopen(handle, "w") as file:
                file.write(text)
        except OSError:
            continue
        return OSError(f"could not write {out_file} ({reason}); the finished search is saved in {rescue}")
    return OSError(f"could not write {out_file} ({reason}) nor a copy elsewhere; the result is printed above")


def _print_summary(report: dict[str, Any], out_file: Path | None) -> None:
    print(f"MetaNTK-NAS on {report['space']} with {report['data']} tasks: {report['seconds']:.1f} s, "
          f"{report['kernel_evaluations']} kernel and {report['region_evaluations']} region evaluations")
    print("seconds per round: " + ", ".join("not recorded" if t is None else f"{t:.1f}"
                                            for t in report["round_seconds"]))
    if report["space"] == "nb201":
        print(f"chosen cell: {report['arch']}  (index {report['index']})")
        truth = report.get("ground_truth")
        if truth is None:
            print("no NAS-Bench-201 accuracy table found (see --truth) to look its accuracy up")
        else:
            print(f"real test accuracy after 200 epochs ({truth['source']}):")
            for dataset, row in truth["test_accuracy_200_epochs"].items():
                print(f"  {dataset:15s} {row['accuracy']:6.2f} %   space mean {row['space_mean']:6.2f} %, "
                      f"best {row['space_best']:6.2f} %, better than {row['percentile']:5.1f} % of the space")
    else:
        print(f"chosen genotype: {report['genotype']}")
    if out_file is not None:
        print(f"every round's scores and decisions: {out_file}")
