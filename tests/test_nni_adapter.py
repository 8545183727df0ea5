"""The NNI adapter's parts: network preparation, scoring, the filter rule, the evaluator's
NNI tracing, the supernet view of NNI spaces, and NAS-Bench-201 interop with NNI's own
codec and database schema."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from nni_support import require_nni_module
from torch import nn

from metantk_plugin.integrations.nni import INVALID_SCORE, kernel_ready, score_network
from metantk_plugin.kernels import empirical_ntk
from metantk_plugin.network_adapter import group_count
from metantk_plugin.search.space import REMOVED
from metantk_plugin.spaces.nasbench201 import all_architectures
from metantk_plugin.tasks import TaskBatch, synthetic_tasks


class BNNet(nn.Module):
    """conv-BN-ReLU twice, global pool, a ``classifier``: the shape of NNI's hub networks."""

    def __init__(self, width: int = 12, classes: int = 3):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.classifier = nn.Linear(width, classes)

    def forward(self, x):
        return self.classifier(self.body(x))


def _tasks() -> TaskBatch:
    return synthetic_tasks(n_tasks=2, ways=3, shots=1, queries=1, image_size=8, seed=0)


# ---------------------------------------------------------------------- kernel_ready
def test_group_count_is_largest_divisor_up_to_16():
    assert [group_count(c) for c in (1, 4, 12, 16, 20, 48, 17, 64)] == [1, 4, 12, 16, 10, 16, 1, 16]


def test_kernel_ready_copies_reinitialises_and_replaces_batchnorm():
    original = BNNet()
    before = {k: v.clone() for k, v in original.state_dict().items()}
    torch.manual_seed(123)
    a = kernel_ready(original, seed=5)
    torch.manual_seed(999)  # the global generator does not matter
    b = kernel_ready(BNNet(), seed=5)
    c = kernel_ready(original, seed=6)
    assert all(torch.equal(before[k], v) for k, v in original.state_dict().items())  # caller's net untouched
    assert isinstance(original.body[1], nn.BatchNorm2d)
    for net in (a, b, c):
        assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
        assert [m.num_groups for m in net.modules() if isinstance(m, nn.GroupNorm)] == [12, 12]
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["network.body.0.weight"], sc["network.body.0.weight"])
    x = torch.randn(5, 3, 8, 8)
    features, logits = a(x)
    assert features.shape == (5, 12) and logits.shape == (5, 3)
    assert torch.allclose(logits, a.network.classifier(features))
    # per-sample independence: the NTK of the batch equals the NTKs of single samples
    full = empirical_ntk(a, x).ntk
    single = torch.stack([empirical_ntk(a, x[i:i + 1]).ntk[0, 0] for i in range(5)])
    assert torch.allclose(full.diagonal(), single, rtol=1e-4, atol=1e-6)


def test_kernel_ready_norm_modes_and_errors():
    evald = kernel_ready(BNNet(), norm="eval")
    bns = [m for m in evald.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 2 and not any(m.training for m in bns)
    empirical_ntk(evald, torch.randn(3, 3, 8, 8))  # accepted: eval-mode BN is sample independent
    plain = kernel_ready(BNNet(), norm="none", feature_layer=None)
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) for m in plain.modules())
    assert plain(torch.randn(2, 3, 8, 8)).shape == (2, 3)
    with pytest.raises(ValueError, match="norm must be one of"):
        kernel_ready(BNNet(), norm="batch")
    with pytest.raises(ValueError, match=r"feature_layer must name an nn.Linear.*\['classifier'\]"):
        kernel_ready(BNNet(), feature_layer="body")
    with pytest.raises(ValueError, match="seed must be an int"):
        kernel_ready(BNNet(), seed=1.5)

    class RawParameter(BNNet):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(1))

    with pytest.warns(RuntimeWarning, match="not reproducible.*scale"):
        kernel_ready(RawParameter())


