"""The committed benchmark scores reproduce: the first cells of the published NAS-Bench-201
proxy table (benchmarks/results/nb201_proxy_correlation_scores.csv) and of the frontier's
downloadable scores (nb201_frontier_sample_scores.csv.gz, nb201_all_cells_scores.csv.gz),
scored again with their benchmark's own settings, give the committed values. A refactor
that changes any draw, any network or any proxy fails here."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metantk_plugin.scoring.architectures import select_architectures
from metantk_plugin.scoring.run import score_architectures
from metantk_plugin.scoring.store import read_scores

REPO = Path(__file__).resolve().parents[1]
CELLS = 3


def _benchmark(name: str = "nb201_proxy_correlation"):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _assert_reproduce(again: pd.DataFrame, published: pd.DataFrame, archs: list[str], proxies) -> None:
    for proxy in proxies:
        ours, theirs = again.loc[archs, proxy].to_numpy(float), published.loc[archs, proxy].to_numpy(float)
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-9, err_msg=proxy)  # inf == inf, nan == nan


def test_the_first_published_nb201_proxy_scores_reproduce(tmp_path, shared_data):
    benchmark = _benchmark()
    config = json.loads(benchmark.CONFIG.read_text())
    settings = benchmark.settings_from_config(config)
    archs = select_architectures(config["space"], config["archs"])[:CELLS]
    score_architectures(settings, archs, tmp_path / "s.h5", progress=False)
    again = read_scores(tmp_path / "s.h5").set_index("arch")
    published = pd.read_csv(benchmark.RESULTS / "nb201_proxy_correlation_scores.csv").set_index("arch").loc[archs]
    per_network = [c for c in published.columns if c != "te_nas"]  # te_nas ranks within the whole run
    assert set(per_network) <= set(again.columns)
    _assert_reproduce(again, published, archs, per_network)


@pytest.mark.parametrize("phase", ["sample", "all-cells"])
def test_the_first_downloadable_frontier_scores_reproduce(phase, tmp_path, shared_data, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))  # the script imports its sibling modules
    frontier = _benchmark("nb201_frontier")
    config = json.loads(frontier.CONFIG.read_text())
    (_, settings, archs, _), = frontier.scoring_runs(config, tmp_path)[phase]
    name = {"sample": "nb201_frontier_sample_scores.csv.gz", "all-cells": "nb201_all_cells_scores.csv.gz"}[phase]
    published = pd.read_csv(frontier.COMMITTED / name)
    if phase == "sample":
        published = published[published["seed"] == 0]
    published = published.set_index("arch")
    archs = archs[:2]
    score_architectures(settings, archs, tmp_path / "s.h5", progress=False)
    again = read_scores(tmp_path / "s.h5").set_index("arch")
    per_network = [p for p in settings.proxies if p not in ("az_nas", "te_nas")]  # these rank within a run
    _assert_reproduce(again, published, archs, per_network)
