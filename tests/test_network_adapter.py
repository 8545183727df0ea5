"""The network adapter: the (features, logits) convention, one normalisation vocabulary,
BatchNorm replacement, and the linear head (declared, or guessed for user networks)."""

from __future__ import annotations

import importlib
import sys

import pytest
import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from metantk_plugin.fewshot.conv4 import Conv4
from metantk_plugin.fewshot.maml import MetaConfig, meta_gradient, use_batch_statistics
from metantk_plugin.network_adapter import (
    KERNEL_NORMS,
    NETWORK_NORMS,
    NORMS,
    FeaturesAndLogits,
    head_name,
    replace_batchnorm,
    split_output,
    strip_normalisation,
)
from metantk_plugin.tasks import synthetic_tasks


class LogitsNet(nn.Module):
    """conv-BN-ReLU, pool, then ``fc`` (a hidden linear layer) and ``out``; returns logits only."""

    def __init__(self, classes: int = 3):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(8, 6)
        self.out = nn.Linear(6, classes)

    def forward(self, x):
        return self.out(torch.relu(self.fc(self.body(x))))


class DeclaredHead(LogitsNet):
    """``LogitsNet`` returning (features, logits) and declaring ``out`` as its head, although
    ``fc`` is among the names a guess would try first."""

    head_name = "out"

    def forward(self, x):
        features = torch.relu(self.fc(self.body(x)))
        return features, self.out(features)


# ---------------------------------------------------------------------------- outputs
def test_split_output_reads_tensors_pairs_and_metanas_lists():
    a, b = torch.zeros(2, 3), torch.ones(2, 4)
    assert split_output(a) == (a, a)
    assert split_output((a, b)) == (a, b)
    assert split_output(([b, a], b)) == (a, b)
    with pytest.raises(TypeError, match="a tensor or a \\(features, logits\\) pair"):
        split_output((a, a, a))


def test_features_and_logits_takes_the_input_of_the_feature_layer():
    net = LogitsNet()
    x = torch.randn(4, 1, 6, 6)
    for wrapped, layer in ((FeaturesAndLogits(net, net.out), net.out), (FeaturesAndLogits(net), net.out),
                           (FeaturesAndLogits(net, net.fc), net.fc)):
        features, logits = wrapped(x)
        assert torch.equal(logits, net(x))
        expected = torch.relu(net.fc(net.body(x))) if layer is net.out else net.body(x)
        assert torch.allclose(features, expected)
    assert not net.out._forward_pre_hooks  # hooks live for one forward pass only
    assert list(FeaturesAndLogits(net).state_dict()) == [f"network.{k}" for k in net.state_dict()]


def test_features_and_logits_explains_a_missing_or_repeated_feature_layer():
    class Skips(nn.Module):
        def __init__(self):
            super().__init__()
            self.unused = nn.Linear(2, 2)

        def forward(self, x):
            return x

    with pytest.raises(ValueError, match="no registered nn.Linear"):
        FeaturesAndLogits(nn.Flatten())
    with pytest.raises(ValueError, match="called none of its nn.Linear"):
        FeaturesAndLogits(Skips())(torch.randn(2, 2))
    with pytest.raises(RuntimeError, match="ran 0 times"):
        FeaturesAndLogits(LogitsNet(), Skips().unused)(torch.randn(2, 1, 6, 6))
    twice = nn.Linear(3, 3)
    with pytest.raises(RuntimeError, match="ran 2 times"):
        FeaturesAndLogits(nn.Sequential(twice, twice), twice)(torch.randn(2, 3))


# ---------------------------------------------------------------------------- normalisation
def test_one_vocabulary_every_context_takes_its_subset():
    from metantk_plugin.integrations.nni import NORM_MODES
    from metantk_plugin.scoring.settings import NETWORK_NORMS as SCORE_NORMS
    from metantk_plugin.spaces.darts_fewshot import NORMS as DARTS_NORMS
    from metantk_plugin.spaces.nasbench201 import NORMS as NB201_NORMS

    assert NORMS == ("batch", "group", "eval", "none")
    assert NETWORK_NORMS == ("batch", "group", "none") and KERNEL_NORMS == ("group", "eval", "none")
    assert set(NETWORK_NORMS) | set(KERNEL_NORMS) == set(NORMS)
    assert NB201_NORMS is DARTS_NORMS is SCORE_NORMS is NETWORK_NORMS and NORM_MODES is KERNEL_NORMS


def test_replace_batchnorm_modes():
    x = torch.randn(3, 1, 6, 6)
    for norm, kind in (("group", nn.GroupNorm), ("eval", nn.BatchNorm2d), ("none", nn.Identity)):
        net = LogitsNet()
        with torch.no_grad():
            net.body[1].weight.uniform_()
        scale = net.body[1].weight.detach().clone()
        assert replace_batchnorm(net, norm) is net
        layer = net.body[1]
        assert type(layer) is kind
        if norm == "group":
            assert layer.num_groups == 8 and torch.equal(layer.weight, scale)  # affine parameters copied
        if norm == "eval":
            assert not layer.training
        alone = net(x[:1])
        assert torch.allclose(alone, net(x)[:1], atol=1e-6)  # samples no longer interact
    with pytest.raises(ValueError, match="norm must be one of \\('group', 'eval', 'none'\\), got 'batch'"):
        replace_batchnorm(LogitsNet(), "batch")