# ---------------------------------------------------------------------- scoring
def test_score_network_orients_and_replaces_non_finite():
    tasks = _tasks()
    result = score_network(BNNet(), tasks, seed=2)
    assert result.proxy == "metantk" and result.seed == 2
    assert math.isfinite(result.raw) and result.score == pytest.approx(-math.log(result.raw))
    flat = TaskBatch(torch.zeros_like(tasks.support_x), tasks.support_y, torch.zeros_like(tasks.query_x),
                     tasks.query_y, tasks.ways)
    with pytest.warns(RuntimeWarning):
        degenerate = score_network(BNNet(), flat, proxy="ntk_cond", invalid_score=-7.0)
    assert degenerate.raw == math.inf and degenerate.score == -7.0
    with pytest.raises(ValueError, match="invalid_score must be a finite"):
        score_network(BNNet(), tasks, invalid_score=-math.inf)
    with pytest.raises(ValueError, match="unknown proxy 'nope'; available: .*metantk"):
        score_network(BNNet(), tasks, proxy="nope")
    assert INVALID_SCORE < -1e6


# ---------------------------------------------------------------------- evaluator and filter
def _space():
    hub = require_nni_module("nni.nas.hub.pytorch")
    return hub.NasBench201(stem_out_channels=4, num_modules_per_stack=1, num_labels=3)


def _frozen(space, arch_index: int):
    nas_space = require_nni_module("nni.nas.space")
    executable = nas_space.SimplifiedModelSpace.from_model(space)
    return executable.freeze(all_architectures()[arch_index].to_nni())


def test_evaluator_is_traced_and_rebuilt_from_its_arguments():
    from metantk_plugin.integrations.nni import ProxyEvaluator

    nni = require_nni_module("nni")
    space = _space()
    options = {"image_size": 8, "ways": 3}
    evaluator = ProxyEvaluator(tasks="synthetic", task_options=options, n_tasks=2, task_seed=4, seed=1)
    rebuilt = nni.load(nni.dump(evaluator))
    assert isinstance(rebuilt, ProxyEvaluator) and rebuilt is not evaluator
    assert torch.equal(rebuilt.tasks.inputs(), evaluator.tasks.inputs())
    model = _frozen(space, 1).executable_model()
    assert rebuilt.evaluate(model) == evaluator.evaluate(model)  # outside NNI evaluate() just returns
    assert evaluator.tasks.inputs().shape == (2 * 6, 3, 8, 8)
    with pytest.raises(ValueError, match="unknown proxy"):
        ProxyEvaluator("cond")
    with pytest.raises(ValueError, match="norm must be one of"):
        ProxyEvaluator(norm="batch")
    with pytest.raises(ValueError, match="invalid_score must be a finite"):
        ProxyEvaluator(invalid_score=float("nan"))
    with pytest.raises(ValueError, match="tasks must be a TaskBatch, a data spec"):
        ProxyEvaluator(tasks=3)
    with pytest.raises(ValueError, match="unknown data kind"):
        ProxyEvaluator(tasks="cifar11:/nowhere")


def test_filter_threshold_and_cache():
    from metantk_plugin.integrations.nni import ProxyFilter

    space, tasks = _space(), _tasks()
    models = [_frozen(space, i) for i in (0, 1, 2, 3, 4, 5)]
    keep_all = ProxyFilter(top_fraction=1.0, tasks=tasks, seed=2)
    assert all(keep_all(m) for m in models)
    scores = [d.result.score for d in keep_all.history]
    threshold = sorted(scores)[3]
    gate = ProxyFilter(threshold=threshold, tasks=tasks, seed=2)
    decisions = [gate(m) for m in models]
    assert decisions == [s >= threshold for s in scores] and 0 < sum(decisions) < len(models)
    assert all(d.reason.startswith("score") for d in gate.history if not d.accepted)
    again = gate(_frozen(space, 0))  # a repeated sample is decided on its cached score
    assert again == decisions[0] and gate.history[-1].result is gate.history[0].result
    with pytest.raises(ValueError, match="needs a threshold, a top_fraction or both"):
        ProxyFilter(tasks=tasks)
    with pytest.raises(ValueError, match=r"top_fraction must lie in \(0, 1\]"):
        ProxyFilter(top_fraction=0, tasks=tasks)
    with pytest.raises(ValueError, match="threshold must be a finite number"):
        ProxyFilter(threshold=math.nan, tasks=tasks)


