"""Few-shot tables of many architectures: the feature-bank probe, the table runner (resume,
refusals, executors, kill -9), MAML on cells with unused parameters, and both spaces."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from metantk_plugin.fewshot.evaluation import evaluate_episodes
from metantk_plugin.fewshot.maml import MetaConfig, MetaLearner
from metantk_plugin.fewshot.pipeline import EvaluationSettings
from metantk_plugin.fewshot.rfs import feature_bank_accuracy, probe_accuracy
from metantk_plugin.fewshot.table import (
    FewShotTableSettings,
    evaluate_architectures,
    read_fewshot_table,
)
from metantk_plugin.scoring.architectures import select_architectures
from metantk_plugin.scoring.store import ScoreFileError, read_settings
from metantk_plugin.spaces.nasbench201 import build_network

TIMING = ["train_seconds"]


@pytest.fixture(scope="module")
def omniglot_spec(shared_data):
    return f"omniglot:{shared_data / 'fewshot' / 'omniglot'}"


def tiny(omniglot_spec, *, space="nb201", protocol="rfs", seed=0, shots=(1, 2), **changes) -> FewShotTableSettings:
    evaluation = EvaluationSettings(network="*", data=omniglot_spec, protocol=protocol, ways=3, shots=shots[0],
                                    queries=2, meta_iterations=3, batch_size=16, episodes=6, image_size=16, seed=seed,
                                    channels=4, cells=1 if space == "nb201" else 2, meta_batch=2, **changes)
    return FewShotTableSettings(space, evaluation, shots=shots)


def values(path) -> pd.DataFrame:
    """A table without its wall-clock column (the only one that differs between runs)."""
    table, _ = read_fewshot_table(path)
    return table.drop(columns=TIMING)


def test_feature_bank_gives_the_accuracies_of_per_episode_probing(omniglot_spec):
    settings = EvaluationSettings(network="*", data=omniglot_spec, ways=5, shots=2, queries=3, image_size=16).resolved()
    sampler = settings.episode_sampler("test")
    net = build_network("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|",
                        C=4, N=1, num_classes=5, in_channels=1, seed=3).eval()
    per_episode = evaluate_episodes(lambda tasks: probe_accuracy(net, tasks), sampler, episodes=12, seed=5,
                                    batch_size=5, progress=False)
    banked = feature_bank_accuracy(net, sampler, episodes=12, seed=5, batch_size=7)
    np.testing.assert_array_equal(banked.accuracies, per_episode.accuracies)
    assert banked.ci95 == pytest.approx(per_episode.ci95)
    with pytest.raises(ValueError, match="episodes must be a positive int"):
        feature_bank_accuracy(net, sampler, episodes=0)


def test_settings_validate_and_name_their_columns(omniglot_spec):
    settings = tiny(omniglot_spec)
    assert settings.columns == ("acc_3way_1shot", "ci95_3way_1shot", "acc_3way_2shot", "ci95_3way_2shot",
                                "episodes", "train_seconds", "parameters")
    assert settings.to_dict()["evaluation"]["channels"] == 4
    with pytest.raises(ValueError, match="shots must be distinct positive ints"):
        tiny(omniglot_spec, shots=(1, 1))
    with pytest.raises(ValueError, match="3k\\+2 cells"):
        FewShotTableSettings("darts-fewshot", replace(settings.evaluation, cells=3))
    with pytest.raises(ValueError, match="channels must be a positive int"):
        FewShotTableSettings("nb201", replace(settings.evaluation, channels=0))
    with pytest.raises(ValueError, match="needs real images"):
        FewShotTableSettings("nb201", replace(settings.evaluation, data="synthetic"))
    with pytest.raises(ValueError, match="unknown search space"):
        FewShotTableSettings("nb101", settings.evaluation)


def test_table_rows_resume_and_refuse_other_settings(tmp_path, omniglot_spec):
    settings = tiny(omniglot_spec)
    archs = select_architectures("nb201", "sample:3:0")
    out = tmp_path / "table.h5"
    first = evaluate_architectures(settings, archs[:2], out, progress=False)
    assert (first.scored, first.already_done) == (2, 0)
    table, stored = read_fewshot_table(out)
    assert stored == settings.to_dict()
    assert table["arch"].tolist() == archs[:2]
    assert ((table["acc_3way_1shot"] >= 0) & (table["acc_3way_1shot"] <= 1)).all()
    assert (table["episodes"] == 6).all() and (table["parameters"] > 0).all() and (table["train_seconds"] > 0).all()
    again = evaluate_architectures(settings, archs, out, progress=False)
    assert (again.scored, again.already_done) == (1, 2)
    clean = tmp_path / "clean.h5"
    evaluate_architectures(settings, archs, clean, progress=False)
    pd.testing.assert_frame_equal(values(out), values(clean), check_exact=True)
    with pytest.raises(ScoreFileError, match="other settings"):
        evaluate_architectures(tiny(omniglot_spec, seed=1), archs, out, progress=False)


def test_processes_and_ray_executors_give_the_local_table(tmp_path, omniglot_spec):
    settings = tiny(omniglot_spec)
    archs = select_architectures("nb201", "sample:3:2")
    evaluate_architectures(settings, archs, tmp_path / "local.h5", progress=False)
    evaluate_architectures(settings, archs, tmp_path / "pool.h5", executor="processes", workers=2, progress=False)
    pd.testing.assert_frame_equal(values(tmp_path / "local.h5"), values(tmp_path / "pool.h5"), check_exact=True)
    ray = pytest.importorskip("ray") if not os.environ.get("CI") else __import__("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        evaluate_architectures(settings, archs, tmp_path / "ray.h5", executor="ray", workers=2, progress=False)
    finally:
        ray.shutdown()
    pd.testing.assert_frame_equal(values(tmp_path / "local.h5"), values(tmp_path / "ray.h5"), check_exact=True)


_RUN = textwrap.dedent("""
    import sys
    import torch
    torch.set_num_threads(1)
    from metantk_plugin.scoring.architectures import select_architectures
    from metantk_plugin.fewshot.pipeline import EvaluationSettings
    from metantk_plugin.fewshot.table import FewShotTableSettings, evaluate_architectures
    evaluation = EvaluationSettings(network="*", data=sys.argv[2], protocol="rfs", ways=3, shots=1, queries=2,
                                    meta_iterations=3, batch_size=16, episodes=6, image_size=16, channels=4, cells=1)
    settings = FewShotTableSettings("nb201", evaluation, shots=(1, 2))
    evaluate_architectures(settings, select_architectures("nb201", "sample:12:1"), sys.argv[1], progress=False)
