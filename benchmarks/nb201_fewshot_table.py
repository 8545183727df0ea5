"""Few-shot ground truth for NAS-Bench-201: train and test the first cells of the seeded
1,000-cell sample (whose proxy scores are committed) on Omniglot 5-way 1-shot and 5-shot,
then correlate every proxy with few-shot accuracy, beside CIFAR-10/100 and ImageNet16-120.

    python benchmarks/nb201_fewshot_table.py                          # every phase, resumable
    python benchmarks/nb201_fewshot_table.py --phases table --limit 40
    python benchmarks/nb201_fewshot_table.py --phases report

Phases: ``table`` (RFS, seed 0, the configured number of cells), ``retest`` (the first
cells again with another seed: the ground truth's own rank reliability), ``fomaml``
(first-order MAML on the first cells: the meta-learning check), ``report`` (tables,
JSON, a plot). The tables are HDF5 files under benchmarks/work/ (kill the run at any
moment and start it again: it resumes); the report goes to
benchmarks/results/nb201_fewshot_table.{md,json,png} with the rows as
nb201_fewshot_table.csv.
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
import pandas as pd
import torch

from metantk_plugin import __version__
from metantk_plugin.fewshot.pipeline import EvaluationSettings
from metantk_plugin.fewshot.table import FewShotTableSettings, evaluate_architectures, read_fewshot_table
from metantk_plugin.scoring.architectures import select_architectures
from metantk_plugin.scoring.correlation import correlate, oriented, spearman, spearman_difference
from metantk_plugin.scoring.plotting import plot_rank_scatter
from metantk_plugin.scoring.report import fewshot_targets, format_table, proxy_directions
from metantk_plugin.spaces.nasbench201 import GroundTruth

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CONFIG = REPO / "benchmarks" / "configs" / "nb201_fewshot_table.json"
RESULTS = REPO / "benchmarks" / "results"
WORK = REPO / "benchmarks" / "work"
PHASES = ("table", "retest", "fomaml", "report")


def table_settings(config: dict, run: dict, *, seed: int | None = None, device: str = "cpu") -> FewShotTableSettings:
    evaluation = EvaluationSettings(
        network="*", data=config["data"].format(shared=SHARED), protocol=run["protocol"], ways=run["ways"],
        shots=run["shots"][0], queries=run["queries"], meta_iterations=run["meta_iterations"],
        episodes=run["episodes"], seed=run["seed"] if seed is None else seed,
        batch_size=run.get("batch_size", 64), meta_batch=run.get("meta_batch"), device=device,
        channels=config["channels"], cells=config["cells"],
    )
    return FewShotTableSettings(config["space"], evaluation, shots=tuple(run["shots"]))


def runs(config: dict, device: str = "cpu") -> dict[str, tuple[FewShotTableSettings, int, Path]]:
    """Each phase's settings, number of cells and table file (CUDA tables have their own files)."""
    rfs = config["rfs"]
    fomaml = {**config["rfs"], **config["fomaml"]}
    suffix = "" if device == "cpu" else "_" + device.replace(":", "")
    retest_seed = config["retest"]["seed"]
    return {
        "table": (table_settings(config, rfs, device=device), config["cells_in_table"],
                  WORK / f"nb201_fewshot_rfs_seed0{suffix}.h5"),
        "retest": (table_settings(config, rfs, seed=retest_seed, device=device), config["retest"]["cells"],
                   WORK / f"nb201_fewshot_rfs_seed{retest_seed}{suffix}.h5"),
        "fomaml": (table_settings(config, fomaml, device=device), config["fomaml"]["cells"],
                   WORK / f"nb201_fewshot_fomaml_seed0{suffix}.h5"),
    }


def _interval(samples: np.ndarray) -> list[float]:
    return [float(v) for v in np.percentile(samples[np.isfinite(samples)], [2.5, 97.5])]


