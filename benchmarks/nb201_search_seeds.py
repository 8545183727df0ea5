"""MetaNTK-NAS on NAS-Bench-201 over several seeds, against random architectures.

Runs ``metantk search --space nb201`` (the README's main job) for each seed and looks the
chosen cells up in the shared ground truth (200-epoch test accuracies); the reference is
the mean (and spread) of the whole space, i.e. the expected accuracy of a random cell.

    python benchmarks/nb201_search_seeds.py --seeds 0 1 2 3 4 [--data synthetic] [-- extra search flags]

Writes benchmarks/results/nb201_search_seeds.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

from metantk_plugin.cli import main as metantk
from metantk_plugin.spaces.nasbench201 import GroundTruth

RESULTS = Path(__file__).resolve().parent / "results"
DATASETS = ("cifar10", "cifar100", "imagenet16-120")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--name", default="nb201_search_seeds", help="result file stem")
    parser.add_argument("--work", type=Path, default=Path(__file__).resolve().parent / "work" / "nb201_search")
    parser.add_argument("extra", nargs="*", help="extra flags for metantk search (after --)")
    args = parser.parse_args()
    truth = GroundTruth.from_csv()
    space = {d: truth.accuracies(dataset=d) for d in DATASETS}
    rows = []
    for seed in args.seeds:
        out = args.work / f"{args.name}-seed{seed}"
        argv = ["search", "--space", "nb201", "--data", args.data, "--seed", str(seed), "--out", str(out),
                "--force", "--json", *args.extra]
        start = time.perf_counter()
        if metantk(argv) != 0:
            return 1
        result = json.loads((out / "search.json").read_text())
        row = {"seed": seed, "arch": result["arch"], "index": result["index"],
               "wall_s": time.perf_counter() - start, "kernel_evaluations": result["kernel_evaluations"]}
        for d in DATASETS:
            row[d] = float(space[d][result["index"]])
        rows.append(row)
        print(f"seed {seed}: {row['arch']}  " + "  ".join(f"{d} {row[d]:.2f}" for d in DATASETS), file=sys.stderr)
    summary = {d: {"search_mean": statistics.mean(r[d] for r in rows),
                   "search_std": statistics.pstdev(r[d] for r in rows),
                   "random_mean": float(space[d].mean()), "random_std": float(space[d].std()),
                   "space_best": float(space[d].max())} for d in DATASETS}
    report = {"command": "python benchmarks/nb201_search_seeds.py " + shlex.join(sys.argv[1:]),
              "machine": platform.platform(), "data": args.data, "runs": rows, "summary": summary}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(report, indent=1))
    lines = [f"# MetaNTK-NAS on NAS-Bench-201 ({args.data} tasks)", "", f"`{report['command']}`", "",
             "| seed | architecture | " + " | ".join(DATASETS) + " | wall s |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['seed']} | `{r['arch']}` | " + " | ".join(f"{r[d]:.2f}" for d in DATASETS)
                     + f" | {r['wall_s']:.0f} |")
    lines += ["", "| | " + " | ".join(DATASETS) + " |", "|---|---|---|---|"]
    for key, label in (("search_mean", "search mean"), ("search_std", "search std"),
                       ("random_mean", "random cell mean"), ("random_std", "random cell std"),
                       ("space_best", "best in space")):
        lines.append(f"| {label} | " + " | ".join(f"{summary[d][key]:.2f}" for d in DATASETS) + " |")
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
