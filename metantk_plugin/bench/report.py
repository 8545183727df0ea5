"""Correlate a score file with NAS-Bench-201 ground truth and format the result."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from metantk_plugin.bench.correlation import CorrelationResult, correlate
from metantk_plugin.bench.store import read_scores, read_settings, score_directions
from metantk_plugin.spaces.nasbench201 import DATASETS, GroundTruth

__all__ = ["CorrelationReport", "correlate_score_file", "format_table", "parse_datasets"]


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


def correlate_score_file(
    path: str | Path,
    *,
    truth: str | Path | None = None,
    datasets: Sequence[str] = ("cifar10",),
    split: str = "test",
    epochs: int = 200,
    proxies: Sequence[str] | None = None,
    n_bootstrap: int = 1000,
    top_fraction: float = 0.1,
    seed: int = 0,
) -> CorrelationReport:
    """Spearman, Kendall and top-k precision of every proxy in the score file ``path``
    against the accuracies of ``truth`` (a result file; default: the shared NAS-Bench-201
    table) for each dataset."""
    path = Path(path)
    settings = read_settings(path)
    if settings.get("space") != "nb201":
        raise ValueError(f"{path} scores the {settings.get('space')!r} space; ground truth exists for nb201 only")
    scores = read_scores(path)
    directions = score_directions(path)
    if proxies is not None:
        unknown = [p for p in proxies if p not in directions]
        if unknown:
            raise ValueError(f"{path} has no scores for {unknown}; it has {', '.join(directions)}")
        directions = {p: directions[p] for p in proxies}
    if len(scores) < 3:
        raise ValueError(f"{path} holds {len(scores)} scored architectures; need at least 3 to correlate")
    ground = GroundTruth.open(truth)
    accuracies: dict[str, pd.Series] = {}
    results: list[CorrelationResult] = []
    for dataset in datasets:
        series = ground.accuracies(list(scores["arch"]), dataset=dataset, split=split, epochs=epochs)
        acc = pd.Series(series.to_numpy(), index=pd.Index(scores["arch"]), name=dataset)
        accuracies[dataset] = acc
        results.extend(correlate(scores, acc, directions, target=dataset, n_bootstrap=n_bootstrap,
                                 top_fraction=top_fraction, seed=seed))
    return CorrelationReport(path, ground.description, split, int(epochs), n_bootstrap, seed, settings, scores,
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
