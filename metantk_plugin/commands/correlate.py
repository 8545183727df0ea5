"""``metantk correlate``: rank agreement of every proxy in a score file with NAS-Bench-201
accuracy or with the few-shot accuracy of a table written by ``metantk evaluate --archs``."""

from __future__ import annotations

import argparse
import json

from metantk_plugin.commands._runner import check_writable, command, refuse_overwrite
from metantk_plugin.spaces.nasbench201.accuracy_metrics import EPOCHS, SPLITS
from metantk_plugin.spaces.nasbench201.table_location import CSV_ENV_VAR

_EPILOG = f"""\
examples:
  metantk correlate s.h5                                   # CIFAR-10 test accuracy, 200 epochs
  metantk correlate s.h5 --dataset all --plot s.png
  metantk correlate s.h5 --dataset cifar10 --metric valid --json > s.json
  metantk correlate s.h5 --truth NAS-Bench-201-v1_1-096897.pth --dataset cifar100
  metantk correlate s.h5 --truth table.h5                  # few-shot accuracy (metantk evaluate --archs)
  metantk correlate s.h5 --truth table.h5 --dataset all    # ... beside CIFAR-10/100 and ImageNet16-120

Spearman ρ and Kendall τ-b are computed on scores oriented so that higher predicts
better (lower-is-better proxies such as metantk are negated; NaN scores rank last).
top-10% precision is the share of the best-scored 10% that are among the 10% most
accurate. Intervals are percentile 95% bootstrap intervals over architectures.
The default ground truth is ${CSV_ENV_VAR}, else ../shared/data/nasbench201/nb201_accuracies.csv.gz
beside the repository; --truth also reads NAS-Bench-201 .pth, NATS-Bench and NNI files, and
few-shot tables (HDF5 from 'metantk evaluate --archs ... --out TABLE.h5'), whose accuracy
columns are the targets, followed by the --dataset columns when --dataset is given.
"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "correlate",
        help="rank correlation of each proxy in a score file with NAS-Bench-201 or few-shot accuracy",
        description="Spearman ρ, Kendall τ and top-10% precision, with bootstrap 95% intervals, of every "
                    "proxy in a score file (from 'metantk score') against trained NAS-Bench-201 accuracies "
                    "or the few-shot accuracies of a table from 'metantk evaluate --archs'.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("scores", metavar="FILE.h5", help="score file written by 'metantk score'")
    p.add_argument("--truth", metavar="PATH", default=None,
                   help="ground-truth file: a NAS-Bench-201 table (default: the shared nb201_accuracies.csv.gz "
                        "when found) or a few-shot table TABLE.h5")
    p.add_argument("--dataset", default=None, metavar="NAME[,NAME]|all",
                   help="cifar10, cifar100, imagenet16-120, a comma list, or all (default: cifar10, or none "
                        "beside a few-shot --truth)")
    p.add_argument("--metric", default="test", choices=SPLITS, help="test (default) or valid accuracy")
    p.add_argument("--epochs", type=int, default=200, choices=EPOCHS, help="training schedule (default 200)")
    p.add_argument("--proxies", metavar="A,B,...", help="only these proxies (default: every column of the file)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the intervals (default 1000)")
    p.add_argument("--top", type=float, default=0.1, help="fraction for top-k precision (default 0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resamples (default 0)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--plot", metavar="FILE.png", help="write one scatter panel per proxy (score rank vs accuracy)")
    p.add_argument("--force", action="store_true", help="allow --plot to replace an existing file")
    p.set_defaults(func=run_command)


@command("correlate", interrupted="nothing was written")
def run_command(args: argparse.Namespace) -> int:
    from metantk_plugin.scoring.plotting import plot_rank_scatter
    from metantk_plugin.scoring.report import correlate_score_file, format_table, parse_datasets

    refuse_overwrite(args.plot, force=args.force, option="--plot")
    check_writable(args.plot, option="--plot")
    proxies = [t.strip() for t in args.proxies.split(",") if t.strip()] if args.proxies else None
    report = correlate_score_file(
        args.scores, truth=args.truth, datasets=parse_datasets(args.dataset) if args.dataset else None,
        split=args.metric, epochs=args.epochs, proxies=proxies, n_bootstrap=args.bootstrap, top_fraction=args.top,
        seed=args.seed,
    )
    if args.plot:
        plot_rank_scatter(report.scores, report.accuracies, report.directions, report.results, args.plot)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(f"{report.path}: {len(report.scores)} architectures; truth: {report.truth}; "
              f"{args.metric} accuracy after {args.epochs} epochs; {args.bootstrap} bootstrap resamples")
        print(format_table(report.results), end="")
        if args.plot:
            print(f"plot written to {args.plot}")
    return 0