# ---------------------------------------------------------------------- supernet
def test_nni_space_as_prunable_space():
    from metantk_plugin.integrations.nni import NNIPrunableSpace

    space = _space()
    prunable = NNIPrunableSpace(space, exclude_ops=("none",))
    assert prunable.labels == list(space.simplify())
    assert prunable.op_names == ("none", "skip_connect", "conv_1x1", "conv_3x3", "avg_pool_3x3")
    alphas = prunable.initial_alphas()
    assert alphas["choices"].shape == (6, 5)
    assert (alphas["choices"][:, 0] == REMOVED).all() and (alphas["choices"][:, 1:] == 0).all()

    kernel_net = prunable.kernel_network(alphas)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in kernel_net.modules())
    features, logits = kernel_net(torch.randn(2, 3, 8, 8))
    assert features.shape == (2, 16) and logits.shape == (2, 3)
    region_net = prunable.region_network(alphas)
    assert region_net(torch.randn(5, 1, 3, 3)).shape == (5, 3)
    assert region_net.network.channels == 1  # the thin NAS-Bench-201 network

    from metantk_plugin.integrations.nni.supernet import _MixedChoice

    mixed = next(m for m in kernel_net.modules() if isinstance(m, _MixedChoice))
    x = torch.randn(2, 4, 8, 8)
    ops = dict(mixed.ops.items())
    expected = sum(ops[name](x) for name in ("skip_connect", "conv_1x1", "conv_3x3", "avg_pool_3x3")) / 4
    assert torch.allclose(mixed(x), expected, atol=1e-6)
    alphas["choices"][:, 2] = REMOVED  # conv_1x1 removed everywhere
    prunable.apply_alphas(kernel_net, alphas)
    expected = sum(ops[name](x) for name in ("skip_connect", "conv_3x3", "avg_pool_3x3")) / 3
    assert torch.allclose(mixed(x), expected, atol=1e-6)
    alphas["choices"][:, [1, 4]] = REMOVED
    assert prunable.describe(alphas) == {"sample": {label: "conv_3x3" for label in prunable.labels}}

    nas_space = require_nni_module("nni.nas.space")
    for executable in (nas_space.SimplifiedModelSpace, nas_space.RawFormatModelSpace):  # what strategies receive
        assert NNIPrunableSpace(executable.from_model(space)).labels == prunable.labels

    with pytest.raises(ValueError, match="which no choice offers"):
        NNIPrunableSpace(space, exclude_ops=("sep_conv_3x3",))
    with pytest.raises(ValueError, match="removes every operation"):
        NNIPrunableSpace(space, exclude_ops=prunable.op_names)


def test_pruning_refuses_spaces_with_other_choices():
    from metantk_plugin.integrations.nni import NNIPrunableSpace

    nni = require_nni_module("nni")
    nas_nn = require_nni_module("nni.nas.nn.pytorch")

    class WidthSpace(nas_nn.ModelSpace):
        def __init__(self):
            super().__init__()
            width = nni.choice("width", [4, 8])
            self.conv = nas_nn.MutableConv2d(3, width, 3, padding=1)
            self.act = nas_nn.LayerChoice([nn.ReLU(), nn.Tanh()], label="act")

        def forward(self, x):
            return self.act(self.conv(x))

    with pytest.raises(ValueError, match=r"only choices are operations.*\['width'\]"):
        NNIPrunableSpace(WidthSpace())
    with pytest.raises(ValueError, match="needs an NNI ModelSpace"):
        NNIPrunableSpace(nn.Linear(2, 2))


# ---------------------------------------------------------------------- NAS-Bench-201 interop
def test_sample_strings_agree_with_nnis_own_parser():
    from metantk_plugin.integrations.nni import sample_from_string, sample_to_string

    db_gen = require_nni_module("nni.nas.benchmark.nasbench201.db_gen")
    for arch in all_architectures()[::97]:
        text = arch.to_string()
        sample = sample_from_string(text)
        assert {f"cell/{k}": v for k, v in db_gen.parse_arch_str(text).items()} == sample
        assert sample_to_string(sample) == text
        assert sample_to_string(db_gen.parse_arch_str(text), label=None) == text
    assert sample_from_string(1) == sample_from_string(all_architectures()[1].to_string())
    with pytest.raises(ValueError, match="unknown NNI operation 'sep_conv'"):
        sample_to_string({**sample_from_string(0), "cell/0_1": "sep_conv"})