def test_strip_normalisation_removes_every_kind_of_norm_layer():
    net = nn.Sequential(nn.BatchNorm2d(2), nn.Sequential(nn.GroupNorm(1, 2), nn.InstanceNorm2d(2)), nn.LayerNorm(4),
                        nn.ReLU())
    assert strip_normalisation(net) is net
    assert [type(m).__name__ for m in net.modules()] == ["Sequential", "Identity", "Sequential", "Identity",
                                                         "Identity", "Identity", "ReLU"]


# ---------------------------------------------------------------------------- the linear head
def test_our_networks_declare_their_head():
    from metantk_plugin.spaces.darts_fewshot import build_eval_network
    from metantk_plugin.spaces.nasbench201 import build_network

    networks = [Conv4(in_channels=3, hidden=4), build_network(0, C=4, N=1, num_classes=3),
                build_eval_network("metantk-nas/mini-5cell-1", num_classes=3, input_size=16, C=4, cells=2)]
    for net in networks:
        assert net.head_name == "classifier" and head_name(net) == "classifier"
        features, logits = net(torch.randn(2, 3, 16, 16))
        assert torch.allclose(net.classifier(features), logits)


def test_a_declared_head_wins_over_the_guess():
    assert head_name(DeclaredHead()) == "out"
    assert head_name(LogitsNet()) == "fc"  # the guess: the first of the usual names
    with pytest.raises(ValueError, match="declares head_name='body', which names none of its nn.Linear modules "
                                         "\\['fc', 'out'\\]"):
        head_name(type("BadHead", (LogitsNet,), {"head_name": "body"})())


def test_the_guess_for_user_networks():
    named = nn.Sequential()
    named.add_module("conv", nn.Conv2d(1, 2, 1))
    named.add_module("head", nn.Linear(2, 2))
    named.add_module("last", nn.Linear(2, 2))
    assert head_name(named) == "head"
    assert head_name(nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2))) == "2"  # the last nn.Linear
    with pytest.raises(ValueError, match="ANIL needs a linear head"):
        head_name(nn.Sequential(nn.ReLU()))


def test_anil_adapts_the_declared_head():
    torch.manual_seed(0)
    network = use_batch_statistics(DeclaredHead()).double()
    tasks = synthetic_tasks(2, ways=3, shots=2, queries=2, image_size=6, channels=1, seed=1).to(dtype=torch.float64)
    grads, _, _ = meta_gradient(network, tasks, MetaConfig(algorithm="anil", inner_lr=0.3, inner_steps=1,
                                                           strategy="loop"))
    params = dict(network.named_parameters())
    expected = {name: torch.zeros_like(p) for name, p in params.items()}
    for t in range(tasks.n_tasks):
        s_features = functional_call(network, params, (tasks.support_x[t],))[0]
        q_features = functional_call(network, params, (tasks.query_x[t],))[0]
        w, b = params["out.weight"], params["out.bias"]
        gw, gb = torch.autograd.grad(F.cross_entropy(F.linear(s_features, w, b), tasks.support_y[t]), (w, b),
                                     create_graph=True)
        loss = F.cross_entropy(F.linear(q_features, w - 0.3 * gw, b - 0.3 * gb), tasks.query_y[t])
        for name, grad in zip(params, torch.autograd.grad(loss, list(params.values()))):
            expected[name] += grad / tasks.n_tasks
    for name in expected:
        torch.testing.assert_close(grads[name], expected[name], rtol=1e-7, atol=1e-10)


# ---------------------------------------------------------------------------- deprecated names
def test_the_norms_module_still_imports_and_warns(monkeypatch):
    from metantk_plugin import network_adapter

    monkeypatch.delitem(sys.modules, "metantk_plugin.norms", raising=False)
    with pytest.warns(DeprecationWarning, match="metantk_plugin.norms is deprecated; import "
                                                "metantk_plugin.network_adapter instead"):
        norms = importlib.import_module("metantk_plugin.norms")
    assert norms.group_count is network_adapter.group_count
    assert norms.group_norm_like is network_adapter.group_norm_like
    net = nn.Sequential(nn.BatchNorm2d(4))
    norms.batchnorm_to_groupnorm(net)
    assert isinstance(net[0], nn.GroupNorm) and net[0].num_groups == 4


def test_renamed_constants_still_import_and_warn():
    import metantk_plugin.fewshot.maml as maml
    import metantk_plugin.proxies.metantk as metantk
    from metantk_plugin import fewshot, kernels

    with pytest.warns(DeprecationWarning, match="kernels.split_output is deprecated; use metantk_plugin.network_"):
        assert kernels.split_output is split_output
    with pytest.warns(DeprecationWarning, match="fewshot.ALGORITHMS is deprecated; use metantk_plugin.fewshot.META_"):
        assert fewshot.ALGORITHMS is maml.META_LEARNING_ALGORITHMS == ("maml", "fomaml", "anil")
    with pytest.warns(DeprecationWarning, match="maml.ALGORITHMS is deprecated; use metantk_plugin.fewshot.maml.META_"):
        assert maml.ALGORITHMS is maml.META_LEARNING_ALGORITHMS
    with pytest.warns(DeprecationWarning, match="metantk.ALGORITHMS is deprecated; use metantk_plugin.proxies.metantk"):
        assert metantk.ALGORITHMS is metantk.METANTK_ALGORITHMS == ("maml", "anil")
    with pytest.raises(AttributeError, match="module 'metantk_plugin.kernels' has no attribute 'nothing'"):
        kernels.nothing  # noqa: B018
