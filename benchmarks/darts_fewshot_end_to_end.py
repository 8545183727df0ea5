"""MetaNTK-NAS end to end in the few-shot DARTS space: search on Omniglot tasks with a
reduced supernet (MetaNTK, TE-NAS's NTK, linear regions only; 3 seeds each), then train
and test every found genotype, random genotypes of the same space, the 12 official
MetaNTK-NAS genotypes and the 3 MetaNAS genotypes with one protocol and one network size, 5-way 1-shot and 5-shot.

    python benchmarks/darts_fewshot_end_to_end.py                 # every phase, resumable
    python benchmarks/darts_fewshot_end_to_end.py --phases report

Phases: ``search`` (each search is the user's command, ``metantk search --space
darts-fewshot ... --out benchmarks/work/darts_search/INDICATOR_sSEED``; a finished one is
skipped), ``train`` (one few-shot table, benchmarks/work/darts_fewshot_end_to_end.h5,
resumable), ``report`` (benchmarks/results/darts_fewshot_end_to_end.{md,json,png}).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from metantk_plugin import __version__
from metantk_plugin.atomic_files import write_atomically
from metantk_plugin.fewshot.evaluation import confidence_interval
from metantk_plugin.fewshot.pipeline import EvaluationSettings
from metantk_plugin.fewshot.table import FewShotTableSettings, evaluate_architectures, read_fewshot_table
from metantk_plugin.scoring.architectures import canonical_architecture, read_search_result, select_architectures
from metantk_plugin.spaces.darts_fewshot import available_presets

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CONFIG = REPO / "benchmarks" / "configs" / "darts_fewshot_end_to_end.json"
RESULTS = REPO / "benchmarks" / "results"
WORK = REPO / "benchmarks" / "work"
PHASES = ("search", "train", "report")


def search_folder(indicator: str, seed: int) -> Path:
    return WORK / "darts_search" / f"{indicator}_s{seed}"


def search_command(config: dict, indicator: str, seed: int) -> list[str]:
    s = config["search"]
    return [sys.executable, "-m", "metantk_plugin.cli", "search", "--space", "darts-fewshot",
            "--data", config["data"].format(shared=SHARED), "--indicator", indicator, "--seed", str(seed),
            "--channels", str(s["channels"]), "--cells", str(s["cells"]), "--image-size", str(s["image_size"]),
            "--repeats", str(s["repeats"]), "--tasks", str(s["tasks"]), "--json",
            "--out", str(search_folder(indicator, seed))]


def run_searches(config: dict, workers: int) -> None:
    jobs = [(i, s) for i in config["search"]["indicators"] for s in config["search"]["seeds"]
            if not (search_folder(i, s) / "search.json").exists()]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}

    def one(job):
        indicator, seed = job
        folder = search_folder(indicator, seed)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "log.txt", "w") as log:
            done = subprocess.run(search_command(config, indicator, seed), stdout=subprocess.DEVNULL, stderr=log,
                                  env=env, check=False)
        print(f"search {indicator} seed {seed}: exit {done.returncode}", flush=True)
        return done.returncode

    with ThreadPoolExecutor(workers) as pool:
        failed = [job for job, code in zip(jobs, pool.map(one, jobs)) if code != 0]
    if failed:
        raise SystemExit(f"searches failed: {failed} (see their log.txt under {WORK / 'darts_search'})")


def candidates(config: dict) -> dict[str, dict]:
    """Every genotype to train, by label, with its group and search cost."""
    out: dict[str, dict] = {}
    for indicator in config["search"]["indicators"]:
        for seed in config["search"]["seeds"]:
            path = search_folder(indicator, seed) / "search.json"
            if path.exists():
                report = json.loads(path.read_text())
                out[f"{indicator} seed {seed}"] = {
                    "group": f"search: {indicator}", "genotype": read_search_result(path, "darts-fewshot"),
                    "search_seconds": report["seconds"], "kernel_evaluations": report["kernel_evaluations"],
                    "region_evaluations": report["region_evaluations"]}
    for i, genotype in enumerate(select_architectures("darts-fewshot", config["random"])):
        out[f"random {i}"] = {"group": "random", "genotype": genotype, "search_seconds": 0.0}
    for name in available_presets():
        group = "official MetaNTK-NAS" if name.startswith("metantk-nas/") else "MetaNAS (gradient-based)"
        out[name] = {"group": group, "genotype": canonical_architecture("darts-fewshot", name), "search_seconds": None}
    return out


def table_settings(config: dict, device: str) -> FewShotTableSettings:
    t = config["train"]
    evaluation = EvaluationSettings(
        network="*", data=config["data"].format(shared=SHARED), protocol=t["protocol"], ways=t["ways"],
        shots=t["shots"][0], queries=t["queries"], meta_iterations=t["meta_iterations"], episodes=t["episodes"],
        seed=t["seed"], batch_size=t["batch_size"], channels=t["channels"], cells=t["cells"], device=device)
    return FewShotTableSettings("darts-fewshot", evaluation, shots=tuple(t["shots"]))


def table_path(device: str) -> Path:
    suffix = "" if device == "cpu" else "_" + device.replace(":", "")
    return WORK / f"darts_fewshot_end_to_end{suffix}.h5"


def report(config: dict, device: str) -> dict:
    table, _ = read_fewshot_table(table_path(device))
    rows = table.set_index("arch")
    ways = config["train"]["ways"]
    labelled = candidates(config)
    entries = []
    for label, c in labelled.items():
        if c["genotype"] not in rows.index:
            continue
        row = rows.loc[c["genotype"]]
        entry = {"label": label, **c, "parameters": int(row["parameters"]),
                 "train_seconds": float(row["train_seconds"])}
        for s in config["train"]["shots"]:
            entry[f"{s}-shot"] = [100 * float(row[f"acc_{ways}way_{s}shot"]),
                                  100 * float(row[f"ci95_{ways}way_{s}shot"])]
        entries.append(entry)
    groups: dict[str, dict] = {}
    for group in dict.fromkeys(e["group"] for e in entries):
        members = [e for e in entries if e["group"] == group]
        summary = {"n": len(members)}
        for s in config["train"]["shots"]:
            values = np.array([m[f"{s}-shot"][0] for m in members])
            mean, half = confidence_interval(values)
            summary[f"{s}-shot"] = [mean, half]
        costs = [m["search_seconds"] for m in members if m["search_seconds"] is not None]
        summary["search_seconds"] = float(np.mean(costs)) if costs else None
        groups[group] = summary
    comparisons = {}
    random = [e for e in entries if e["group"] == "random"]
    rng = np.random.default_rng(0)
    for group in groups:
        if not group.startswith("search"):
            continue
        members = [e for e in entries if e["group"] == group]
        for s in config["train"]["shots"]:
            a = np.array([m[f"{s}-shot"][0] for m in members])
            b = np.array([m[f"{s}-shot"][0] for m in random])
            boot = [rng.choice(a, len(a)).mean() - rng.choice(b, len(b)).mean() for _ in range(config["bootstrap"])]
            comparisons[f"{group} - random, {s}-shot"] = {
                "delta": float(a.mean() - b.mean()), "ci": [float(v) for v in np.percentile(boot, [2.5, 97.5])]}
    plot(entries, groups, config, RESULTS / "darts_fewshot_end_to_end.png")
    return {"entries": entries, "groups": groups, "comparisons": comparisons}


def plot(entries: list[dict], groups: dict, config: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    shots = config["train"]["shots"]
    fig, axes = plt.subplots(1, len(shots), figsize=(6 * len(shots), 4.2), squeeze=False)
    colours = dict(zip(groups, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for ax, s in zip(axes.flat, shots):
        for group in groups:
            members = [e for e in entries if e["group"] == group]
            if members[0]["search_seconds"] is None:
                mean, half = groups[group][f"{s}-shot"]
                ax.axhspan(mean - half, mean + half, color=colours[group], alpha=0.25,
                           label=f"{group}: mean of {len(members)} ± 95% CI")
                continue
            x = [max(m["search_seconds"], 1.0) for m in members]
            y = [m[f"{s}-shot"][0] for m in members]
            err = [m[f"{s}-shot"][1] for m in members]
            ax.errorbar(x, y, yerr=err, fmt="o", ms=7, capsize=3, color=colours[group], label=group)
        ax.set_xscale("log")
        ax.set_xlabel("search wall seconds on this CPU (random: sampling, shown at 1 s)")
        ax.set_ylabel(f"Omniglot 5-way {s}-shot accuracy (%)")
        ax.set_title(f"{s}-shot: accuracy vs search cost")
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    try:
        write_atomically(path, lambda file: fig.savefig(file, dpi=110, format="png"), binary=True)
    finally:
        plt.close(fig)


def markdown(config: dict, out: dict) -> str:
    shots = config["train"]["shots"]
    lines = ["# MetaNTK-NAS end to end in the few-shot DARTS space", "",
             "| genotype | group | search s | params | " + " | ".join(f"{s}-shot % ± 95% CI" for s in shots) + " |",
             "|---|---|---:|---:|" + "---:|" * len(shots)]
    for e in out["entries"]:
        cost = "—" if e["search_seconds"] is None else f"{e['search_seconds']:.0f}"
        accs = " | ".join(f"{e[f'{s}-shot'][0]:.2f} ± {e[f'{s}-shot'][1]:.2f}" for s in shots)
        lines.append(f"| {e['label']} | {e['group']} | {cost} | {e['parameters']:,} | {accs} |")
    lines += ["", "| group | n | mean search s | " + " | ".join(f"{s}-shot mean ± 95% CI" for s in shots) + " |",
              "|---|---:|---:|" + "---:|" * len(shots)]
    for group, g in out["groups"].items():
        cost = "—" if g["search_seconds"] is None else f"{g['search_seconds']:.0f}"
        accs = " | ".join(f"{g[f'{s}-shot'][0]:.2f} ± {g[f'{s}-shot'][1]:.2f}" for s in shots)
        lines.append(f"| {group} | {g['n']} | {cost} | {accs} |")
    lines += ["", "Searched minus random (difference of group means, bootstrap 95 % interval):", ""]
    lines += [f"- {k}: {v['delta']:+.2f} points [{v['ci'][0]:+.2f}, {v['ci'][1]:+.2f}]"
              for k, v in out["comparisons"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma list of {', '.join(PHASES)}")
    parser.add_argument("--workers", type=int, default=2, help="searches / trainings at a time (default 2)")
    parser.add_argument("--device", default="cpu", help="device of the training phase (default cpu)")
    args = parser.parse_args(argv)
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    if any(p not in PHASES for p in phases):
        parser.error(f"phases must be among {', '.join(PHASES)}")
    config = json.loads(CONFIG.read_text())
    WORK.mkdir(parents=True, exist_ok=True)
    if "search" in phases:
        run_searches(config, args.workers)
    if "train" in phases:
        genotypes = [c["genotype"] for c in candidates(config).values()]
        summary = evaluate_architectures(table_settings(config, args.device), genotypes, table_path(args.device),
                                         executor="processes", workers=args.workers)
        print(f"train: {summary.scored} genotypes now, {summary.already_done} before", flush=True)
    if "report" in phases:
        out = report(config, args.device)
        out.update(command=" ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]), config=config,
                   package_version=__version__, torch=torch.__version__, machine=platform.platform())
        text = markdown(config, out)
        (RESULTS / "darts_fewshot_end_to_end.md").write_text(text)
        (RESULTS / "darts_fewshot_end_to_end.json").write_text(json.dumps(out, indent=1) + "\n")
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
