"""Rank correlation with bootstrap intervals, and ``metantk correlate`` on real ground truth."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kendalltau, spearmanr

from metantk_plugin.cli import main
from metantk_plugin.scoring.correlation import correlate, oriented, spearman, top_precision
from metantk_plugin.scoring.store import ScoreRow, ScoreStore
from metantk_plugin.spaces.nasbench201 import GroundTruth, all_architectures


def test_spearman_matches_scipy_with_ties_and_batches():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, size=(4, 40)).astype(float)
    y = rng.normal(size=(4, 40))
    batched = spearman(x, y)
    for i in range(4):
        assert batched[i] == pytest.approx(spearmanr(x[i], y[i]).statistic, abs=1e-12)
    assert math.isnan(float(spearman(np.ones(5), np.arange(5.0))))


def test_top_precision_shares_ties_at_the_cut():
    acc = np.arange(10.0)  # the best single architecture is index 9
    assert top_precision(acc, acc) == 1.0
    assert top_precision(-acc, acc) == 0.0
    assert top_precision(np.ones(10), acc) == pytest.approx(0.1)  # one slot shared by ten tied items
    scores = np.array([0, 0, 0, 0, 0, 0, 0, 0, 5, 5.0])  # 9 and 8 tie for the single top slot
    assert top_precision(scores, acc) == pytest.approx(0.5)
    assert top_precision(scores, acc, fraction=0.2) == pytest.approx(1.0)


def test_orientation_and_nan_rank_last():
    assert oriented([1.0, 3.0, math.nan], higher_is_better=False).tolist() == [-1.0, -3.0, -math.inf]


def test_correlate_values_and_bootstrap_intervals():
    rng = np.random.default_rng(1)
    n = 300
    acc = rng.normal(size=n)
    noisy = acc + rng.normal(size=n)
    archs = [f"a{i}" for i in range(n)]
    scores = pd.DataFrame({"arch": archs, "good": noisy, "inverse": -noisy, "noise": rng.normal(size=n)})
    truth = pd.Series(acc, index=archs)
    results = {r.proxy: r for r in correlate(scores, truth, {"good": True, "inverse": False, "noise": True},
                                             n_bootstrap=300, seed=3)}
    good = results["good"]
    assert good.spearman == pytest.approx(spearmanr(noisy, acc).statistic)
    assert good.kendall == pytest.approx(kendalltau(noisy, acc).statistic)
    assert good.spearman_ci[0] < good.spearman < good.spearman_ci[1] and good.spearman_ci[0] > 0.5
    assert good.kendall_ci[0] < good.kendall < good.kendall_ci[1]
    assert 0 <= good.top_precision_ci[0] <= good.top_precision <= good.top_precision_ci[1] <= 1
    # a lower-is-better proxy is oriented before ranking, so it agrees with its mirror image
    assert results["inverse"].spearman == good.spearman and results["inverse"].spearman_ci == good.spearman_ci
    noise = results["noise"]
    assert noise.spearman_ci[0] < noise.spearman < noise.spearman_ci[1] and abs(noise.spearman) < 0.2
    again = correlate(scores, truth, {"good": True}, n_bootstrap=300, seed=3)[0]
    assert again == good
    with pytest.raises(ValueError, match=r"no score column for \['absent'\]"):
        correlate(scores, truth, {"absent": True})
    with pytest.raises(ValueError, match="at least 3"):
        correlate(scores, truth.iloc[:0], {"good": True})


@pytest.fixture
def score_file(tmp_path, shared_data):
    """A real score file over 200 NAS-Bench-201 cells: 'oracle' is the CIFAR-10 test accuracy
    plus noise, 'contrarian' the same ranked backwards (lower is better), 'size' a constant."""
    truth = GroundTruth.from_csv(shared_data / "nasbench201" / "nb201_accuracies.csv.gz")
    archs = [a.to_string() for a in all_architectures()[:200]]
    acc = truth.accuracies(archs, "cifar10", "test", 200).to_numpy()
    noise = np.random.default_rng(0).normal(scale=2.0, size=len(archs))
    path = tmp_path / "scores.h5"
    with ScoreStore.open(path, settings={"space": "nb201", "proxies": ["oracle", "contrarian", "size"]},
                         columns=("oracle", "contrarian", "size"), higher_is_better=(True, False, True)) as store:
        store.append([ScoreRow(a, (float(v + e), float(v + e), 1.0), (0.0, 0.0, 0.0), 0.0)
                      for a, v, e in zip(archs, acc, noise)])
    return path, archs, acc + noise, acc


def test_correlate_command_table_json_and_plot(score_file, tmp_path, capsys):
    path, archs, oracle, acc = score_file
    plot = tmp_path / "plot.png"
    assert main(["correlate", str(path), "--dataset", "cifar10,cifar100", "--bootstrap", "50",
                 "--plot", str(plot)]) == 0
    text = capsys.readouterr().out
    assert "cifar10:" in text and "cifar100:" in text and "oracle" in text and "Spearman" in text
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["correlate", str(path), "--plot", str(plot)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err

    assert main(["correlate", str(path), "--json", "--bootstrap", "50", "--metric", "valid"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = {r["proxy"]: r for r in report["results"]}
    assert report["architectures"] == 200 and report["split"] == "valid"
    assert rows["oracle"]["target"] == "cifar10"
    assert rows["contrarian"]["spearman"] == pytest.approx(-rows["oracle"]["spearman"])
    assert rows["size"]["spearman"] is None  # a constant score has no rank correlation
    valid = GroundTruth.from_csv().accuracies(archs, "cifar10", "valid", 200).to_numpy()
    assert rows["oracle"]["spearman"] == pytest.approx(spearmanr(oracle, valid).statistic)


def test_correlate_command_errors(score_file, tmp_path, capsys):
    path, *_ = score_file
    assert main(["correlate", str(path), "--dataset", "svhn"]) == 2
    assert "unknown dataset 'svhn'" in capsys.readouterr().err
    assert main(["correlate", str(path), "--dataset", "cifar100", "--metric", "valid"]) == 2
    assert "has no cifar100 valid accuracy after 200 epochs" in capsys.readouterr().err
    assert main(["correlate", str(path), "--proxies", "synflow"]) == 2
    assert "no scores for ['synflow']" in capsys.readouterr().err
    missing = tmp_path / "missing.h5"
    assert main(["correlate", str(missing)]) == 2
    assert "no score file" in capsys.readouterr().err
