"""Rank ensembles ``rank:a+b+...``: made on lookup, oriented ranks with NaN worst, stored
and read back by ``metantk score``, and the paired-bootstrap gain of adding a proxy."""

from __future__ import annotations

import json

import numpy as np
import pytest

from metantk_plugin.cli import main
from metantk_plugin.proxies import available_proxies, get_proxy, resolve_proxy
from metantk_plugin.proxies.population import population_proxy
from metantk_plugin.proxies.rank_ensemble import ensemble_gain, rank_ensemble
from metantk_plugin.scoring.correlation import spearman_difference
from metantk_plugin.scoring.settings import ScoreSettings
from metantk_plugin.scoring.store import read_scores, read_settings, score_directions

TINY = ["--channels", "2", "--cells", "1", "--image-size", "8", "--tasks", "1", "--ways", "3", "--quiet"]


def test_any_rank_name_resolves_to_a_population_proxy_of_its_inputs():
    proxy = resolve_proxy("rank:metantk+nwot+zico")
    assert (proxy.kind, proxy.inputs, proxy.columns, proxy.higher_is_better) == (
        "population", ("metantk", "nwot", "zico"), ("metantk", "nwot", "zico"), True)
    assert proxy is population_proxy("rank:metantk+nwot+zico")
    assert not any(n.startswith("rank:") for n in available_proxies("all"))
    with pytest.raises(ValueError, match="unknown proxy 'rank:metantk\\+nwot'"):
        get_proxy("rank:metantk+nwot")  # compute_proxy scores single networks only
    for bad, message in (("rank:", "is named rank:A\\+B"), ("rank:nwot++zen", "is named rank:A\\+B"),
                         ("rank:nwot+nwot", "listed twice"), ("rank:nwot+nope", "unknown proxy 'nope'"),
                         ("rank:nwot+te_nas", "unknown proxy 'te_nas'")):
        with pytest.raises(ValueError, match=message):
            resolve_proxy(bad)


def test_mean_of_ranks_oriented_by_sign_with_nan_worst():
    columns = {"metantk": np.array([10.0, 2.0, np.inf, np.nan]),  # lower is better: inf and NaN worst
               "nwot": np.array([1.0, np.nan, np.inf, 3.0])}  # higher is better: inf best, NaN worst
    expected = (np.array([3, 4, 1.5, 1.5]) + np.array([2, 1, 4, 3])) / 2
    np.testing.assert_allclose(rank_ensemble("rank:metantk+nwot").combine(columns), expected)
    np.testing.assert_allclose(rank_ensemble("rank:nwot").combine(columns), [2, 1, 4, 3])


def test_the_name_round_trips_through_settings_and_the_score_command(tmp_path, capsys):
    settings = ScoreSettings(proxies=("rank:metantk+nwot", "params"))
    assert settings.columns == ("metantk", "nwot", "params")
    assert ScoreSettings.from_dict(json.loads(settings.to_json())) == settings
    out = tmp_path / "s.h5"
    assert main(["score", "--archs", "sample:4:7", "--proxies", "rank:metantk+nwot", "--out", str(out), *TINY]) == 0
    assert read_settings(out)["proxies"] == ["rank:metantk+nwot"]
    table = read_scores(out)
    assert list(table.columns) == ["arch", "rank:metantk+nwot", "metantk", "nwot"]
    np.testing.assert_allclose(table["rank:metantk+nwot"],
                               rank_ensemble("rank:metantk+nwot").combine(table[["metantk", "nwot"]]))
    assert score_directions(out)["rank:metantk+nwot"] is True
    capsys.readouterr()
    assert main(["score", "--archs", "sample:4:7", "--proxies", "rank:metantk+nwot", "--out", str(out), *TINY]) == 0
    assert "4 already scored" in capsys.readouterr().out  # the stored name matches: the run resumes


def test_ensemble_gain_is_the_paired_bootstrap_difference_of_the_two_ensembles():
    rng = np.random.default_rng(0)
    accuracy = rng.normal(size=60)
    columns = {"nwot": accuracy + rng.normal(scale=2.0, size=60), "metantk": -accuracy + rng.normal(size=60),
               "zico": rng.normal(size=60)}
    accuracy_with_gaps = accuracy.copy()
    accuracy_with_gaps[:5] = np.nan
    gain, interval = ensemble_gain(columns, accuracy_with_gaps, ["nwot", "zico"], "metantk", n_bootstrap=200, seed=1)
    kept = {k: v[5:] for k, v in columns.items()}
    expected = spearman_difference(rank_ensemble("rank:nwot+zico+metantk").combine(kept),
                                   rank_ensemble("rank:nwot+zico").combine(kept), accuracy[5:], n_bootstrap=200,
                                   seed=1)
    assert (gain, interval) == expected
    assert gain > 0 and interval[0] > 0  # metantk (lower is better) carries the accuracy signal
