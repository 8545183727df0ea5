"""``metantk score``: score architectures with zero-cost proxies into a resumable HDF5 file."""

from __future__ import annotations

import argparse
from pathlib import Path

from metantk_plugin.cli_options import add_dataclass_arguments
from metantk_plugin.commands._runner import (
    add_executor_arguments,
    check_device,
    check_writable,
    command,
    print_run_summary,
    refuse_overwrite,
)
from metantk_plugin.commands._values import parse_proxy_norms, parse_proxy_options
from metantk_plugin.commands._vocabulary import BUILTIN_PROXIES, POPULATION_INPUTS, proxy_plugins
from metantk_plugin.scoring.settings import KERNEL_PROXIES, NETWORK_NORMS, ScoreSettings
from metantk_plugin.task_spec import TaskSpec

_EPILOG = """\
examples:
  metantk score --archs sample:100 --proxies metantk,synflow,nwot --out s.h5
  metantk score --archs sample:1000:0 --proxies all \\
      --data omniglot:../shared/data/fewshot/omniglot --tasks 3 --ways 5 --queries 3 \\
      --executor processes --workers 2 --out nb201.h5 --csv nb201.csv
  metantk score --archs all --proxies synflow,nwot --executor ray --ray-address 10.0.0.5:6379 --out all.h5
  metantk score --archs my_archs.txt --proxies metantk --set metantk.inner_lr_time=1000 --out s.h5

Running the same command again resumes: architectures already in --out are skipped.
A file made with other settings is refused (choose another --out, or pass --force
to replace it and start afresh). Every proxy sees the
same tasks and seed. By default the kernel proxies ({kernel}) see a GroupNorm copy of
each network (same weights) and the others the official BatchNorm network in training
mode; --norm changes that per proxy.

proxies: {proxies}
population proxies (ranked within the run, from other columns): {population};
rank ensembles rank:A+B+... (the mean within-run rank of A, B, ..., e.g. rank:metantk+nwot)
"""


def add_parser(subparsers) -> None:
    proxies = ", ".join((*BUILTIN_PROXIES, *(f"{name} (plugin)" for name in proxy_plugins())))
    population = ", ".join(f"{n} (from {' and '.join(inputs)})" for n, inputs in POPULATION_INPUTS.items())
    p = subparsers.add_parser(
        "score",
        help="score architectures with zero-cost proxies into a resumable HDF5 file",
        description="Score many architectures of a search space with zero-cost proxies, all on the same "
                    "few-shot tasks, into one HDF5 score file that a later run resumes.",
        epilog=_EPILOG.format(kernel=", ".join(KERNEL_PROXIES), proxies=proxies, population=population),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = p.add_argument_group("what to score")
    add_dataclass_arguments(what, ScoreSettings, ["space"])
    what.add_argument("--archs", required=True, metavar="all|sample:N[:SEED]|FILE",
                      help="all architectures, a seeded random sample of N (the first N of a permutation drawn "
                           "from SEED, default 0, so samples nest), or a file with one official string or "
                           "index per line")
    what.add_argument("--proxies", required=True, metavar="A,B,...|all",
                      help="comma-separated proxy names (rank:A+B+... for a rank ensemble), or 'all' for every "
                           "registered and population proxy")
    what.add_argument("--set", action="append", default=[], metavar="PROXY.OPTION=VALUE", dest="options",
                      help="an option of one proxy, e.g. metantk.inner_lr_time=1000 or metantk.reg=1e-4 "
                           "(repeatable; values are JSON, or inf)")
    what.add_argument("--norm", action="append", default=[], metavar="PROXY=NORM", dest="norms",
                      help=f"which network a proxy sees: {', '.join(NETWORK_NORMS)} (repeatable)")
    data = p.add_argument_group("tasks every proxy sees")
    add_dataclass_arguments(data, TaskSpec)
    net = p.add_argument_group("network size")
    add_dataclass_arguments(net, ScoreSettings, ["channels", "cells", "classes"])
    run = p.add_argument_group("how to run")
    add_dataclass_arguments(run, ScoreSettings, ["seed", "dtype", "device"])
    add_executor_arguments(run)
    run.add_argument("--chunk", type=int, default=16, help="architectures per committed chunk (default 16)")
    run.add_argument("--out", required=True, metavar="FILE.h5", help="score file to create or resume")
    run.add_argument("--csv", metavar="FILE.csv", help="also export the scores to CSV when done")
    run.add_argument("--force", action="store_true",
                     help="start --out afresh, replacing an existing score file, and allow --csv to replace a file")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--json", action="store_true", help="print a JSON summary instead of text")
    p.set_defaults(func=run_command)


_NTK_PROXIES = {"metantk", "metantk_anil", "ntk_cond"}  # the proxies that build the kernel between all samples


def _proxies(text: str) -> tuple[str, ...]:
    from metantk_plugin.proxies import available_proxies

    if text == "all":
        return tuple(available_proxies("all"))
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _interrupted(args: argparse.Namespace) -> str:
    if not Path(args.out).exists():
        return "no architecture was finished, so no score file was kept"
    return f"finished architectures are saved in {args.out} (run the same command to resume)"


@command("score", interrupted=_interrupted)
def run_command(args: argparse.Namespace) -> int:
    from metantk_plugin.data.sources import parse_data_spec
    from metantk_plugin.memory import check_fits, kernel_run_bytes
    from metantk_plugin.scoring.architectures import select_architectures
    from metantk_plugin.scoring.run import score_architectures
    from metantk_plugin.scoring.store import export_csv

    settings = ScoreSettings(
        proxies=_proxies(args.proxies), space=args.space, data=str(parse_data_spec(args.data)),
        n_tasks=args.tasks, ways=args.ways, shots=args.shots, queries=args.queries,
        image_size=args.image_size, image_channels=args.image_channels,
        channels=args.channels, cells=args.cells, classes=args.classes, seed=args.seed,
        dtype=args.dtype, device=args.device, proxy_options=parse_proxy_options(args.options),
        norms=parse_proxy_norms(args.norms),
    )
    check_device(args.device)
    check_fits(kernel_run_bytes(samples=settings.n_tasks * settings.ways * (settings.shots + settings.queries),
                                image_channels=settings.image_channels, image_size=settings.image_size,
                                channels=settings.channels, cells=settings.cells,
                                kernel=bool(set(settings.columns) & _NTK_PROXIES)),
               advice="lower --tasks, --ways, --shots, --queries, --image-size, --channels or --cells")
    archs = select_architectures(args.space, args.archs)
    refuse_overwrite(args.csv, force=args.force, option="--csv")
    check_writable(args.out, option="--out")
    check_writable(args.csv, option="--csv")
    summary = score_architectures(settings, archs, args.out, executor=args.executor, workers=args.workers,
                                  ray_address=args.ray_address, chunk_size=args.chunk, progress=not args.quiet,
                                  replace=args.force)
    if args.csv:
        export_csv(args.out, args.csv, overwrite=args.force)
    print_run_summary(summary, settings.columns, as_json=args.json, done="scored",
                      extra={"csv": args.csv} if args.csv else None)
    return 0
