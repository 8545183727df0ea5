"""Real NNI 3.0 experiments, in-process ('sequential' engine), on a small NAS-Bench-201 space.

Every test runs with HOME, NNI's config folder and its experiment folders inside
tmp_path, and checks that nothing appeared in the real home, NNI's config folder in the
environment, or the working directory.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import pytest
import torch
from nni_support import require_nni_module

from metantk_plugin.integrations.nni import INVALID_SCORE, kernel_ready
from metantk_plugin.proxies import compute_proxy, get_proxy
from metantk_plugin.search.space import REMOVED
from metantk_plugin.spaces.mixed_edges import active_operations
from metantk_plugin.tasks import TaskBatch, synthetic_tasks

SEED = 3


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    if not folder.is_dir():
        return {}
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in folder.rglob("*") if p.is_file()}


@pytest.fixture()
def nni_home(tmp_path, monkeypatch):
    """HOME, NNI's config dir, cache and experiment manifest moved into tmp_path; afterwards
    the real home's nni-experiments, the environment's nni config dir and the working
    directory must be unchanged."""
    config_utils = require_nni_module("nni.tools.nnictl.config_utils")
    require_nni_module("nni.nas.experiment")
    real_home = Path(os.path.expanduser("~"))
    watched = [real_home / "nni-experiments", Path(sys.prefix) / "nni", Path.cwd() / "nni-experiments"]
    before = [_snapshot(folder) for folder in watched]
    cwd_before = sorted(os.listdir(Path.cwd()))
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NNI_CONFIG_DIR", str(tmp_path / "nni-config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.delenv("NNI_HOME", raising=False)
    # NNI binds ~/nni-experiments at import time as the default of Experiments(home_dir=...)
    monkeypatch.setattr(config_utils.Experiments.__init__, "__defaults__", (str(home / "nni-experiments"),))
    yield home
    assert [_snapshot(folder) for folder in watched] == before, "NNI wrote outside the temporary HOME"
    assert sorted(os.listdir(Path.cwd())) == cwd_before
    assert (home / "nni-experiments" / ".experiment").is_file()  # the manifest went to the temporary HOME


def _space(num_labels: int = 3):
    hub = require_nni_module("nni.nas.hub.pytorch")
    return hub.NasBench201(stem_out_channels=4, num_modules_per_stack=1, num_labels=num_labels)


def _tasks() -> TaskBatch:
    return synthetic_tasks(n_tasks=2, ways=3, shots=1, queries=1, image_size=16, seed=0)


def _run(space, evaluator, strategy, trials: int, workdir: Path):
    from metantk_plugin.integrations.nni import sequential_config

    experiment_module = require_nni_module("nni.nas.experiment")
    exp = experiment_module.NasExperiment(space, evaluator, strategy, sequential_config(trials, workdir))
    try:
        exp.run()
        models = [m for m in strategy.list_models(sort=False) if m.status.value != "invalid"]
        top = exp.export_top_models(top_k=trials, formatter="dict")
    finally:
        exp.stop()
    return models, top


def _direct(space, sample: dict, tasks: TaskBatch, proxy: str = "metantk") -> tuple[float, float]:
    """(raw, score) computed without NNI's run loop: freeze, prepare, registry; a
    non-finite higher-is-better value scores INVALID_SCORE."""
    net = kernel_ready(space.freeze(sample), seed=SEED)
    raw = compute_proxy(proxy, net, tasks, seed=SEED)
    oriented = get_proxy(proxy).oriented(raw)
    return raw, oriented if math.isfinite(oriented) else INVALID_SCORE


@pytest.mark.parametrize("strategy_name", ["Random", "RegularizedEvolution"])
def test_reported_metrics_equal_direct_scores(nni_home, tmp_path, strategy_name):
    from metantk_plugin.integrations.nni import ProxyEvaluator

    strategies = require_nni_module("nni.nas.strategy")
    if strategy_name == "Random":
        strategy = strategies.Random(seed=0)
    else:
        strategy = strategies.RegularizedEvolution(population_size=4, sample_size=2, mutation_prob=0.5, seed=0)
    space, tasks = _space(), _tasks()
    models, top = _run(space, ProxyEvaluator(tasks=tasks, seed=SEED), strategy, 8, tmp_path / "runs")

    assert len(models) == 8
    assert all(m.status.value == "trained" for m in models)
    samples = [dict(m.sample) for m in models]
    assert len({tuple(sorted(s.items())) for s in samples}) == 8  # both strategies deduplicate
    for model, sample in zip(models, samples):
        raw, oriented = _direct(space, sample, tasks)
        assert math.isfinite(raw) and raw >= 1
        assert model.metric == pytest.approx(oriented, rel=1e-9, abs=1e-12)
        assert model.metric == pytest.approx(-math.log(raw), rel=1e-9)
        assert list(model.metrics.intermediates) == [pytest.approx(raw, rel=1e-9)]
    metrics = [m.metric for m in models]
    assert len(set(metrics)) > 1, "different architectures must score differently"
    assert top[0] == samples[metrics.index(max(metrics))]  # NNI's top model is the best direct score


def test_any_registered_proxy_and_non_finite_scores(nni_home, tmp_path):
    from metantk_plugin.integrations.nni import ProxyEvaluator

    strategies = require_nni_module("nni.nas.strategy")
    space, tasks = _space(), _tasks()
    models, _ = _run(space, ProxyEvaluator("linear_regions", tasks=tasks, seed=SEED), strategies.Random(seed=1), 8,
                     tmp_path / "regions")
    for model in models:
        raw, _ = _direct(space, dict(model.sample), tasks, "linear_regions")
        assert model.metric == raw and list(model.metrics.intermediates) == [raw]  # higher is better: no change
    # identical images make every kernel row equal: the NTK is singular, its condition number inf
    flat = TaskBatch(torch.zeros_like(tasks.support_x), tasks.support_y, torch.zeros_like(tasks.query_x),
                     tasks.query_y, tasks.ways)
    with pytest.warns(RuntimeWarning, match="singular|zero"):
        models, _ = _run(space, ProxyEvaluator("ntk_cond", tasks=flat, seed=SEED), strategies.Random(seed=2), 2,
                         tmp_path / "degenerate")
    for model in models:
        assert model.metric == INVALID_SCORE
        assert list(model.metrics.intermediates) == [sys.float_info.max]


def test_filter_rejects_outside_top_fraction(nni_home, tmp_path):
    from metantk_plugin.integrations.nni import ProxyFilter

    strategies = require_nni_module("nni.nas.strategy")
    middleware = require_nni_module("nni.nas.strategy.middleware")
    evaluator_module = require_nni_module("nni.nas.evaluator")
    nni = require_nni_module("nni")
    evaluated = []

    def expensive(model):
        evaluated.append(dict(nni.get_current_parameter().sample))
        nni.report_final_result(float(len(evaluated)))

    space, tasks = _space(), _tasks()
    gate = ProxyFilter(top_fraction=0.5, tasks=tasks, seed=SEED)
    strategy = middleware.Chain(strategies.Random(seed=0), middleware.Filter(gate))
    models, _ = _run(space, evaluator_module.FunctionalEvaluator(expensive), strategy, 5, tmp_path / "runs")

    accepted = [d for d in gate.history if d.accepted]
    rejected = [d for d in gate.history if not d.accepted]
    assert len(accepted) == 5 and rejected, "the run must both accept and reject"
    assert evaluated == [d.sample for d in accepted]  # only accepted models reached the evaluator
    scores = []
    for decision in gate.history:
        _, oriented = _direct(space, decision.sample, tasks)
        assert decision.result.score == pytest.approx(oriented, rel=1e-9)
        scores.append(oriented)
        higher = sum(s > oriented for s in scores)
        assert decision.accepted == (higher < math.ceil(0.5 * len(scores)))
    assert len(models) == 5 and all(m.status.value == "trained" for m in models)


def test_metantk_pruning_strategy_runs_to_one_architecture(nni_home, tmp_path):
    from metantk_plugin.integrations.nni import MetaNTKPruning, ProxyEvaluator

    space, tasks = _space(), _tasks()
    strategy = MetaNTKPruning(tasks=tasks, settings={"repeats": 1, "region_samples": 64, "n_tasks": 2, "seed": 0})
    models, top = _run(space, ProxyEvaluator(tasks=tasks, seed=SEED), strategy, 4, tmp_path / "runs")

    result = strategy.result
    sample = result.architecture["sample"]
    assert len(models) == 1 and top == [sample]
    assert sorted(sample) == sorted(space.simplify())
    assert models[0].metric == pytest.approx(_direct(space, sample, tasks)[1], rel=1e-9)
    alpha = torch.tensor(result.alphas["choices"])
    assert [len(ops) for ops in active_operations(alpha)] == [1] * 6
    assert [r["round"] for r in result.rounds] == [0, 1, 2, 3]  # 5 operations -> 1, one per round
    for index, rnd in enumerate(result.rounds):
        assert len(rnd["candidates"]) == 6 * (5 - index)
        pruned = [c["edge"] for c in rnd["candidates"] if c["pruned"]]
        assert sorted(pruned) == list(range(6))  # exactly one operation per choice and round
    survivors = {c["edge"]: c["op"] for r in result.rounds for c in r["candidates"] if not c["pruned"]}
    ops = ["none", "skip_connect", "conv_1x1", "conv_3x3", "avg_pool_3x3"]
    for edge, label in enumerate(space.simplify()):
        assert survivors[edge] == sample[label]
        assert float(alpha[edge, ops.index(sample[label])]) == 0 and (alpha[edge] == REMOVED).sum() == 4

    resumed = MetaNTKPruning(tasks=tasks)
    resumed.load_state_dict(strategy.state_dict())
    assert resumed.result.architecture == result.architecture
    assert resumed.result.round_seconds == result.round_seconds and len(result.round_seconds) == 4
    state = strategy.state_dict()  # as saved before rounds were timed
    state["result"] = {k: v for k, v in state["result"].items() if k != "round_seconds"}
    resumed.load_state_dict(state)
    assert resumed.result.round_seconds == [None] * 4 and resumed.result.rounds == result.rounds
