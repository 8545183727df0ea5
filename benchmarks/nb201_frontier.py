"""The zero-cost proxy frontier on NAS-Bench-201: ZiCo, MeCo, SWAP, GradSign and AZ-NAS
beside the earlier proxies and MetaNTK, their robustness to the seed, the cheap proxies on
every cell, rank ensembles, and the papers' figures beside ours with measured reasons for
the gaps.

    python benchmarks/nb201_frontier.py --phases sample,ablations,seed,all-cells --executor processes --workers 2
    python benchmarks/nb201_frontier.py --phases report --force

Every scoring phase is resumable (stop it at any time; the same command goes on):

- ``sample``: the new proxies with seed 0 on the 1,000 cells of ``nb201_proxy_correlation``,
  whose committed scores give the earlier proxies on the same tasks, weights and seed;
- ``ablations``: the first ``ablation_cells`` of them again with one setting changed per
  variant (Gaussian images, more images, the official re-initialisations);
- ``seed``: every proxy with the second seed (other tasks and weights) on the 1,000 cells;
- ``all-cells``: the cheap proxies on all 15,625 cells in the seeded order ``sample:15625:0``
  (whose first 1,000 are the sample), so a stopped run is still a uniform random sample;
- ``report``: ``benchmarks/results/nb201_frontier.{md,json,png}``, the raw scores of the
  sample (``nb201_frontier_sample_scores.csv.gz``, a ``seed`` column) and of every scored
  cell (``nb201_all_cells_scores.csv.gz``).
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import math
import platform
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _options import BENCHMARKS, add_run_options, existing_file
from nb201_proxy_correlation import cost_table, settings_from_config

from metantk_plugin import __version__
from metantk_plugin.atomic_files import write_atomically, write_file_atomically
from metantk_plugin.proxies import available_proxies, resolve_proxy
from metantk_plugin.proxies.rank_ensemble import ensemble_gain, ensemble_name, rank_ensemble
from metantk_plugin.proxies.swap import NB201_MU, NB201_SIGMA
from metantk_plugin.scoring.architectures import select_architectures
from metantk_plugin.scoring.correlation import CorrelationResult, correlate, oriented, spearman, spearman_difference
from metantk_plugin.scoring.report import format_table, proxy_directions
from metantk_plugin.scoring.run import score_architectures
from metantk_plugin.scoring.store import read_scores
from metantk_plugin.spaces.nasbench201 import GroundTruth

CONFIG = BENCHMARKS / "configs" / "nb201_frontier.json"
SUITE_SCORES = BENCHMARKS.parent.parent / "shared" / "data" / "nasbench201" / "nb201_zc_proxies.csv.gz"
COMMITTED = BENCHMARKS / "results"
"""Where the earlier proxies' committed scores and costs are read from."""
PHASES = ("sample", "ablations", "seed", "all-cells", "report")
SHORT = {"cifar10": "C10", "cifar100": "C100", "imagenet16-120": "IN16"}
METANTK = ("metantk", "metantk_anil")


def _task_config(config: dict) -> dict:
    return json.loads((BENCHMARKS / "configs" / config["task_settings"]).read_text())


def _slug(text: str) -> str:
    return "_".join("".join(c if c.isalnum() else " " for c in text.lower()).split()[:4])


def scoring_runs(config: dict, work: Path) -> dict[str, list[tuple]]:
    """Phase -> [(label, settings, architectures, score file)]."""
    task = _task_config(config)

    def settings(proxies, **changes):
        return settings_from_config({**task, "proxies": list(proxies), **changes})

    sample = select_architectures("nb201", config["sample"])
    seed = config["second_seed"]
    return {
        "sample": [("seed 0", settings(config["new_proxies"]), sample, work / "nb201_frontier_seed0.h5")],
        "ablations": [
            (label, settings(variant["proxies"], **{k: v for k, v in variant.items() if k != "proxies"}),
             sample[: config["ablation_cells"]], work / f"nb201_frontier_ablation_{_slug(label)}.h5")
            for label, variant in config["ablations"].items()
        ],
        "seed": [(f"seed {seed}", settings(available_proxies("all"), seed=seed), sample,
                  work / f"nb201_frontier_seed{seed}.h5")],
        "all-cells": [("all cells", settings(config["all_cells_proxies"]),
                       select_architectures("nb201", config["all_cells"]), work / "nb201_frontier_all_cells.h5")],
    }