def rank_agreement(a: pd.Series, b: pd.Series, *, n_bootstrap: int) -> dict:
    """Spearman ρ between two accuracy columns on their common architectures, with a
    percentile bootstrap interval."""
    common = a.index.intersection(b.index)
    x, y = a.reindex(common).to_numpy(float), b.reindex(common).to_numpy(float)
    idx = np.random.default_rng(0).integers(0, len(x), size=(n_bootstrap, len(x)))
    return {"n": int(len(x)), "spearman": float(spearman(x, y)), "spearman_ci": _interval(spearman(x[idx], y[idx]))}


def report(config: dict, plan: dict, archs: list[str]) -> dict:
    boot = config["bootstrap"]
    tables = {}
    for phase, (_, n, path) in plan.items():
        if path.exists():
            table, _ = read_fewshot_table(path)
            tables[phase] = table[table["arch"].isin(archs[:n])]
    main = tables["table"]
    scores = pd.read_csv(REPO / config["proxy_scores"])
    scores = scores[scores["arch"].isin(main["arch"])].reset_index(drop=True)
    directions = proxy_directions([c for c in scores.columns if c != "arch"])
    targets = {f"{name} (RFS)": s for name, s in fewshot_targets(main, "omniglot").items()}
    if "fomaml" in tables:
        targets.update({f"{name} (first-order MAML, {len(tables['fomaml'])} cells)": s for name, s in
                        fewshot_targets(tables["fomaml"], "omniglot").items()})
    ground = GroundTruth.open(None)
    nb201 = {d: pd.Series(ground.accuracies(list(main["arch"]), dataset=d, split="test", epochs=200).to_numpy(),
                          index=pd.Index(main["arch"]), name=d) for d in config["nb201_datasets"]}
    results = []
    for target, acc in {**targets, **nb201}.items():
        results.extend(correlate(scores, acc, directions, target=target, n_bootstrap=boot))
    out: dict = {"results": [r.to_dict() for r in results], "agreement": {}, "paired": {}}
    for target, acc in targets.items():
        for dataset, truth in nb201.items():
            out["agreement"][f"{target} vs {dataset}"] = rank_agreement(acc, truth, n_bootstrap=boot)
    retest_lines = []
    if "retest" in tables:
        again = fewshot_targets(tables["retest"], "omniglot")
        for name, acc in fewshot_targets(main, "omniglot").items():
            agreement = rank_agreement(acc, again[name], n_bootstrap=boot)
            out["agreement"][f"test-retest {name} (RFS, seed 0 vs {config['retest']['seed']})"] = agreement
            retest_lines.append((name, agreement))
    if "fomaml" in tables:
        fo = fewshot_targets(tables["fomaml"], "omniglot")
        for name, acc in fo.items():
            rfs_acc = fewshot_targets(main, "omniglot")[name]
            out["agreement"][f"{name}: first-order MAML vs RFS"] = rank_agreement(acc, rfs_acc, n_bootstrap=boot)
    first = config["headline_proxies"][0]
    for target, acc in targets.items():
        a = acc.reindex(scores["arch"]).to_numpy(float)
        keep = np.isfinite(a)
        mine = oriented(scores[first].to_numpy()[keep], directions[first])
        for other in config["headline_proxies"][1:]:
            theirs = oriented(scores[other].to_numpy()[keep], directions[other])
            delta, ci = spearman_difference(mine, theirs, a[keep], n_bootstrap=boot)
            out["paired"][f"{target}: {first} - {other}"] = {"delta": delta, "ci": list(ci)}
    out["spearman_half_widths"] = {
        target: {"median": float(np.median(w)), "max": float(np.max(w))}
        for target in {**targets, **nb201}
        for w in [[(r.spearman_ci[1] - r.spearman_ci[0]) / 2 for r in results
                   if r.target == target and math.isfinite(r.spearman)]]}
    out["cells"] = {phase: int(len(t)) for phase, t in tables.items()}
    out["seconds_per_cell"] = {phase: float(t["train_seconds"].mean()) for phase, t in tables.items()}
    main.to_csv(RESULTS / "nb201_fewshot_table.csv", index=False, float_format="%.6g")
    shown = list(targets)[:2]
    plot_rank_scatter(scores, {t: targets[t] for t in shown}, {p: directions[p] for p in config["headline_proxies"]},
                      results, RESULTS / "nb201_fewshot_table.png", columns=4)
    out["markdown"] = markdown(config, out, results, targets, retest_lines)
    return out


