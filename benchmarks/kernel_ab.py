"""The NTK engine of this tree against the one of a git revision, side by side in one run.

Both versions of ``metantk_plugin/kernels/ntk.py`` (this tree's and ``git show REV:...``)
are loaded as modules; one MetaNTK score (``gram`` backend, the networks and tasks of
``speed.py``) is timed with each, interleaved (the side that goes first alternates) after one
untimed warm-up each. Reported per network: the median seconds of each side, the median of
the paired per-repeat ratios (old / new: the speed-up) with its quartiles, both condition
numbers, and each side's peak RSS over one score in a fresh process (spawned, so one side's
allocations do not count against the other's).

    python benchmarks/kernel_ab.py --against d1e13c3 --repeats 6

Writes benchmarks/results/kernel_ab_<rev>.{json,md} (refusing to replace them without --force).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib.util
import multiprocessing
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import torch
from _options import BENCHMARKS, paired_speedup, positive_int, write_result_files
from speed import _tasks, networks, peak_rss_mb

import metantk_plugin.proxies.metantk as metantk_proxy

NTK_PATH = "metantk_plugin/kernels/ntk.py"


def revision_source(rev: str) -> str:
    """``ntk.py`` at ``rev``; a clear error if git cannot give it."""
    done = subprocess.run(["git", "show", f"{rev}:{NTK_PATH}"], cwd=BENCHMARKS.parent, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"kernel_ab.py: git cannot show {NTK_PATH} at {rev!r}: {done.stderr.strip()}")
    return done.stdout


def load_module(source: str, name: str) -> ModuleType:
    """``source`` as a module named ``name`` (registered, so its dataclasses resolve)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{name}.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module


def score_with(module: ModuleType, network: torch.nn.Module, tasks) -> float:
    """One MetaNTK condition number with ``module.empirical_ntk`` as the NTK engine."""
    saved = metantk_proxy.empirical_ntk
    metantk_proxy.empirical_ntk = module.empirical_ntk
    try:
        return metantk_proxy.MetaNTK(backend="gram").condition_number(network, tasks)
    finally:
        metantk_proxy.empirical_ntk = saved


def peak_rss_of_one_score(side: str, rev: str, network_key: str, threads: int) -> float:
    """Peak RSS (MB) of this fresh process after building the network and scoring it once."""
    torch.set_num_threads(threads)
    source = revision_source(rev) if side == "old" else (BENCHMARKS.parent / NTK_PATH).read_text()
    module = load_module(source, f"ntk_{side}")
    score_with(module, networks()[network_key][1](), _tasks(torch.device("cpu")))
    return peak_rss_mb()


def _in_fresh_process(*args) -> float:
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(peak_rss_of_one_score, *args).result()


def compare(key: str, sides: dict[str, ModuleType], repeats: int, rev: str, threads: int) -> dict:
    name, factory = networks()[key]
    network, tasks = factory(), _tasks(torch.device("cpu"))
    seconds: dict[str, list[float]] = {side: [] for side in sides}
    scores: dict[str, float] = {}
    for module in sides.values():
        score_with(module, network, tasks)  # warm-up
    for r in range(repeats):
        for side in (("old", "new") if r % 2 == 0 else ("new", "old")):
            start = time.perf_counter()
            scores[side] = score_with(sides[side], network, tasks)
            seconds[side].append(time.perf_counter() - start)
    speedup, q1, q3 = paired_speedup(seconds["old"], seconds["new"])
    return {"network": name, "old_s": statistics.median(seconds["old"]), "new_s": statistics.median(seconds["new"]),
            "speedup": speedup, "speedup_q1": q1, "speedup_q3": q3,
            "seconds": seconds, "condition_numbers": scores,
            "peak_rss_mb": {side: _in_fresh_process(side, rev, key, threads) for side in sides}}


def markdown(report: dict) -> str:
    lines = [f"# The NTK engine of this tree against {report['against']}", "",
             f"One MetaNTK score (`gram`), {report['repeats']} interleaved repeats per side, "
             f"{report['threads']} threads, "
             f"torch {report['torch']}, {report['machine']}. Speed-up: median of the paired ratios old / new "
             "[quartiles]; peak RSS: one score in a fresh process.", "",
             "| network | old s | new s | speed-up | old peak RSS MB | new peak RSS MB | κ old | κ new |",
             "|---|---|---|---|---|---|---|---|"]
    for r in report["networks"]:
        lines.append(f"| {r['network']} | {r['old_s']:.3f} | {r['new_s']:.3f} | {r['speedup']:.2f}x "
                     f"[{r['speedup_q1']:.2f}, {r['speedup_q3']:.2f}] | {r['peak_rss_mb']['old']:.0f} | "
                     f"{r['peak_rss_mb']['new']:.0f} | {r['condition_numbers']['old']:.6f} | "
                     f"{r['condition_numbers']['new']:.6f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", required=True, help="the git revision of the old ntk.py (a commit, tag or branch)")
    parser.add_argument("--repeats", type=positive_int, default=6, help="timed scores per side and network (default 6)")
    parser.add_argument("--threads", type=positive_int, default=2, help="torch threads (default 2)")
    parser.add_argument("--networks", default="all", choices=("nb201", "darts", "all"))
    parser.add_argument("--force", action="store_true", help="replace existing result files")
    args = parser.parse_args()
    stem = BENCHMARKS / "results" / ("kernel_ab_" + re.sub(r"[^A-Za-z0-9._-]", "_", args.against))
    if stem.with_suffix(".json").exists() and not args.force:
        parser.error(f"{stem}.json exists; pass --force to replace it")
    torch.set_num_threads(args.threads)
    sides = {"old": load_module(revision_source(args.against), "ntk_old"),
             "new": load_module((BENCHMARKS.parent / NTK_PATH).read_text(), "ntk_new")}
    report = {"against": args.against, "repeats": args.repeats, "threads": args.threads, "torch": torch.__version__,
              "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "networks": []}
    for key in networks():
        if args.networks in ("all", key):
            report["networks"].append(compare(key, sides, args.repeats, args.against, args.threads))
    write_result_files(stem.with_suffix(".json"), report, markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("kernel_ab.py: interrupted; nothing was written (results are written only when every network is done)",
              file=sys.stderr)
        sys.exit(130)