def test_accuracy_from_the_shared_table(shared_data):
    from metantk_plugin.integrations.nni import nb201_accuracy, nb201_ground_truth, sample_from_string

    table = pd.read_csv(shared_data / "nasbench201" / "nb201_accuracies.csv.gz")
    truth = nb201_ground_truth(shared_data / "nasbench201" / "nb201_accuracies.csv.gz")
    for index in (0, 1, 6111, 15624):
        row = table.iloc[index]
        sample = sample_from_string(row["arch"])
        assert nb201_accuracy(sample, ground_truth=truth) == pytest.approx(row["cifar10_test"])
        assert nb201_accuracy(sample, dataset="cifar100", ground_truth=truth) == pytest.approx(row["cifar100_test"])


def test_accuracy_from_an_nni_database(tmp_path, monkeypatch):
    from metantk_plugin.integrations.nni import nb201_ground_truth, nni_database_path, sample_from_string

    schema = require_nni_module("nni.nas.benchmark.nasbench201.schema")
    query = require_nni_module("nni.nas.benchmark.nasbench201.query")
    sqlite_ext = require_nni_module("playhouse.sqlite_ext")
    monkeypatch.setenv("NASBENCHMARK_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="nni.nas.benchmark.download nasbench201"):
        nb201_ground_truth("nni")
    path = nni_database_path()
    assert path == tmp_path / "nasbench201-b2b60732.db"
    archs = [all_architectures()[i] for i in (1, 7, 42)]
    accuracies = {1: [93.0, 94.0, 92.5], 7: [70.25], 42: [88.0, 89.5]}
    database = sqlite_ext.SqliteExtDatabase(str(path))
    schema.proxy.initialize(database)
    try:
        database.create_tables([schema.Nb201TrialConfig, schema.Nb201TrialStats, schema.Nb201IntermediateStats])
        zeros = dict(train_acc=0, valid_acc=0, ori_test_acc=0, parameters=0, latency=0, flops=0, training_time=0,
                     valid_evaluation_time=0, test_evaluation_time=0, ori_test_evaluation_time=0)
        for arch in archs:
            config = schema.Nb201TrialConfig.create(arch=arch.to_nni(label=None), num_epochs=200, num_channels=16,
                                                    num_cells=5, dataset="cifar100")
            for seed, accuracy in enumerate(accuracies[arch.index]):
                schema.Nb201TrialStats.create(config=config, seed=seed, test_acc=accuracy, **zeros)
        nni_means = {a.index: next(query.query_nb201_trial_stats(a.to_nni(label=None), 200, "cifar100", "mean"))
                     for a in archs}
    finally:
        schema.proxy.initialize(None)
        database.close()
    truth = nb201_ground_truth("nni")
    for arch in archs:
        sample = sample_from_string(arch.to_string())
        value = truth.accuracy(sample, dataset="cifar100")
        assert value == pytest.approx(sum(accuracies[arch.index]) / len(accuracies[arch.index]))
        assert value == pytest.approx(nni_means[arch.index]["test_acc"])
    with pytest.raises(ValueError, match="no cifar10 test"):
        truth.accuracy(sample_from_string(archs[0].to_string()), dataset="cifar10")


def test_missing_nni_names_the_install_command(monkeypatch):
    import metantk_plugin.integrations.nni as adapter
    from metantk_plugin.integrations.nni._require import require_nni

    monkeypatch.setitem(sys.modules, "nni", None)
    for name in [m for m in sys.modules if m.startswith("nni.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "metantk_plugin.integrations.nni.evaluator", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'metantk-plugin\[nni\]'"):
        require_nni("nni.nas.strategy")
    with pytest.raises(ImportError, match=r"pip install 'metantk-plugin\[nni\]'"):
        adapter.ProxyEvaluator  # noqa: B018  (the lazy attribute imports NNI)
    assert adapter.score_network is score_network  # the NNI-free part still works


def test_the_readme_snippet_imports_print_no_nni_warning(tmp_path):
    require_nni_module("nni")
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    snippet = re.search(r"## NNI 3.0\n\n```python\n(.*?)```", readme, re.S).group(1)
    imports = "\n".join(line for line in snippet.splitlines() if line.startswith(("from ", "import ")))
    assert imports.startswith("from metantk_plugin") and "nni.nas.hub.pytorch" in imports
    done = subprocess.run([sys.executable, "-W", "default", "-c", imports], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Warning" not in done.stderr, done.stderr  # NNI's torch.nn.Buffer RuntimeWarning among others
