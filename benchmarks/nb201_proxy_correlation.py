"""How well does each zero-cost proxy rank NAS-Bench-201 cells? Every proxy scores the
same seeded sample of cells on the same few-shot Omniglot tasks; the scores are
correlated with the 200-epoch test accuracies of CIFAR-10, CIFAR-100 and ImageNet16-120.

    python benchmarks/nb201_proxy_correlation.py                       # the configured 1,000 cells
    python benchmarks/nb201_proxy_correlation.py --limit 200 --executor processes --workers 2

``--limit N`` scores the first N cells of the configured sample (samples nest, so a later
run without --limit resumes the same score file). Writes
benchmarks/results/nb201_proxy_correlation.{md,json} and the raw scores as
nb201_proxy_correlation_scores.csv; the HDF5 score file (default
benchmarks/work/nb201_proxy_correlation.h5) is kept for resuming.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from metantk_plugin import __version__
from metantk_plugin.proxies import available_proxies
from metantk_plugin.scoring.architectures import select_architectures
from metantk_plugin.scoring.correlation import oriented, spearman, spearman_difference
from metantk_plugin.scoring.report import correlate_score_file, format_table
from metantk_plugin.scoring.run import score_architectures
from metantk_plugin.scoring.settings import ScoreSettings
from metantk_plugin.scoring.store import export_csv, read_scores

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CONFIG = REPO / "benchmarks" / "configs" / "nb201_proxy_correlation.json"
RESULTS = REPO / "benchmarks" / "results"


def settings_from_config(config: dict) -> ScoreSettings:
    proxies = config["proxies"]
    proxies = tuple(available_proxies("all")) if proxies == "all" else tuple(proxies)
    return ScoreSettings(
        proxies=proxies, space=config["space"], data=config["data"].format(shared=SHARED),
        n_tasks=config["tasks"], ways=config["ways"], shots=config["shots"], queries=config["queries"],
        image_size=config["image_size"], image_channels=config["image_channels"], channels=config["channels"],
        cells=config["cells"], seed=config["seed"], proxy_options=config.get("proxy_options", {}),
    )


def cost_table(scores_path: Path) -> dict[str, float]:
    """Mean seconds per architecture of each proxy (and in total)."""
    table = read_scores(scores_path, times=True)
    return {c[len("seconds_"):]: float(table[c].mean()) for c in table.columns if c.startswith("seconds_")}


def _oriented(report, proxy: str, target: str) -> tuple[np.ndarray, np.ndarray]:
    acc = report.accuracies[target].reindex(report.scores["arch"]).to_numpy(dtype=np.float64)
    keep = np.isfinite(acc)
    return oriented(report.scores[proxy].to_numpy()[keep], report.directions[proxy]), acc[keep]


def standing(report, proxy: str) -> list[str]:
    """Place of ``proxy`` per target, and its paired ρ difference to the best and to params."""
    lines = []
    for target in report.accuracies:
        rows = sorted((r for r in report.results if r.target == target), key=lambda r: -r.spearman
                      if math.isfinite(r.spearman) else math.inf)
        place = next((i for i, r in enumerate(rows) if r.proxy == proxy), None)
        if place is None:
            continue
        mine, best = rows[place], rows[0] if rows[0].proxy != proxy else rows[1]
        text = (f"- {target}: `{proxy}` is {place + 1} of {len(rows)} by Spearman "
                f"(ρ = {mine.spearman:+.3f} [{mine.spearman_ci[0]:+.2f}, {mine.spearman_ci[1]:+.2f}], "
                f"τ = {mine.kendall:+.3f}, top-10% precision {mine.top_precision:.2f})")
        for other in dict.fromkeys([best.proxy, "params"]):
            if other == proxy or other not in report.directions:
                continue
            a, acc = _oriented(report, proxy, target)
            b, _ = _oriented(report, other, target)
            delta, (lo, hi) = spearman_difference(a, b, acc, n_bootstrap=report.n_bootstrap, seed=report.seed)
            text += f"; ρ − ρ(`{other}`) = {delta:+.3f} [{lo:+.2f}, {hi:+.2f}] (paired bootstrap)"
        lines.append(text + ".")
    return lines


def diagnostics(report) -> dict[str, dict]:
    """Per proxy: non-finite scores, distinct finite values, and Spearman ρ with params."""
    table = report.scores
    out = {}
    for proxy in report.directions:
        values = table[proxy].to_numpy(dtype=np.float64)
        finite = np.isfinite(values)
        entry = {"non_finite": int((~finite).sum()), "distinct": int(len(np.unique(values[finite])))}
        if "params" in table.columns:
            entry["spearman_with_params"] = float(spearman(oriented(values, report.directions[proxy]),
                                                           table["params"].to_numpy(dtype=np.float64)))
        out[proxy] = entry
    return out


def markdown(report, config: dict, settings: ScoreSettings, n_scored: int, n_config: int, costs: dict,
             checks: dict, command: str, wall: float) -> str:
    sample_note = (
        f"**Sample: {n_scored} of the configured {n_config} cells** (the first {n_scored} of the seeded "
        f"permutation `{config['archs']}`), because scoring every proxy on all {n_config} does not fit the "
        "time available on the shared 2-core machine; rerunning without `--limit` resumes the score file."
        if n_scored < n_config else f"Sample: all {n_config} cells of `{config['archs']}`."
    )
    lines = [
        "# Zero-cost proxies on NAS-Bench-201: rank correlation with trained accuracy",
        "",
        config["description"],
        "",
        f"Command: `{command}`",
        "",
        sample_note,
        "",
        f"Tasks: {settings.n_tasks} tasks, {settings.ways}-way {settings.shots}-shot, {settings.queries} "
        f"query per class, from the Omniglot meta-train classes at {settings.image_size}x{settings.image_size}, "
        f"{settings.image_channels} channels ({settings.n_tasks * settings.ways * (settings.shots + settings.queries)}"
        f" images); networks C={settings.channels}, N={settings.cells}, {settings.num_classes} logits, "
        f"seed {settings.seed}. Kernel proxies (metantk, metantk_anil, ntk_cond, linear_regions) see the "
        "GroupNorm network, all others the official BatchNorm network in training mode, with the same weights. "
        f"Ground truth: {report.truth}, {report.split} accuracy after {report.epochs} epochs. "
        f"Intervals: percentile 95% over {report.n_bootstrap} bootstrap resamples of the cells. "
        "Scores are oriented so that higher predicts better (metantk and ntk_cond are negated); "
        "signed values are shown.",
        "",
        "## Where MetaNTK stands",
        "",
        *standing(report, "metantk"),
        *standing(report, "metantk_anil"),
        "",
        "## Correlations",
        "",
        format_table(report.results, markdown=True),
        "",
        "## Cost and diagnostics per proxy",
        "",
        "Seconds: mean wall seconds per cell on this shared 2-core CPU machine (one torch thread per worker, "
        "other jobs running), so read them as relative costs. Non-finite: cells whose score is undefined "
        "(NaN, or an infinite condition number), ranked last. Distinct: distinct finite values over the sample "
        "(a saturated proxy has few). ρ with params: Spearman correlation of the oriented score with the "
        "parameter count, i.e. how much of a proxy's ranking is network size.",
        "",
        "| proxy | seconds | non-finite | distinct | ρ with params |",
        "|---|---:|---:|---:|---:|",
        *(f"| {name} | {costs.get(name, float('nan')):.3f} | {c['non_finite']} | {c['distinct']} | "
          f"{c.get('spearman_with_params', float('nan')):+.3f} |"
          for name, c in sorted(checks.items(), key=lambda kv: -costs.get(kv[0], 0.0))),
        f"| total | {costs['total']:.3f} | | | |",
        "",
        f"Wall time of this invocation: {wall:.0f} s (cells already in the score file are reused, not "
        f"recomputed); scoring all {n_scored} cells took {costs['total'] * n_scored:.0f} s of worker time. "
        f"metantk-plugin {__version__}, torch {torch.__version__}, Python {platform.python_version()}.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--limit", type=int, help="score only the first N cells of the configured sample")
    parser.add_argument("--executor", default="local", choices=("local", "processes", "ray"))
    parser.add_argument("--workers", type=int)
    parser.add_argument("--scores", type=Path, default=REPO / "benchmarks" / "work" / "nb201_proxy_correlation.h5")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the .md/.json/.csv results")
    parser.add_argument("--force", action="store_true", help="replace existing result files")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    config = json.loads(args.config.read_text())
    name = args.config.stem
    outputs = {ext: args.results / f"{name}.{ext}" for ext in ("md", "json")}
    outputs["csv"] = args.results / f"{name}_scores.csv"
    existing = [str(p) for p in outputs.values() if p.exists()]
    if existing and not args.force:
        print(f"refusing to replace {', '.join(existing)}; pass --force", file=sys.stderr)
        return 2
    settings = settings_from_config(config)
    archs = select_architectures(settings.space, config["archs"])
    n_config = len(archs)
    if args.limit:
        archs = archs[: args.limit]
    args.scores.parent.mkdir(parents=True, exist_ok=True)
    args.results.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    score_architectures(settings, archs, args.scores, executor=args.executor, workers=args.workers)
    report = correlate_score_file(args.scores, datasets=config["datasets"], split=config["metric"],
                                  epochs=config["epochs"], n_bootstrap=config["bootstrap"])
    wall = time.perf_counter() - start
    n_scored = len(report.scores)
    costs = cost_table(args.scores)
    checks = diagnostics(report)
    command = "python " + " ".join(shlex.quote(a) for a in [str(Path(sys.argv[0]).relative_to(REPO))
                                                             if Path(sys.argv[0]).is_absolute() else sys.argv[0],
                                                             *(sys.argv[1:] if argv is None else argv)])
    payload = {"command": command, "config": config, "architectures_scored": n_scored,
               "architectures_configured": n_config, "seconds_per_cell": costs, "diagnostics": checks,
               "wall_seconds": wall,
               **report.to_dict()}
    payload["file"] = str(args.scores.relative_to(REPO)) if args.scores.is_relative_to(REPO) else str(args.scores)
    outputs["json"].write_text(json.dumps(payload, indent=2) + "\n")
    outputs["md"].write_text(markdown(report, config, settings, n_scored, n_config, costs, checks, command, wall))
    export_csv(args.scores, outputs["csv"], overwrite=True)
    print(format_table(report.results))
    print("wrote", ", ".join(str(p) for p in outputs.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
