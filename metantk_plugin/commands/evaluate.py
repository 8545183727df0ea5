"""``metantk evaluate``: meta-train or pre-train a network on few-shot data and report its
test accuracy over episodes with a 95% confidence interval."""

from __future__ import annotations

import argparse
import json
import sys

from metantk_plugin.cli_options import add_dataclass_arguments, dataclass_values
from metantk_plugin.commands._runner import (
    add_executor_arguments,
    check_device,
    check_writable,
    command,
    print_run_summary,
)
from metantk_plugin.commands._vocabulary import ARCH_SPACES, QUERY_PRECISIONS, STRATEGIES
from metantk_plugin.fewshot.settings import EvaluationSettings

_DESCRIPTION = """\
Validate an architecture by training it for few-shot learning and testing it on
unseen classes. Protocols: 'maml' (second-order MAML), 'fomaml' (first-order MAML),
'anil' (only the head adapts), all meta-trained on episodes of the meta-train classes;
'rfs' pre-trains on the base classes with cross-entropy and fits a logistic regression
on L2-normalised features per test episode (the protocol of MetaNTK-NAS's numbers).
The result is the mean query accuracy over --episodes test episodes with a 95%
Student-t confidence interval."""

_EPILOG = """\
examples:
  metantk evaluate --network conv4 --data omniglot:../shared/data/fewshot/omniglot \\
      --protocol maml --ways 5 --shots 1 --meta-iterations 200 --episodes 600 --out runs/maml
  metantk evaluate --network conv4 --data mini-imagenet:/data/miniImageNet --protocol rfs \\
      --meta-iterations 20000 --shots 5 --json
  metantk evaluate --network genotype.txt --data tiered-imagenet:/data/tiered --protocol anil --device cuda

--out DIR keeps checkpoint.pt, result.json and training_curve.png. Running the same
command again resumes from the checkpoint (the parameters end bitwise the same as an
uninterrupted run) or, when finished, prints the stored result; files made with other
settings are never replaced without --force.

many architectures, one row each (few-shot ground truth for a search space):
  metantk evaluate --space nb201 --archs sample:300 --data omniglot:../shared/data/fewshot/omniglot \\
      --protocol rfs --shots 1,5 --meta-iterations 200 --channels 8 --cells 1 \\
      --executor processes --workers 2 --out table.h5
  metantk evaluate --space darts-fewshot --archs presets --data omniglot:PATH --protocol rfs --out darts.h5
  metantk correlate scores.h5 --truth table.h5 --dataset all    # every proxy vs few-shot accuracy

--archs takes all (nb201), sample:N[:SEED], presets (darts-fewshot), or a file with one
architecture (or search.json path) per line. The table (HDF5, the format of 'metantk
score') stores per architecture the mean accuracy and 95% half width for each --shots
value, the test episodes, the training seconds and the parameter count; it is committed
after every architecture, so a killed run loses at most the ones in progress and the
same command resumes it. rfs pre-trains once and tests every --shots value; the
meta-learning protocols train once per --shots value."""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="meta-train (MAML/FOMAML/ANIL) or pre-train (RFS) a network and "
                              "report few-shot test accuracy", description=_DESCRIPTION, epilog=_EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--network",
                      help="'conv4' (the Conv-4 baseline), a NAS-Bench-201 cell (official string or nb201:INDEX), "
                           "a few-shot DARTS genotype preset name, a file holding a genotype, a search.json of "
                           "'metantk search', or 'module:package.module:factory' (called with num_classes=, "
                           "input_size=, in_channels=; its forward returns logits or (features, logits))")
    what.add_argument("--archs", metavar="all|sample:N[:SEED]|presets|FILE",
                      help="train and test many architectures of --space into the table --out FILE.h5")
    p.add_argument("--space", default="nb201", choices=ARCH_SPACES, help="search space of --archs (default nb201)")
    add_dataclass_arguments(p, EvaluationSettings, ["channels", "cells"], help={
        "channels": "C of NAS-Bench-201 / DARTS networks (default: 16 and 48 for --network, 8 for --archs)",
        "cells": "nb201: cells per stage N; darts-fewshot: cells, 3k+2 (default: 5 for --network, nb201 1 and "
                 "darts-fewshot 2 for --archs)"})
    p.add_argument("--data", required=True,
                   help="omniglot:PATH (official zips or extracted folders), mini-imagenet:PATH (RFS pickles), "
                        "tiered-imagenet:PATH (RFS .npz + labels .pkl)")
    add_dataclass_arguments(p, EvaluationSettings, ["protocol", "ways", "queries", "image_size"])
    p.add_argument("--shots", default="1", metavar="S[,S...]",
                   help="support images per class (default: 1); with --archs a comma list such as 1,5")
    add_dataclass_arguments(p, EvaluationSettings, ["meta_iterations", "episodes", "seed", "meta_batch", "inner_lr",
                                                    "inner_steps", "test_inner_steps", "test_inner_lr", "meta_lr",
                                                    "grad_clip"])
    p.add_argument("--no-rotations", action="store_true",
                   help="Omniglot: do not add the 90/180/270-degree rotations of the meta-train classes")
    add_dataclass_arguments(p, EvaluationSettings, ["batch_size", "lr", "strategy", "query_precision", "val_every",
                                                    "val_episodes", "device"],
                            choices={"strategy": STRATEGIES, "query_precision": QUERY_PRECISIONS})
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default: 1). With K > 1, maml and fomaml (strategy batched) cut each "
                        "meta-batch into K chunks of tasks and meta-train them on K threads of their own; use "
                        "idle cores only: on busy ones more threads slow training down")
    add_executor_arguments(p, scope="--archs: ")
    p.add_argument("--out", default=None, help="folder for checkpoint.pt, result.json and training_curve.png; "
                   "with --archs, the table FILE.h5 to create or resume (required)")
    p.add_argument("--force", action="store_true", help="replace a checkpoint or result in --out made with other "
                   "settings; with --archs, start the table afresh")
    p.add_argument("--json", action="store_true", help="print the result object as JSON on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_command)


def _shots(text: str) -> tuple[int, ...]:
    try:
        shots = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise ValueError(f"--shots expects positive integers separated by commas, got {text[:100]!r}") from None
    if any(s < 1 for s in shots):
        raise ValueError(f"--shots values must be at least 1, got {text[:100]!r}")
    return shots


def _evaluation_settings(args: argparse.Namespace, network: str, shots: int) -> EvaluationSettings:
    """The settings of one run: the options written from the fields, and those that are not."""
    return EvaluationSettings(network=network, data=args.data, shots=shots, rotations=not args.no_rotations,
                              **dataclass_values(args, EvaluationSettings))


def _run_table(args: argparse.Namespace) -> int:
    from metantk_plugin.fewshot.table import FewShotTableSettings, evaluate_architectures
    from metantk_plugin.scoring.architectures import select_architectures

    if not args.out:
        raise ValueError("--archs needs --out FILE.h5, the table to create or resume")
    shots = _shots(args.shots)
    settings = FewShotTableSettings(args.space, _evaluation_settings(args, "*", shots[0]), shots=shots)
    archs = select_architectures(args.space, args.archs)
    summary = evaluate_architectures(settings, archs, args.out, executor=args.executor, workers=args.workers,
                                     ray_address=args.ray_address, progress=not args.quiet, replace=args.force)
    print_run_summary(summary, settings.columns, as_json=args.json, done="trained and tested")
    return 0


def _interrupted(args: argparse.Namespace) -> str:
    if args.out is None:
        return "nothing was saved (with --out DIR, a checkpoint is kept and the same command resumes)"
    if args.archs is not None:
        return f"finished architectures are saved in {args.out}; run the same command to resume"
    return (f"the run is checkpointed in {args.out} up to the last iteration it saved (after a first Ctrl-C, the "
            f"one it finished; a second one stops at once); run the same command to resume")


@command("evaluate", interrupted=_interrupted)
def run_command(args: argparse.Namespace) -> int:
    import torch

    from metantk_plugin.fewshot.evaluation import format_accuracy
    from metantk_plugin.fewshot.pipeline import run_evaluation

    if args.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {args.threads}")
    check_writable(args.out, option="--out", folder=args.archs is None)
    torch.set_num_threads(args.threads)
    check_device(args.device)
    if args.archs is not None:
        return _run_table(args)
    shots = _shots(args.shots)
    if len(shots) != 1:
        raise ValueError(f"one --network takes one --shots value, got {args.shots!r} (several need --archs)")
    settings = _evaluation_settings(args, args.network, shots[0])
    result = run_evaluation(settings, out=args.out, force=args.force, progress=not args.quiet,
                            log=lambda message: print(f"metantk evaluate: {message}", file=sys.stderr))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        accuracy = format_accuracy(result["accuracy"], result["ci95"], result["episodes"])
        print(f"{result['protocol']} {result['network']} on {result['data']}: {result['ways']}-way "
              f"{result['shots']}-shot accuracy {accuracy} "
              f"over {result['episodes']} episodes ({result['meta_iterations']} iterations, "
              f"{result['seconds_per_iteration']:.3f} s/iteration)")
        if "files" in result:
            print(f"files: {', '.join(result['files'].values())}")
    return 0
