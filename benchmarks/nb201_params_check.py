"""Build the NAS-Bench-201 network of every cell and compare its parameter count with the
ground truth: ``params_M`` of nb201_accuracies.csv.gz and NASLib's own count (the
``c10_params`` proxy of NAS-Bench-Suite-Zero, present for 9,445 cells).

A count that differs from ``params_M`` is classed "legacy seed mean" when ``params_M`` is
the mean over k = 2 or 3 training trials of which some report our count and the others
another count a NAS-Bench-201 network can have (NAS-Bench-201 stored wrong counts for some
trials; NATS-Bench's API works around this "legacy issue"), and "unexplained" otherwise.

    python benchmarks/nb201_params_check.py            # all 15,625 (about 5 min on one core)
    python benchmarks/nb201_params_check.py --limit 500 --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from metantk_plugin.atomic_files import write_atomically
from metantk_plugin.spaces.nasbench201 import NUM_ARCHITECTURES, NB201Network, all_architectures

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "nasbench201"
DEFAULT_OUTPUT = REPO / "benchmarks" / "results" / "nb201_params_check.json"


def parameter_count(index: int, norm: str) -> int:
    with torch.device("meta"):  # shapes only: no memory, no initialisation work
        network = NB201Network(index, C=16, N=5, num_classes=10, norm=norm)
    return sum(p.numel() for p in network.parameters())


def legacy_explanation(params_m: float, count: int, possible_counts: set) -> str | None:
    """How ``params_m`` arises as a seed mean mixing ``count`` with another possible count, if it does."""
    for trials in (2, 3):
        for wrong in range(1, trials):
            other = (trials * params_m * 1e6 - (trials - wrong) * count) / wrong
            if abs(other - round(other)) < 1e-3 and round(other) in possible_counts and round(other) != count:
                return f"mean of {trials} trials, {wrong} reporting {round(other)}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=None, help="check only the first N indices (default: all)")
    parser.add_argument("--norm", choices=["batch", "group"], default="batch", help="normalisation (default batch)")
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help=f"JSON result file (default {DEFAULT_OUTPUT})"
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing result file")
    parser.add_argument("--json", action="store_true", help="print the JSON result instead of the table")
    args = parser.parse_args(argv)
    if args.output.exists() and not args.force:
        print(f"{args.output} exists; pass --force to overwrite it or --output to write elsewhere", file=sys.stderr)
        return 1
    torch.set_num_threads(1)

    table = pd.read_csv(DATA / "nb201_accuracies.csv.gz", usecols=["index", "arch", "params_M"]).set_index("index")
    naslib = pd.read_csv(DATA / "nb201_zc_proxies.csv.gz", usecols=["index", "c10_params"]).set_index("index")
    archs = all_architectures()
    indices = range(NUM_ARCHITECTURES if args.limit is None else min(args.limit, NUM_ARCHITECTURES))

    started = time.perf_counter()
    counts = {i: parameter_count(i, args.norm) for i in tqdm(indices, desc="building networks", unit="net")}
    seconds = time.perf_counter() - started
    # every count a cell can have: one network per (number of 3x3 convs, number of 1x1 convs)
    possible = set()
    for n3 in range(7):
        for n1 in range(7 - n3):
            ops = ["nor_conv_3x3"] * n3 + ["nor_conv_1x1"] * n1 + ["none"] * (6 - n3 - n1)
            text = "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops)
            with torch.device("meta"):
                possible.add(sum(p.numel() for p in NB201Network(text, norm=args.norm).parameters()))

    exact, legacy, unexplained, naslib_checked, naslib_equal = 0, [], [], 0, 0
    for i, count in counts.items():
        params_m = float(table.at[i, "params_M"])
        if round(count / 1e6, 6) == params_m:
            exact += 1
        else:
            why = legacy_explanation(params_m, count, possible)
            row = {"index": i, "arch": archs[i].to_string(), "count": count, "params_M": params_m}
            (legacy if why else unexplained).append({**row, "explanation": why})
        if not np.isnan(naslib.at[i, "c10_params"]):
            naslib_checked += 1
            naslib_equal += round(count / 1e6, 6) == float(naslib.at[i, "c10_params"])
    result = {
        "networks_built": len(counts),
        "config": {"C": 16, "N": 5, "num_classes": 10, "norm": args.norm},
        "equal_to_params_M": exact,
        "legacy_seed_mean": len(legacy),
        "unexplained": len(unexplained),
        "naslib_count_available": naslib_checked,
        "equal_to_naslib_count": naslib_equal,
        "legacy_with_naslib_count_equal_to_ours": sum(
            1 for row in legacy if not np.isnan(naslib.at[row["index"], "c10_params"])
        ),
        "build_seconds": round(seconds, 1),
        "mismatches": unexplained + legacy,
    }
    write_atomically(args.output, lambda file: json.dump(result, file, indent=1))

    if args.json:
        print(json.dumps(result, indent=1))
    else:
        rows = [
            ("networks built", len(counts)),
            ("count == params_M", exact),
            ("legacy seed mean in params_M", len(legacy)),
            ("unexplained mismatches", len(unexplained)),
            ("NASLib count available", naslib_checked),
            ("count == NASLib count", naslib_equal),
            ("seconds to build", f"{seconds:.1f}"),
        ]
        width = max(len(name) for name, _ in rows)
        for name, value in rows:
            print(f"{name:<{width}}  {value}")
        for row in (unexplained + legacy)[:5]:
            print(f"  index {row['index']}: ours {row['count']}, params_M {row['params_M']} ({row['explanation']})")
        print(f"wrote {args.output}")
    return 0 if not unexplained and naslib_equal == naslib_checked else 2


if __name__ == "__main__":
    raise SystemExit(main())