""")


def _finished_rows(path) -> int:
    try:
        return len(read_fewshot_table(path)[0])
    except (FileNotFoundError, ScoreFileError):  # not created yet, or mid-creation
        return 0


def test_kill_9_mid_table_then_resume_gives_the_uninterrupted_table(tmp_path, omniglot_spec):
    killed = tmp_path / "killed.h5"
    proc = subprocess.Popen([sys.executable, "-c", _RUN, str(killed), omniglot_spec],
                            env={**os.environ, "PYTHONWARNINGS": "ignore"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _finished_rows(killed) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    done = len(read_fewshot_table(killed)[0])
    assert 2 <= done < 12
    settings = FewShotTableSettings("nb201", EvaluationSettings(
        network="*", data=omniglot_spec, protocol="rfs", ways=3, shots=1, queries=2, meta_iterations=3,
        batch_size=16, episodes=6, image_size=16, channels=4, cells=1), shots=(1, 2))
    archs = select_architectures("nb201", "sample:12:1")
    summary = evaluate_architectures(settings, archs, killed, progress=False)
    assert (summary.already_done, summary.scored) == (done, 12 - done)
    clean = tmp_path / "clean.h5"
    evaluate_architectures(settings, archs, clean, progress=False)
    pd.testing.assert_frame_equal(values(killed), values(clean), check_exact=True)
    assert read_settings(killed) == read_settings(clean)


def test_first_order_maml_table_and_darts_genotypes(tmp_path, omniglot_spec):
    settings = tiny(omniglot_spec, space="darts-fewshot", protocol="fomaml", shots=(1,))
    archs = select_architectures("darts-fewshot", "sample:2:0")
    evaluate_architectures(settings, archs, tmp_path / "darts.h5", progress=False)
    table, stored = read_fewshot_table(tmp_path / "darts.h5")
    assert table["arch"].tolist() == archs and stored["space"] == "darts-fewshot"
    assert table["acc_3way_1shot"].between(0, 1).all() and math.isfinite(table["ci95_3way_1shot"].sum())


def test_maml_adapts_cells_whose_parameters_the_loss_never_reaches(omniglot_spec):
    # the conv on edge 0->1 feeds node 1, which reaches the output only through 'none'
    net = build_network("|nor_conv_3x3~0|+|skip_connect~0|none~1|+|skip_connect~0|none~1|skip_connect~2|",
                        C=4, N=1, num_classes=3, in_channels=1, seed=0)
    settings = EvaluationSettings(network="*", data=omniglot_spec, ways=3, shots=1, queries=2, image_size=16)
    tasks = settings.resolved().episode_sampler("train").sample(2, 0)
    for algorithm in ("maml", "fomaml"):
        learner = MetaLearner(net, MetaConfig(algorithm=algorithm, inner_lr=0.1, inner_steps=1))
        before = {n: p.detach().clone() for n, p in learner.network.named_parameters()}
        loss, _ = learner.meta_step(tasks)
        assert math.isfinite(loss)
        changed = [n for n, p in learner.network.named_parameters() if not torch.equal(before[n], p)]
        assert changed and "cells.0.layers.0.op.1.weight" not in changed
