"""The DARTS search's scoring throughput, this tree against a git revision, side by side (issue 16).

The workload is that of ``search_executor_ab.py``: round 1 of the full-size search of
``configs/darts_full_search.json`` (C=48, 5 cells, Omniglot tasks at 32x32, all 7 operations on
every edge), its origin and first ``--candidates`` candidates, scored (MetaNTK condition number
and linear regions) by a pool of ``--workers`` processes of 1 torch thread each, as
``metantk search --executor processes`` scores them. Each side runs in a fresh Python process
whose ``metantk_plugin`` is its own: this tree's (copied at the start), or the revision's
(``git archive``), so
everything the package does (network, kernel engine, worker set-up) is compared. Each such run
warms its pool up (the networks built in every worker, one evaluation each), then times the
trials once. The sides alternate, the one that goes first alternating too, ``--repeats`` times.

Reported: median seconds per evaluation of each side, the median of the paired ratios (old /
new: the speed-up) with its quartiles, the largest relative difference of a condition number
between the sides, and whether the region counts agree.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/search_revision_ab.py --against a233e6d --repeats 3

Writes benchmarks/results/search_revision_ab_<rev>.{json,md} (refusing to replace them without --force).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import torch
from _options import BENCHMARKS, existing_file, paired_speedup, positive_int, write_result_files
from darts_full_search import CONFIG

# One timing in a fresh process: argv = config path, candidates, workers; prints one JSON line.
_ONE_TIMING = """
import json, sys
from search_executor_ab import timed, workload
from metantk_plugin.scoring.executors import ProcessExecutor
from metantk_plugin.search.pruning import _Scorer
config = json.loads(open(sys.argv[1]).read())
candidates, workers = int(sys.argv[2]), int(sys.argv[3])
settings, setting, trials = workload(config, candidates)
with ProcessExecutor(workers) as pool:
    scorer = _Scorer(settings, pool)
    list(scorer.trials(setting, trials[:workers]))
    seconds, scores = timed(scorer, setting, trials)
print(json.dumps({"seconds_per_evaluation": seconds / len(trials), "scores": scores}))
"""


def export_revision(rev: str, folder: Path) -> Path:
    """The package of ``rev`` unpacked into ``folder`` (returned); a clear error if git cannot give it."""
    done = subprocess.run(["git", "archive", "--format=tar", rev, "metantk_plugin"], cwd=BENCHMARKS.parent,
                          capture_output=True)
    if done.returncode != 0:
        raise SystemExit(f"search_revision_ab.py: git cannot export metantk_plugin at {rev!r}: "
                         f"{done.stderr.decode().strip()}")
    folder.mkdir()
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(folder, filter="data")
        else:  # Python < 3.9.17: git's own archive of a package, no links or absolute paths
            tar.extractall(folder)
    return folder


def copy_of_this_tree(folder: Path) -> Path:
    """This tree's package copied into ``folder`` (returned), so edits during the run do not count."""
    shutil.copytree(BENCHMARKS.parent / "metantk_plugin", folder / "metantk_plugin",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def one_timing(package_root: Path, config: Path, candidates: int, workers: int) -> dict:
    """A timing of the workload in a fresh process importing ``metantk_plugin`` from ``package_root``."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(package_root), str(BENCHMARKS)]))
    done = subprocess.run([sys.executable, "-c", _ONE_TIMING, str(config), str(candidates), str(workers)],
                          env=env, capture_output=True, text=True, cwd=tempfile.gettempdir())
    if done.returncode != 0:
        raise SystemExit(f"search_revision_ab.py: a timing with the package of {package_root} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def markdown(r: dict) -> str:
    c = r["config"]
    return "\n".join([
        f"# The DARTS search's scoring, this tree against {r['against']}",
        "",
        f"Round 1 of the full-size search (C={c['channels']}, {c['cells']} cells, Omniglot at {c['image_size']}x"
        f"{c['image_size']}), the origin and {r['candidates']} candidates per timing, scored by {r['workers']} "
        f"worker processes of 1 thread each; {r['repeats']} interleaved repeats, each side in a fresh process with "
        f"its own package; {r['cpus']} CPUs ({r['machine']}), torch {r['torch']}.",
        "",
        "| side | seconds per evaluation (median) |",
        "|---|---|",
        f"| {r['against']} | {r['seconds_per_evaluation']['old']:.2f} |",
        f"| this tree | {r['seconds_per_evaluation']['new']:.2f} |",
        "",
        f"Speed-up: **{r['speedup']:.2f}x** [{r['speedup_quartiles'][0]:.2f}, {r['speedup_quartiles'][1]:.2f}] "
        f"(median of paired ratios old / new [quartiles]); largest relative difference of a condition number "
        f"between the sides: {r['largest_kappa_difference']:.1e}; region counts "
        f"{'equal' if r['regions_equal'] else '**differ**'}.",
        "",
    ])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", required=True, help="the git revision to compare with (a commit, tag or branch)")
    parser.add_argument("--config", type=existing_file, default=CONFIG)
    parser.add_argument("--candidates", type=positive_int, default=9,
                        help="candidates per timing (default 9: with the origin, 10 evaluations for 2 workers)")
    parser.add_argument("--workers", type=positive_int, default=2, help="worker processes of each pool (default 2)")
    parser.add_argument("--repeats", type=positive_int, default=3, help="timings per side (default 3)")
    parser.add_argument("--results", default=str(BENCHMARKS / "results"))
    parser.add_argument("--force", action="store_true", help="replace existing result files")
    args = parser.parse_args(argv)
    out = Path(args.results) / f"search_revision_ab_{re.sub(r'[^A-Za-z0-9._-]', '_', args.against)}.json"
    if out.exists() and not args.force:
        parser.error(f"{out} exists; pass --force to replace it")
    signal.signal(signal.SIGINT, signal.default_int_handler)  # started in the background, SIGINT is ignored
    timings: dict[str, list[dict]] = {"old": [], "new": []}
    try:
        with tempfile.TemporaryDirectory() as folder:
            roots = {"old": export_revision(args.against, Path(folder) / "old"),
                     "new": copy_of_this_tree(Path(folder) / "new")}
            for repeat in range(args.repeats):
                for side in (("old", "new") if repeat % 2 == 0 else ("new", "old")):
                    timings[side].append(one_timing(roots[side], args.config, args.candidates, args.workers))
                    print(f"repeat {repeat + 1}/{args.repeats}: {side}: "
                          f"{timings[side][-1]['seconds_per_evaluation']:.2f} s per evaluation", flush=True)
    except KeyboardInterrupt:
        print("search_revision_ab.py: interrupted; nothing was written", file=sys.stderr)
        return 130
    seconds = {side: [t["seconds_per_evaluation"] for t in ts] for side, ts in timings.items()}
    speedup, q1, q3 = paired_speedup(seconds["old"], seconds["new"])
    old_scores, new_scores = timings["old"][-1]["scores"], timings["new"][-1]["scores"]
    result = {
        "against": args.against, "config": json.loads(args.config.read_text()), "candidates": args.candidates,
        "workers": args.workers, "repeats": args.repeats, "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "seconds": seconds,
        "seconds_per_evaluation": {side: statistics.median(v) for side, v in seconds.items()},
        "speedup": speedup, "speedup_quartiles": [q1, q3],
        "largest_kappa_difference": max(abs(a[0] - b[0]) / max(abs(a[0]), 1e-300)
                                        for a, b in zip(old_scores, new_scores)),
        "regions_equal": [a[1] for a in old_scores] == [b[1] for b in new_scores],
    }
    text = markdown(result)
    print(text)
    write_result_files(out, result, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
