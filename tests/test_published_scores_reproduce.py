"""The committed benchmark scores reproduce: the first cells of the published NAS-Bench-201
proxy table (benchmarks/results/nb201_proxy_correlation_scores.csv), scored again with the
benchmark's own settings, give the committed values. A refactor that changes any draw, any
network or any proxy fails here."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd

from metantk_plugin.scoring.architectures import select_architectures
from metantk_plugin.scoring.run import score_architectures
from metantk_plugin.scoring.store import read_scores

REPO = Path(__file__).resolve().parents[1]
CELLS = 3


def _benchmark():
    spec = importlib.util.spec_from_file_location("nb201_proxy_correlation",
                                                  REPO / "benchmarks" / "nb201_proxy_correlation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    for proxy in per_network:
        ours, theirs = again.loc[archs, proxy].to_numpy(float), published[proxy].to_numpy(float)
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-9, err_msg=proxy)  # inf == inf, nan == nan
