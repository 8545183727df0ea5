"""Run every benchmark in this folder in turn (``tox -e bench``); each prints its table and
writes JSON (and Markdown) under benchmarks/results/. Pass names to run only some:

    python benchmarks/run_all.py speed nb201_search_seeds
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = {
    "speed": ["speed.py", "--leak-check", "1000"],
    "reduced_precision": ["reduced_precision.py"],
    "nb201_params_check": ["nb201_params_check.py"],
    "nb201_zc_crosscheck": ["nb201_zc_crosscheck.py"],
    "nb201_proxy_correlation": ["nb201_proxy_correlation.py"],
    "nb201_frontier": ["nb201_frontier.py", "--executor", "processes"],
    "nb201_metantk_sensitivity": ["nb201_metantk_sensitivity.py"],
    "nb201_search_seeds": ["nb201_search_seeds.py"],
    "darts_search_cpu_estimate": ["gpu_check.py", "--cpu-search-estimate"],
    "darts_full_search": ["darts_full_search.py"],
    "omniglot_maml_anchor": ["omniglot_maml_anchor.py"],
    "maml_vs_learn2learn": ["maml_vs_learn2learn.py"],
    "nni_regularized_evolution": ["nni_regularized_evolution.py"],
    "nb201_fewshot_table": ["nb201_fewshot_table.py"],
    "darts_fewshot_end_to_end": ["darts_fewshot_end_to_end.py"],
}


def main(names: list[str]) -> int:
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    failed = []
    for name in names or list(BENCHMARKS):
        script, *flags = BENCHMARKS[name]
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        if subprocess.run([sys.executable, str(HERE / script), *flags]).returncode:
            failed.append(name)
        print(f"== {name}: {time.perf_counter() - start:.0f} s", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