def markdown(config: dict, out: dict, results, targets: dict, retest_lines) -> str:
    lines = ["# Few-shot ground truth for NAS-Bench-201 cells", "",
             "Cells per phase: " + ", ".join(f"{phase} {n}" for phase, n in out["cells"].items())
             + "; mean training seconds per cell (wall, on a shared machine): "
             + ", ".join(f"{phase} {s:.0f} s" for phase, s in out["seconds_per_cell"].items()), ""]
    lines += ["## Test-retest (the ceiling no proxy can pass)", ""]
    for name, a in retest_lines:
        lines.append(f"- {name}: ρ = {a['spearman']:+.3f} [{a['spearman_ci'][0]:+.2f}, {a['spearman_ci'][1]:+.2f}] "
                     f"over {a['n']} cells")
    lines += ["", "## Few-shot accuracy against the NAS-Bench-201 accuracies", ""]
    for name, a in out["agreement"].items():
        if not name.startswith("test-retest"):
            lines.append(f"- {name}: ρ = {a['spearman']:+.3f} [{a['spearman_ci'][0]:+.2f}, "
                         f"{a['spearman_ci'][1]:+.2f}], n = {a['n']}")
    lines += ["", "## Half widths of the Spearman 95 % intervals (median and largest over the proxies)", ""]
    for target, w in out["spearman_half_widths"].items():
        lines.append(f"- {target}: {w['median']:.3f}, {w['max']:.3f}")
    lines += ["", "## Paired differences in Spearman ρ (95 % paired bootstrap)", ""]
    for name, d in out["paired"].items():
        lines.append(f"- {name}: {d['delta']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]")
    lines += ["", "## Every proxy against every target", "", format_table(results, markdown=True)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma list of {', '.join(PHASES)}")
    parser.add_argument("--limit", type=int, help="train at most the first N cells of each phase")
    parser.add_argument("--executor", default="processes", choices=("local", "processes", "ray"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bootstrap", type=int, help="bootstrap resamples of the report (default: the config's)")
    args = parser.parse_args(argv)
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = [p for p in phases if p not in PHASES]
    if unknown:
        parser.error(f"unknown phase(s) {unknown}; expected {', '.join(PHASES)}")
    config = json.loads(CONFIG.read_text())
    if args.bootstrap:
        config["bootstrap"] = args.bootstrap
    plan = runs(config, args.device)
    archs = select_architectures(config["space"], config["archs"])
    WORK.mkdir(parents=True, exist_ok=True)
    for phase in (p for p in phases if p in plan):
        settings, n, path = plan[phase]
        n = min(n, args.limit) if args.limit else n
        began = time.perf_counter()
        summary = evaluate_architectures(settings, archs[:n], path, executor=args.executor,
                                         workers=None if args.executor == "local" else args.workers)
        print(f"{phase}: {summary.scored} cells trained now, {summary.already_done} before, "
              f"{time.perf_counter() - began:.0f} s -> {path}", flush=True)
    if "report" in phases:
        out = report(config, plan, archs)
        out.update(command=" ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
                   package_version=__version__, torch=torch.__version__, machine=platform.platform(),
                   config=config)
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "nb201_fewshot_table.md").write_text(out.pop("markdown") + "\n")
        (RESULTS / "nb201_fewshot_table.json").write_text(json.dumps(out, indent=1, default=_json) + "\n")
        print((RESULTS / "nb201_fewshot_table.md").read_text())
    return 0


def _json(value):
    return None if isinstance(value, float) and not math.isfinite(value) else str(value)


if __name__ == "__main__":
    sys.exit(main())
