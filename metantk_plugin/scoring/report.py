"""Correlate a score file with ground truth and format the result.

Ground truth is a NAS-Bench-201 accuracy table (CIFAR-10/100, ImageNet16-120; the
shared CSV, the official ``.pth``, NATS-Bench or NNI files) or a few-shot accuracy table
written by ``metantk evaluate --archs ... --out TABLE.h5``, whose accuracy columns become
the targets (``omniglot 5-way 1-shot``, ...); for NAS-Bench-201 cells the ``datasets``
asked for are then added beside them from the NAS-Bench-201 table."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import pandas as pd

from metantk_plugin.scoring.correlation import CorrelationResult, correlate
from metantk_plugin.scoring.store import read_scores, read_settings, score_directions
from metantk_plugin.spaces.nasbench201 import DATASETS, GroundTruth

__all__ = ["CorrelationReport", "correlate_score_file", "fewshot_targets", "format_table", "parse_datasets",
           "proxy_directions"]

_ACCURACY_COLUMN = re.compile(r"acc_(\d+)way_(\d+)shot")


@dataclass(frozen=True)
class CorrelationReport:
    """Everything :func:`correlate_score_file` computed."""

    path: Path
    truth: str
    split: str
    epochs: int
    n_bootstrap: int
    seed: int
    settings: dict
    scores: pd.DataFrame
    directions: dict[str, bool]
    accuracies: dict[str, pd.Series]
    results: list[CorrelationResult]

    def to_dict(self) -> dict:
        return {
            "file": str(self.path),
            "truth": self.truth,
            "split": self.split,
            "epochs": self.epochs,
            "architectures": int(len(self.scores)),
            "n_bootstrap": self.n_bootstrap,
            "bootstrap_seed": self.seed,
            "interval": "percentile 95%",
            "settings": self.settings,
            "results": [r.to_dict() for r in self.results],
        }


def parse_datasets(text: str) -> list[str]:
    """``'cifar10,cifar100'`` or ``'all'`` -> dataset names (validated)."""
    names = list(DATASETS) if text == "all" else [t.strip().lower() for t in text.split(",") if t.strip()]
    for name in names:
        if name not in DATASETS:
            raise ValueError(f"unknown dataset {name!r}; expected {', '.join(DATASETS)}, a comma list, or all")
    if not names:
        raise ValueError("no dataset given")
    return names


def proxy_directions(names: Sequence[str]) -> dict[str, bool]:
    """``{name: higher_is_better}`` of registered and population proxies (e.g. the columns
    of a CSV exported by ``metantk score --csv``)."""
    from metantk_plugin.proxies import resolve_proxy

    return {n: resolve_proxy(n).higher_is_better for n in names}


def fewshot_targets(table: pd.DataFrame, data: str) -> dict[str, pd.Series]:
    """The accuracy columns of a few-shot table (:func:`~metantk_plugin.fewshot.table.read_fewshot_table`)
    in percent (as NAS-Bench-201's) as Series indexed by architecture, named ``'{data} {W}-way {S}-shot'``."""
    targets = {}
    for column in table.columns:
        match = _ACCURACY_COLUMN.fullmatch(column)
        if match:
            name = f"{data} {match[1]}-way {match[2]}-shot"
            targets[name] = pd.Series(100 * table[column].to_numpy(), index=pd.Index(table["arch"]), name=name)
    return targets


def _is_fewshot_table(truth: str | Path | None) -> bool:
    return truth is not None and Path(truth).is_file() and h5py.is_hdf5(truth)


def _targets(path: Path, settings: dict, archs: list[str], truth: str | Path | None, datasets: Sequence[str] | None,
             split: str, epochs: int) -> tuple[str, dict[str, pd.Series]]:
    """The ground truth's description and its accuracy Series by target name."""
    from metantk_plugin.fewshot.table import read_fewshot_table

    targets: dict[str, pd.Series] = {}
    descriptions = []
    space = settings.get("space")
    if _is_fewshot_table(truth):
        table, table_settings = read_fewshot_table(truth)
        if table_settings["space"] != space:
            raise ValueError(f"{truth} holds {table_settings['space']!r} architectures but {path} scores the "
                             f"{space!r} space")
        data = table_settings["data"].split(":", 1)[0]
        protocol = table_settings["evaluation"]["protocol"]
        targets.update({f"{name} ({protocol})": series for name, series in fewshot_targets(table, data).items()})
        descriptions.append(f"{truth} ({len(table)} architectures, {protocol})")
        truth = None
        if not datasets:
            return "; ".join(descriptions), targets
    if space != "nb201":
        raise ValueError(f"{path} scores the {space!r} space; NAS-Bench-201 accuracies exist for nb201 only")
    ground = GroundTruth.open(truth)
    descriptions.append(ground.description)
    for dataset in datasets or ("cifar10",):
        series = ground.accuracies(archs, dataset=dataset, split=split, epochs=epochs)
        targets[dataset] = pd.Series(series.to_numpy(), index=pd.Index(archs), name=dataset)
    return "; ".join(descriptions), targets


def correlate_score_file(
    path: str | Path,
    *,
    truth: str | Path | None = None,
    datasets: Sequence[str] | None = None,
    split: str = "test",
    epochs: int = 200,
    proxies: Sequence[str] | None = None,
    n_bootstrap: int = 1000,
    top_fraction: float = 0.1,
    seed: int = 0,
) -> CorrelationReport:
    """Spearman, Kendall and top-k precision of every proxy in the score file ``path``
    against the accuracies of ``truth``: a NAS-Bench-201 result file (default: the shared
    table) for each of ``datasets`` (default CIFAR-10), or a few-shot table, whose accuracy
    columns come first, followed by ``datasets`` when given (see the module docstring)."""
    path = Path(path)
    settings = read_settings(path)
    scores = read_scores(path)
    directions = score_directions(path)
    if proxies is not None:
        unknown = [p for p in proxies if p not in directions]
        if unknown:
            raise ValueError(f"{path} has no scores for {unknown}; it has {', '.join(directions)}")
        directions = {p: directions[p] for p in proxies}
    if len(scores) < 3:
        raise ValueError(f"{path} holds {len(scores)} scored architectures; need at least 3 to correlate")
    description, accuracies = _targets(path, settings, list(scores["arch"]), truth, datasets, split, epochs)
    results: list[CorrelationResult] = []
    for target, acc in accuracies.items():
        results.extend(correlate(scores, acc, directions, target=target, n_bootstrap=n_bootstrap,
                                 top_fraction=top_fraction, seed=seed))
    return CorrelationReport(path, description, split, int(epochs), n_bootstrap, seed, settings, scores,
                             directions, accuracies, results)


def _fmt(value: float, digits: int = 3) -> str:
    return "nan" if value is None or not math.isfinite(value) else f"{value:+.{digits}f}"


def _with_ci(value: float, ci: tuple[float, float]) -> str:
    return f"{_fmt(value)} [{_fmt(ci[0], 2)}, {_fmt(ci[1], 2)}]"


def format_table(results: Sequence[CorrelationResult], *, markdown: bool = False) -> str:
    """One block per target, proxies sorted by Spearman ρ (best first)."""
    lines: list[str] = []
    targets = list(dict.fromkeys(r.target for r in results))
    for target in targets:
        rows = sorted((r for r in results if r.target == target),
                      key=lambda r: -r.spearman if math.isfinite(r.spearman) else math.inf)
        top = f"top-{round(100 * rows[0].top_fraction)}%"
        header = ("proxy", "n", "Spearman ρ [95% CI]", "Kendall τ [95% CI]", f"{top} precision [95% CI]")
        body = [(r.proxy, str(r.n), _with_ci(r.spearman, r.spearman_ci), _with_ci(r.kendall, r.kendall_ci),
                 _with_ci(r.top_precision, r.top_precision_ci)) for r in rows]
        if markdown:
            lines.append(f"**{target}**\n")
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "|".join(["---", "---:", "---:", "---:", "---:"]) + "|")
            lines.extend("| " + " | ".join(row) + " |" for row in body)
        else:
            widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
            lines.append(f"{target}:")
            for row in [header, *body]:
                lines.append("  " + "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                                               for i, (cell, w) in enumerate(zip(row, widths))))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