def _scored(path: Path) -> pd.DataFrame | None:
    return read_scores(path) if path.exists() else None


def _accuracies(config: dict, archs: list[str]) -> dict[str, pd.Series]:
    ground = GroundTruth.open(None)
    return {d: pd.Series(ground.accuracies(archs, dataset=d, split=config["metric"], epochs=config["epochs"])
                         .to_numpy(), index=pd.Index(archs)) for d in config["datasets"]}


def _aligned(table: pd.DataFrame, proxy: str, accuracy: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Oriented scores and accuracies of the cells of ``table`` that have an accuracy."""
    acc = accuracy.reindex(table["arch"]).to_numpy(dtype=np.float64)
    keep = np.isfinite(acc)
    return oriented(table[proxy].to_numpy()[keep], resolve_proxy(proxy).higher_is_better), acc[keep]


def _bootstrap_spearman(x: np.ndarray, y: np.ndarray, n_bootstrap: int) -> tuple[float, tuple[float, float]]:
    """Spearman ρ(x, y) with its percentile 95% bootstrap interval over the pairs."""
    idx = np.random.default_rng(0).integers(0, len(x), size=(n_bootstrap, len(x)))
    boot = spearman(x[idx], y[idx])
    boot = boot[np.isfinite(boot)]
    low, high = np.percentile(boot, [2.5, 97.5]) if boot.size else (math.nan, math.nan)
    return float(spearman(x, y)), (float(low), float(high))


def seed0_table(config: dict, work: Path) -> pd.DataFrame:
    """The committed earlier-proxy scores joined with the new proxies' (cells scored by both)."""
    earlier = pd.read_csv(COMMITTED / config["earlier_scores"])
    new = read_scores(work / "nb201_frontier_seed0.h5")
    return earlier.merge(new, on="arch", how="inner", validate="one_to_one")


def _network_proxies(table: pd.DataFrame) -> list[str]:
    names = set(available_proxies("network"))
    return [c for c in table.columns if c in names]


def best_ensembles(table: pd.DataFrame, accuracies: dict[str, pd.Series], candidates: int,
                   n_bootstrap: int) -> list[dict]:
    """Per target: the best rank ensemble of 2 to 4 of the ``candidates`` best single proxies
    other than MetaNTK, and the paired-bootstrap gain in ρ from adding MetaNTK to it."""
    out = []
    columns = {p: table[p].to_numpy(dtype=np.float64) for p in _network_proxies(table)}
    for target, accuracy in accuracies.items():
        acc = accuracy.reindex(table["arch"]).to_numpy(dtype=np.float64)
        keep = np.isfinite(acc)
        single = {p: float(spearman(oriented(v[keep], resolve_proxy(p).higher_is_better), acc[keep]))
                  for p, v in columns.items() if p not in METANTK}
        top = sorted(single, key=lambda p: -single[p] if math.isfinite(single[p]) else math.inf)[:candidates]
        kept = {p: v[keep] for p, v in columns.items()}
        best, best_rho = None, -math.inf
        for size in (2, 3, 4):
            for members in itertools.combinations(top, size):
                rho = float(spearman(rank_ensemble(ensemble_name(members)).combine(kept), acc[keep]))
                if rho > best_rho:
                    best, best_rho = members, rho
        gain, ci = ensemble_gain(columns, acc, best, "metantk", n_bootstrap=n_bootstrap)
        out.append({"target": target, "best_without_metantk": ensemble_name(best), "rho": best_rho,
                    "best_single": top[0], "best_single_rho": single[top[0]],
                    "gain_from_metantk": gain, "gain_ci": list(ci)})
    return out


def _with_ensembles(table: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    table = table.copy()
    columns = {p: table[p].to_numpy(dtype=np.float64) for p in _network_proxies(table)}
    for name in names:
        table[name] = rank_ensemble(name).combine(columns)
    return table


def seed_robustness(first: pd.DataFrame, second: pd.DataFrame, accuracy: pd.Series, n_bootstrap: int) -> list[dict]:
    """Per proxy in both tables: ρ between the two seeds' scores over the common cells (with
    its bootstrap interval) and each seed's ρ with ``accuracy``."""
    both = first.merge(second, on="arch", suffixes=("_a", "_b"), validate="one_to_one")
    acc = accuracy.reindex(both["arch"]).to_numpy(dtype=np.float64)
    keep = np.isfinite(acc)
    rows = []
    for proxy in [c for c in first.columns if c != "arch" and c in second.columns]:
        higher = resolve_proxy(proxy).higher_is_better
        a, b = (oriented(both[f"{proxy}_{s}"].to_numpy(), higher) for s in "ab")
        rho, ci = _bootstrap_spearman(a, b, n_bootstrap)
        rows.append({"proxy": proxy, "cells": int(len(both)), "rho_between_seeds": rho, "ci": list(ci),
                     "rho_accuracy_first": float(spearman(a[keep], acc[keep])),
                     "rho_accuracy_second": float(spearman(b[keep], acc[keep]))})
    return sorted(rows, key=lambda r: -r["rho_between_seeds"] if math.isfinite(r["rho_between_seeds"]) else math.inf)


def ablation_effects(config: dict, base: pd.DataFrame, work: Path, accuracies: dict[str, pd.Series],
                     n_bootstrap: int) -> list[dict]:
    """For each variant and proxy: ρ with the baseline settings and with the variant on the
    same cells, and their paired-bootstrap difference, per target."""
    rows = []
    for label, _settings, _archs, path in scoring_runs(config, work)["ablations"]:
        variant = _scored(path)
        if variant is None or len(variant) < 3:
            continue
        baseline = base[base["arch"].isin(variant["arch"])].reset_index(drop=True)
        variant = variant.set_index("arch").loc[baseline["arch"]].reset_index()
        for proxy in config["ablations"][label]["proxies"]:
            kind = resolve_proxy(proxy)
            if getattr(kind, "inputs", None):  # a population proxy: rank within these cells
                baseline[proxy] = kind.combine({m: baseline[m].to_numpy(dtype=np.float64) for m in kind.inputs})
            for target, accuracy in accuracies.items():
                a, acc = _aligned(variant, proxy, accuracy)
                b, _ = _aligned(baseline, proxy, accuracy)
                delta, ci = spearman_difference(a, b, acc, n_bootstrap=n_bootstrap)
                rows.append({"variant": label, "proxy": proxy, "target": target, "cells": int(len(acc)),
                             "rho_baseline": float(spearman(b, acc)), "rho_variant": float(spearman(a, acc)),
                             "difference": delta, "ci": list(ci)})
    return rows


def accuracy_definition_effects(config: dict, table: pd.DataFrame) -> list[dict]:
    """Each published proxy's ρ with the validation accuracy (the ``cifar10-valid`` run) instead
    of the test accuracy (same cells, same scores): how much the choice of accuracy moves it."""
    ground = GroundTruth.open(None)
    archs = list(table["arch"])
    rows = []
    for target in config["datasets"]:
        try:
            test, valid = (pd.Series(ground.accuracies(archs, dataset=target, split=split, epochs=config["epochs"])
                                     .to_numpy(), index=pd.Index(archs)) for split in ("test", "valid"))
        except ValueError:  # the shared table has validation accuracies after 200 epochs for CIFAR-10 only
            continue
        for proxy in (p for p in config["published"] if p in table.columns):
            a, acc_valid = _aligned(table, proxy, valid)
            b, acc_test = _aligned(table, proxy, test)
            rows.append({"variant": "validation instead of test accuracy", "proxy": proxy, "target": target,
                         "cells": int(len(a)), "rho_baseline": float(spearman(b, acc_test)),
                         "rho_variant": float(spearman(a, acc_valid)),
                         "difference": float(spearman(a, acc_valid) - spearman(b, acc_test)), "ci": None})
    return rows


def suite_effects(config: dict, table: pd.DataFrame, n_bootstrap: int) -> list[dict]:
    """With NAS-Bench-Suite-Zero's published CIFAR-10 scores (a CIFAR-10 batch of 64, 10
    classes) of the proxies it has: their ρ on our sample's cells and on all its cells (the
    sampling effect), and ours against theirs on the same cells (the input-data effect)."""
    suite = pd.read_csv(SUITE_SCORES)
    ground = GroundTruth.open(None)
    rows = []
    for proxy in (p for p in config["published"] if f"c10_{p}" in suite.columns and p in table.columns):
        scores = suite[["arch", f"c10_{proxy}"]].dropna().rename(columns={f"c10_{proxy}": proxy})
        for target in config["datasets"]:
            accuracy = pd.Series(ground.accuracies(list(scores["arch"]), dataset=target, split=config["metric"],
                                                   epochs=config["epochs"]).to_numpy(), index=pd.Index(scores["arch"]))
            theirs_all, acc_all = _aligned(scores, proxy, accuracy)
            common = table[["arch", proxy]].merge(scores, on="arch", suffixes=("", "_suite"))
            ours, acc = _aligned(common, proxy, accuracy)
            theirs, _ = _aligned(common.drop(columns=proxy).rename(columns={f"{proxy}_suite": proxy}), proxy,
                                 accuracy)
            rows.append({"variant": f"NAS-Bench-Suite-Zero's CIFAR-10 scores, our {len(common)} sample cells → "
                                    f"all its {len(scores)} cells",
                         "proxy": proxy, "target": target, "cells": int(len(acc_all)),
                         "rho_baseline": float(spearman(theirs, acc)),
                         "rho_variant": float(spearman(theirs_all, acc_all)),
                         "difference": float(spearman(theirs_all, acc_all) - spearman(theirs, acc)), "ci": None})
            delta, ci = spearman_difference(theirs, ours, acc, n_bootstrap=n_bootstrap)
            rows.append({"variant": "NAS-Bench-Suite-Zero's CIFAR-10 batch of 64 instead of our Omniglot tasks "
                                    f"({len(common)} cells)",
                         "proxy": proxy, "target": target, "cells": int(len(acc)),
                         "rho_baseline": float(spearman(ours, acc)), "rho_variant": float(spearman(theirs, acc)),
                         "difference": delta, "ci": list(ci)})
    return rows


def swap_reg_tuning_effect(table: pd.DataFrame, accuracies: dict[str, pd.Series], tuned_on: str = "cifar100",
                           grid: int = 41) -> list[dict]:
    """SWAP's regulariser with μ and σ tuned on these cells' ``tuned_on`` accuracy (in sample,
    as the paper tuned them per space) instead of our range-based defaults:
    swap · exp(−(P_K − μ)²/σ) over a grid of μ in [min P_K, max P_K] and σ = (range of P_K)² · 10^[−3, 1]."""
    p_k = table["params"].to_numpy(dtype=np.float64) / 1000.0
    swap_scores = table["swap"].to_numpy(dtype=np.float64)

    def regularised(mu: float, sigma: float) -> pd.DataFrame:
        return pd.DataFrame({"arch": table["arch"], "swap_reg": swap_scores * np.exp(-((p_k - mu) ** 2) / sigma)})

    def rho(frame: pd.DataFrame, target: str) -> float:
        return float(spearman(*_aligned(frame, "swap_reg", accuracies[target])))

    spread = (p_k.max() - p_k.min()) ** 2
    candidates = [(mu, spread * f) for mu in np.linspace(p_k.min(), p_k.max(), grid) for f in np.logspace(-3, 1, grid)]
    mu, sigma = max(candidates, key=lambda c: rho(regularised(*c), tuned_on))
    return [{"variant": f"swap_reg's μ = {mu:.0f}, σ = {sigma:.3g} tuned on these cells' {tuned_on} accuracy "
                        f"(ours: μ = {NB201_MU}, σ = {NB201_SIGMA:.4g})",
             "proxy": "swap_reg", "target": target, "cells": int(len(table)),
             "rho_baseline": rho(regularised(NB201_MU, NB201_SIGMA), target),
             "rho_variant": rho(regularised(mu, sigma), target),
             "difference": rho(regularised(mu, sigma), target) - rho(regularised(NB201_MU, NB201_SIGMA), target),
             "ci": None} for target in accuracies]


def cross_check(config: dict, sample: list[CorrelationResult], every: list[CorrelationResult] | None,
                ablations: list[dict]) -> list[dict]:
    """Each published proxy: our ρ on the sample (and on all scored cells) beside the paper's."""
    ours = {(r.proxy, r.target): r for r in sample}
    full = {(r.proxy, r.target): r for r in every or []}
    rows = []
    for proxy, published in config["published"].items():
        if proxy == "source":
            continue
        for target, paper in zip(config["datasets"], published):
            mine = ours.get((proxy, target))
            if mine is None or paper is None:
                continue
            whole = full.get((proxy, target))
            rows.append({
                "proxy": proxy, "target": target, "paper": paper, "ours": mine.spearman, "ci": list(mine.spearman_ci),
                "gap": mine.spearman - paper,
                "ours_all_cells": whole.spearman if whole else None, "all_cells": whole.n if whole else 0,
                "measured_effects": [{k: a[k] for k in ("variant", "rho_baseline", "rho_variant", "difference", "ci")}
                                     for a in ablations if a["proxy"] == proxy and a["target"] == target],
            })
    return rows


def write_scores_csv(table: pd.DataFrame, path: Path) -> Path:
    """Raw scores as gzip-compressed CSV (float32 scores exactly: 9 significant digits)."""
    text = table.to_csv(index=False, float_format="%.9g")
    return write_file_atomically(path, gzip.compress(text.encode(), compresslevel=9, mtime=0))


def plot_frontier(sample: list[CorrelationResult], published: dict, path: Path) -> Path:
    """ρ [95% CI] of every proxy per target on the sample, papers' figures as crosses."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    targets = list(dict.fromkeys(r.target for r in sample))
    fig, axes = plt.subplots(1, len(targets), figsize=(4.2 * len(targets), 8), sharey=True, squeeze=False)
    first = sorted((r for r in sample if r.target == targets[0]), key=lambda r: r.spearman)
    order = [r.proxy for r in first]
    for ax, target in zip(axes[0], targets):
        by = {r.proxy: r for r in sample if r.target == target}
        y = np.arange(len(order))
        rho = np.array([by[p].spearman for p in order])
        low = np.array([by[p].spearman_ci[0] for p in order])
        high = np.array([by[p].spearman_ci[1] for p in order])
        colours = ["tab:red" if p in METANTK else "tab:blue" for p in order]
        ax.barh(y, rho, color=colours, alpha=0.75)
        error = [np.clip(rho - low, 0, None), np.clip(high - rho, 0, None)]
        ax.errorbar(rho, y, xerr=error, fmt="none", ecolor="black", capsize=2, lw=1)
        column = targets.index(target)
        paper = [(i, published[p][column]) for i, p in enumerate(order)
                 if p in published and published[p][column] is not None]
        if paper:
            ax.scatter([v for _, v in paper], [i for i, _ in paper], marker="x", color="black", s=40,
                       label="paper (all 15,625 cells)", zorder=3)
            ax.legend(fontsize=8, loc="lower right")
        ax.set_yticks(y, order, fontsize=8)
        ax.set_title(f"{target}: Spearman ρ [95% CI]", fontsize=10)
        ax.axvline(0, color="grey", lw=0.8)
    fig.tight_layout()
    try:
        return write_atomically(path, lambda file: fig.savefig(file, dpi=110, format="png"), binary=True)
    finally:
        plt.close(fig)


def _interval_text(ci) -> str:
    return f" [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else ""


def markdown(report: dict, config: dict) -> str:
    """The report as Markdown."""
    lines = ["# The zero-cost proxy frontier on NAS-Bench-201", "", config["description"], "",
             f"Commands: `{report['commands'][0]}`, then `{report['commands'][1]}`.", "", report["inputs"], ""]
    if "cross_check" in report:
        lines += ["## Beside the papers", "",
                  f"Papers: {config['published']['source']}. Ours: Spearman ρ [95% CI] on the "
                  f"{report['sample_cells']}-cell sample, and on the {report.get('all_cells', 0)} cells of the "
                  "all-cells run. A gap over 0.05 is explained by the measured effects listed under it "
                  "(ablations on the first cells of the sample, one setting changed at a time).", "",
                  "| proxy | target | paper | ours, sample | ours, all cells | gap "
                  "| where the gap is over 0.05: measured effects (ρ baseline → variant, Δ [CI]) |",
                  "|---|---|---:|---:|---:|---:|---|"]
        for row in report["cross_check"]:
            flagged = abs(row["gap"]) > 0.05
            effects = "; ".join(f"{e['variant']}: {e['rho_baseline']:+.2f} → {e['rho_variant']:+.2f} "
                                f"({e['difference']:+.2f}{_interval_text(e['ci'])})"
                                for e in row["measured_effects"]) if flagged else ""
            whole = f"{row['ours_all_cells']:+.3f}" if row["ours_all_cells"] is not None else "–"
            flag = " **>0.05**" if flagged else ""
            lines.append(f"| {row['proxy']} | {SHORT[row['target']]} | {row['paper']:.3f} | {row['ours']:+.3f} "
                         f"[{row['ci'][0]:+.2f}, {row['ci'][1]:+.2f}] | {whole} | {row['gap']:+.3f}{flag} "
                         f"| {effects} |")
        lines.append("")
    if report.get("ablations"):
        lines += ["## Measured effects", "",
                  "One setting changed at a time, same proxies: the ablations re-score the first cells of the sample; "
                  "the accuracy and NAS-Bench-Suite-Zero rows need no scoring. Δ with its paired-bootstrap interval "
                  "where both figures share the accuracies.", "",
                  "| change | proxy | target | cells | ρ before | ρ after | Δ [95% CI] |",
                  "|---|---|---|---:|---:|---:|---:|"]
        lines += [f"| {e['variant']} | {e['proxy']} | {SHORT[e['target']]} | {e['cells']} | "
                  f"{e['rho_baseline']:+.3f} | {e['rho_variant']:+.3f} | {e['difference']:+.3f}"
                  f"{_interval_text(e['ci'])} |" for e in report["ablations"]]
        lines.append("")
    if "ensembles" in report:
        lines += ["## Does MetaNTK add information beyond the best proxies?", "",
                  "Best rank ensemble of 2 to 4 of the best single proxies other than MetaNTK (chosen on these same "
                  "cells, which favours the ensemble), and the paired-bootstrap gain in ρ from adding `metantk`.", "",
                  "| target | best single | best ensemble without MetaNTK | ρ | gain from adding metantk [95% CI] |",
                  "|---|---|---|---:|---:|"]
        for e in report["ensembles"]:
            lines.append(f"| {e['target']} | {e['best_single']} ({e['best_single_rho']:+.3f}) | "
                         f"`{e['best_without_metantk']}` | {e['rho']:+.3f} | "
                         f"{e['gain_from_metantk']:+.3f} [{e['gain_ci'][0]:+.3f}, {e['gain_ci'][1]:+.3f}] |")
        lines.append("")
    if "sample_table" in report:
        lines += ["## Every proxy on the sample (seed 0)", "", report["sample_table"], ""]
    if "seed_robustness" in report:
        rows = report["seed_robustness"]
        lines += ["## Robustness to the seed", "",
                  f"Spearman ρ between the scores of seed 0 and seed {config['second_seed']} (other tasks, other "
                  f"initial weights) on {rows[0]['cells'] if rows else 0} cells, with the bootstrap interval, and "
                  "each seed's ρ with CIFAR-10 accuracy.", "",
                  "| proxy | ρ between seeds [95% CI] | ρ C10, seed 0 | ρ C10, second seed |", "|---|---:|---:|---:|"]
        lines += [f"| {r['proxy']} | {r['rho_between_seeds']:+.3f} [{r['ci'][0]:+.3f}, {r['ci'][1]:+.3f}] | "
                  f"{r['rho_accuracy_first']:+.3f} | {r['rho_accuracy_second']:+.3f} |" for r in rows]
        lines.append("")
    if "all_cells_table" in report:
        lines += [f"## All cells: {report['all_cells']} of 15,625", "",
                  f"Proxies cheap enough for every cell: {', '.join(config['all_cells_proxies'])}. Scores: "
                  "`benchmarks/results/nb201_all_cells_scores.csv.gz` (arch, then one raw score per proxy; oriented "
                  "as in the tables). " + report["all_cells_consistency"], "", report["all_cells_table"], ""]
    lines += ["## Seconds per cell", "",
              "Mean wall seconds per cell and proxy, one torch thread per worker, on this shared 2-core CPU machine "
              "(relative costs; other jobs ran).", "", "| proxy | seconds per cell |", "|---|---:|"]
    lines += [f"| {p} | {s:.3f} |" for p, s in sorted(report["seconds_per_cell"].items(), key=lambda kv: -kv[1])]
    lines += ["", f"metantk-plugin {__version__}, torch {torch.__version__}, Python {platform.python_version()}.", ""]
    return "\n".join(lines)


def build_report(config: dict, results: Path, work: Path) -> dict:
    """Everything the scored files allow so far (each part needs its phase)."""
    n_bootstrap = config["bootstrap"]
    task = _task_config(config)
    images = task["tasks"] * task["ways"] * (task["shots"] + task["queries"])
    report: dict = {
        "commands": ["python benchmarks/nb201_frontier.py --phases sample,ablations,seed,all-cells "
                     "--executor processes --workers 2", "python benchmarks/nb201_frontier.py --phases report --force"],
        "inputs": (f"Tasks: {task['tasks']} tasks of {task['ways']}-way {task['shots']}-shot Omniglot, "
                   f"{task['queries']} query per class, {task['image_size']}x{task['image_size']}, "
                   f"{task['image_channels']} channels ({images} images), as in nb201_proxy_correlation; "
                   f"networks C={task['channels']}, N={task['cells']}. "
                   f"Ground truth: NAS-Bench-201 {config['metric']} accuracy after {config['epochs']} epochs "
                   "(the shared table). Intervals: percentile 95% over "
                   f"{n_bootstrap} bootstrap resamples of the cells."),
    }
    seed0 = seed0_table(config, work)
    accuracies = _accuracies(config, list(seed0["arch"]))
    report["sample_cells"] = len(seed0)
    ensembles = best_ensembles(seed0, accuracies, config["ensemble_candidates"], n_bootstrap)
    report["ensembles"] = ensembles
    names = list(dict.fromkeys(e["best_without_metantk"] for e in ensembles))
    names += [ensemble_name([*n[len("rank:"):].split("+"), "metantk"]) for n in names]
    table = _with_ensembles(seed0, list(dict.fromkeys([*names, "rank:metantk+nwot+zico"])))
    directions = proxy_directions([c for c in table.columns if c != "arch"])
    sample = [r for target, acc in accuracies.items()
              for r in correlate(table, acc, directions, target=target, n_bootstrap=n_bootstrap)]
    report["sample_results"] = [r.to_dict() for r in sample]
    report["sample_table"] = format_table(sample, markdown=True)
    ablations = [*ablation_effects(config, seed0, work, accuracies, n_bootstrap),
                 *accuracy_definition_effects(config, seed0), *suite_effects(config, seed0, n_bootstrap),
                 *swap_reg_tuning_effect(seed0, accuracies)]
    report["ablations"] = ablations
    seconds = json.loads((COMMITTED / "nb201_proxy_correlation.json").read_text())["seconds_per_cell"]
    seconds.update(cost_table(work / "nb201_frontier_seed0.h5"))
    seconds.pop("total", None)
    report["seconds_per_cell"] = seconds
    second = _scored(scoring_runs(config, work)["seed"][0][3])
    by_seed = [seed0.assign(seed=0)]
    if second is not None and len(second) >= 3:
        report["seed_robustness"] = seed_robustness(seed0, second, accuracies["cifar10"], n_bootstrap)
        by_seed.append(second.assign(seed=config["second_seed"]))
    sample_scores = pd.concat(by_seed, ignore_index=True)
    sample_scores = sample_scores[["seed", *(c for c in sample_scores.columns if c != "seed")]]
    write_scores_csv(sample_scores, results / "nb201_frontier_sample_scores.csv.gz")
    every = None
    everything = _scored(work / "nb201_frontier_all_cells.h5")
    if everything is not None and len(everything) >= 3:
        all_acc = _accuracies(config, list(everything["arch"]))
        directions = proxy_directions([c for c in everything.columns if c != "arch"])
        every = [r for target, acc in all_acc.items()
                 for r in correlate(everything, acc, directions, target=target, n_bootstrap=n_bootstrap)]
        report["all_cells"] = len(everything)
        report["all_cells_results"] = [r.to_dict() for r in every]
        report["all_cells_table"] = format_table(every, markdown=True)
        report["all_cells_consistency"] = _consistency(everything, seed0)
        write_scores_csv(everything, results / "nb201_all_cells_scores.csv.gz")
    report["cross_check"] = cross_check(config, sample, every, ablations)
    plot_frontier([r for r in sample if not r.proxy.startswith("rank:")],
                  {k: v for k, v in config["published"].items() if k != "source"}, results / "nb201_frontier.png")
    return report


def _consistency(everything: pd.DataFrame, seed0: pd.DataFrame) -> str:
    """How far the all-cells run's scores are from the sample's on the cells both scored."""
    both = everything.merge(seed0, on="arch", suffixes=("", "_sample"))
    worst = 0.0
    for proxy in [c for c in everything.columns if c != "arch" and f"{c}_sample" in both.columns]:
        a, b = both[proxy].to_numpy(dtype=np.float64), both[f"{proxy}_sample"].to_numpy(dtype=np.float64)
        finite = np.isfinite(a) & np.isfinite(b)
        if not np.array_equal(np.isfinite(a), np.isfinite(b)):
            worst = math.inf
        scale = np.maximum(np.abs(a[finite]), np.abs(b[finite]))
        worst = max(worst, float(np.max(np.abs(a[finite] - b[finite]) / np.where(scale > 0, scale, 1.0), initial=0)))
    return (f"On the {len(both)} cells both runs scored, the all-cells scores differ from the sample's by at most "
            f"{worst:.1e} (relative).")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phases", default="sample,ablations,seed,all-cells,report",
                        help=f"comma list of {', '.join(PHASES)}")
    parser.add_argument("--config", type=existing_file, default=CONFIG)
    add_run_options(parser)
    args = parser.parse_args(argv)
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = [p for p in phases if p not in PHASES]
    if unknown:
        parser.error(f"unknown phase(s) {unknown}; expected a comma list of {', '.join(PHASES)}")
    torch.set_num_threads(1)
    config = json.loads(args.config.read_text())
    outputs = [args.results / f"nb201_frontier.{ext}" for ext in ("md", "json")]
    if "report" in phases and not args.force and any(p.exists() for p in outputs):
        parser.error(f"refusing to replace {', '.join(str(p) for p in outputs if p.exists())}; pass --force")
    runs = scoring_runs(config, args.work)
    for phase in (p for p in phases if p != "report"):
        for label, settings, archs, path in runs[phase]:
            print(f"== {phase}: {label} ({len(archs)} cells) -> {path}", flush=True)
            try:
                score_architectures(settings, archs, path, executor=args.executor, workers=args.workers)
            except (ValueError, OSError) as error:  # finished cells stay in the score file
                parser.exit(2, f"{parser.prog}: error: {error}\n")
            except KeyboardInterrupt:
                parser.exit(130, f"{parser.prog}: interrupted; finished cells are kept in {path}\n")
    if "report" in phases:
        report = build_report(config, args.results, args.work)
        write_file_atomically(outputs[1], json.dumps(report, indent=2, default=float) + "\n")
        write_file_atomically(outputs[0], markdown(report, config))
        print(markdown(report, config))
        print("wrote", ", ".join(map(str, outputs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
