"""The full-size few-shot DARTS search once (issue 16): C=48, 5 cells, 3 repeats, both phases,
on Omniglot tasks (``configs/darts_full_search.json``), with the user's command

    metantk search --space darts-fewshot --channels 48 --cells 5 --repeats 3 ... \
        --executor processes --workers 2 --out benchmarks/work/darts_full_search

which keeps its state in ``search-checkpoint.json`` there: stop it at any time (Ctrl-C, or
``kill -TERM`` of this process, also when it runs in the background) and run this script
again to resume. When the search has finished, its wall time (summed over the
resumptions), evaluation counts and genotype go to results/darts_full_search.{json,md}.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/darts_full_search.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys

import torch
from _options import BENCHMARKS, existing_file, write_result_files

from metantk_plugin import __version__
from metantk_plugin.cli import main as metantk

CONFIG = BENCHMARKS / "configs" / "darts_full_search.json"
SHARED = BENCHMARKS.parent.parent / "shared"


def search_arguments(config: dict, out: str) -> list[str]:
    """``metantk search ...`` of the config, into ``out``."""
    return ["search", "--space", "darts-fewshot",
            "--data", config["data"].format(shared=SHARED), "--channels", str(config["channels"]),
            "--cells", str(config["cells"]), "--repeats", str(config["repeats"]),
            "--image-size", str(config["image_size"]), "--tasks", str(config["tasks"]), "--seed", str(config["seed"]),
            "--executor", config["executor"], "--workers", str(config["workers"]), "--out", out]


def report(config: dict, search: dict) -> dict:
    minutes = search["seconds"] / 60
    return {"config": config, "package_version": __version__, "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "minutes": minutes,
            "within_target": minutes <= config["target_minutes"],
            "kernel_evaluations": search["kernel_evaluations"], "region_evaluations": search["region_evaluations"],
            "rounds": len(search["rounds"]), "round_minutes": [None if t is None else t / 60
                                                              for t in search.get("round_seconds", [])],
            "genotype": search["genotype"]}


def markdown(r: dict) -> str:
    c = r["config"]
    verdict = "within" if r["within_target"] else "**over**"
    return "\n".join([
        "# The full-size few-shot DARTS search on the CPU",
        "",
        f"C={c['channels']}, {c['cells']} cells, {c['repeats']} repeats, {c['tasks']} tasks of Omniglot at "
        f"{c['image_size']}x{c['image_size']}, seed {c['seed']}; {r['cpus']} CPUs ({r['machine']}), "
        f"torch {r['torch']}; candidates scored by `--executor {c['executor']} --workers {c['workers']}`.",
        "",
        f"- wall time: {r['minutes']:.1f} minutes, summed over resumptions ({verdict} the "
        f"{c['target_minutes']}-minute target)",
        f"- {r['kernel_evaluations']} kernel and {r['region_evaluations']} region evaluations in {r['rounds']} rounds",
        "- minutes per round: " + (", ".join("?" if t is None else f"{t:.1f}" for t in r["round_minutes"])
                                   or "not recorded"),
        f"- genotype: `{r['genotype']}`",
        "",
    ])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=existing_file, default=CONFIG)
    parser.add_argument("--work", default=str(BENCHMARKS / "work" / "darts_full_search"),
                        help="the search's --out folder (its checkpoint and search.json)")
    parser.add_argument("--results", default=str(BENCHMARKS / "results"))
    parser.add_argument("--force", action="store_true", help="replace an existing result file")
    args = parser.parse_args(argv)
    config = json.loads(args.config.read_text())
    out = os.path.join(args.results, "darts_full_search.json")
    if os.path.exists(out) and not args.force:
        parser.error(f"{out} exists; pass --force to replace it")
    finished = os.path.join(args.work, "search.json")
    if not os.path.exists(finished):
        signal.signal(signal.SIGINT, signal.default_int_handler)  # started in the background, SIGINT is ignored
        status = metantk(search_arguments(config, args.work))
        if status:
            return status  # the command said why; a checkpoint, if any, is kept for the next run
    result = report(config, json.loads(open(finished, encoding="utf-8").read()))
    text = markdown(result)
    print(text)
    write_result_files(out, result, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
