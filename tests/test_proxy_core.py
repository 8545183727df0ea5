"""TaskBatch, the MetaNTK and TE-NAS proxy objects, and the proxy registry."""

from __future__ import annotations

import importlib
import math
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from metantk_plugin.proxies import (
    MetaNTK,
    available_proxies,
    compute_proxy,
    get_proxy,
    register_population_proxy,
    register_proxy,
)
from metantk_plugin.proxies import registry as registry_module
from metantk_plugin.proxies.te_nas import linear_region_count
from metantk_plugin.tasks import TaskBatch, synthetic_tasks


class Backbone(nn.Module):
    """A GroupNorm conv net returning (features, logits)."""

    def __init__(self, width: int = 8, classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.GroupNorm(2, width), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.classifier = nn.Linear(width, classes)

    def forward(self, x):
        f = self.features(x)
        return f, self.classifier(f)


def test_taskbatch_order_and_validation():
    tasks = synthetic_tasks(n_tasks=2, ways=3, shots=2, queries=1, image_size=4, seed=1)
    assert (tasks.n_tasks, tasks.n_support, tasks.n_query, tasks.shots, tasks.queries) == (2, 6, 3, 2, 1)
    x = tasks.inputs()
    assert torch.equal(x[:3], tasks.query_x[0]) and torch.equal(x[6:12], tasks.support_x[0])
    assert torch.equal(tasks.labels()[:3], tasks.query_y[0])
    sx, sy, qx, qy = tasks.support_x, tasks.support_y, tasks.query_x, tasks.query_y
    with pytest.raises(ValueError, match="support has 2 tasks but query has 1"):
        TaskBatch(sx, sy, qx[:1], qy[:1], 3)
    with pytest.raises(ValueError, match="not a positive multiple of ways=4"):
        TaskBatch(sx, sy, qx, qy, 4)
    with pytest.raises(ValueError, match="labels must be"):
        TaskBatch(sx, sy[:, :5], qx, qy, 3)
    with pytest.raises(ValueError, match=r"values must lie in 0..2"):
        TaskBatch(sx, sy + 1, qx, qy, 3)
    with pytest.raises(ValueError, match="differ in shape"):
        TaskBatch(sx, sy, qx[..., :3], qy, 3)
    with pytest.raises(ValueError, match="integer class labels"):
        TaskBatch(sx, sy.float(), qx, qy, 3)
    with pytest.raises(ValueError, match="shots must be a positive int"):
        synthetic_tasks(shots=0)


def test_metantk_is_deterministic_and_dtype_consistent():
    torch.manual_seed(0)
    net = Backbone()
    tasks = synthetic_tasks(image_size=8, seed=3)
    proxy = MetaNTK(seed=7)
    a, b = proxy.condition_number(net, tasks), proxy.condition_number(net, tasks)
    assert a == b and 1.0 < a < math.inf
    res64 = MetaNTK(seed=7).evaluate(net.double(), tasks.to(dtype=torch.float64))
    assert res64.condition_number == pytest.approx(a, rel=1e-3)
    assert res64.matrix.shape == (15, 15) and torch.all(res64.eigenvalues[1:] >= res64.eigenvalues[:-1])
    assert MetaNTK(seed=8).condition_number(net.double(), tasks.to(dtype=torch.float64)) != res64.condition_number


def test_metantk_maml_and_anil_and_backends():
    torch.manual_seed(1)
    net = Backbone().double()
    tasks = synthetic_tasks(n_tasks=2, ways=5, shots=2, queries=1, image_size=8, seed=4).to(dtype=torch.float64)
    maml = MetaNTK("maml").evaluate(net, tasks)
    anil = MetaNTK("anil").evaluate(net, tasks)
    assert maml.matrix.shape == anil.matrix.shape == (10, 10)
    assert maml.condition_number != pytest.approx(anil.condition_number, rel=1e-3)
    for backend in ("vmap", "loop"):
        other = MetaNTK("maml", backend=backend).evaluate(net, tasks)
        assert other.condition_number == pytest.approx(maml.condition_number, rel=1e-9)


def test_metantk_settings_are_validated():
    with pytest.raises(ValueError, match="algorithm must be one of"):
        MetaNTK("reptile")
    with pytest.raises(ValueError, match="inner_lr_time must be > 0"):
        MetaNTK(inner_lr_time=0)
    with pytest.raises(ValueError, match="reg must be"):
        MetaNTK(reg=-1)
    with pytest.raises(TypeError, match="tasks must be a TaskBatch"):
        MetaNTK().evaluate(Backbone(), torch.zeros(3))


def test_nan_network_gives_inf_with_a_warning_naming_it():
    net = Backbone()
    with torch.no_grad():
        net.features[0].weight.fill_(float("nan"))
    with pytest.warns(RuntimeWarning, match="arch-17"):
        assert MetaNTK().condition_number(net, synthetic_tasks(image_size=8), label="arch-17") == math.inf


def test_linear_region_count_on_a_known_network():
    lin = nn.Linear(1, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        lin.bias.copy_(torch.tensor([0.0, 1.0]))
    net = nn.Sequential(lin, nn.ReLU())
    # kinks at x = 0 and x = 1: regions (-inf, 0), (0, 1), (1, inf)
    x = torch.tensor([[-2.0], [-1.0], [0.5], [0.7], [3.0]])
    assert linear_region_count(net, x) == 3
    assert linear_region_count(net, x[:2]) == 1
    with pytest.raises(ValueError, match="no nn.ReLU"):
        linear_region_count(nn.Linear(1, 1), x)


def test_builtin_proxies_have_declared_signs():
    tasks = synthetic_tasks(image_size=8)
    net = Backbone()
    for name in ("metantk", "metantk_anil", "ntk_cond", "linear_regions"):
        proxy = get_proxy(name)
        value = compute_proxy(name, net, tasks)
        assert math.isfinite(value)
        assert proxy.higher_is_better == (name == "linear_regions")
        better = proxy.oriented(value)
        assert better == (value if proxy.higher_is_better else -math.log(value))
    with pytest.raises(ValueError, match="unknown proxy 'nope'; available: .*metantk"):
        get_proxy("nope")


def test_registry_survives_reimport_and_refuses_conflicts():
    before = available_proxies()
    importlib.reload(importlib.import_module("metantk_plugin.proxies.builtin"))
    assert available_proxies() == before

    def impostor(network, tasks, *, seed=0):
        return 0.0

    with pytest.raises(ValueError, match="already registered by metantk_plugin.proxies.builtin.metantk"):
        register_proxy("metantk", higher_is_better=True)(impostor)
    with pytest.raises(ValueError, match="must be identifiers"):
        register_proxy("bad name", higher_is_better=True)
    with pytest.raises(ValueError, match="'te_nas' is already registered by metantk_plugin.proxies.population"):
        register_population_proxy("te_nas", inputs=("metantk",), higher_is_better=True)(impostor)
    with pytest.raises(ValueError, match="'synflow' is already registered by metantk_plugin.proxies.synflow"):
        register_population_proxy("synflow", inputs=("metantk",), higher_is_better=True)(impostor)


def test_builtins_register_on_import_and_entry_points_load_on_demand():
    code = textwrap.dedent("""
        import metantk_plugin.proxies
        from metantk_plugin.proxies import registry
        print(sorted(registry._REGISTRY), registry._entry_points_loaded)
        registry.get_proxy("synflow"), registry.resolve_proxy("te_nas")
        print(registry._entry_points_loaded)
        try:
            registry.resolve_proxy("nope")
        except ValueError:
            print(registry._entry_points_loaded)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert "'synflow'" in out[0] and "'te_nas'" in out[0] and "'metantk'" in out[0] and out[0].endswith("False")
    assert out[1:3] == ["False", "True"]


def test_the_registry_scores_a_working_copy():
    seen = []

    @register_proxy("zeroing_probe", higher_is_better=True)
    def zeroing_probe(network, tasks, *, seed=0):
        '''Zeroes every weight of the network it is given.'''
        seen.append(network)
        with torch.no_grad():
            for p in network.parameters():
                p.zero_()
        assert all(p.requires_grad and p.grad is None for p in network.parameters())
        return 1.0

    net = Backbone()
    net.classifier.weight.requires_grad_(False)
    net.classifier.bias.grad = torch.ones_like(net.classifier.bias)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    try:
        assert compute_proxy("zeroing_probe", net, synthetic_tasks(image_size=8)) == 1.0
    finally:
        registry_module._REGISTRY.pop("zeroing_probe", None)
    assert seen[0] is not net and all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())
    assert not net.classifier.weight.requires_grad and torch.equal(net.classifier.bias.grad, torch.ones(10))
    batchnorm = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(144, 5))
    with pytest.raises(ValueError, match="BatchNorm2d in training mode"):
        compute_proxy("metantk", batchnorm, synthetic_tasks(image_size=8))
    assert batchnorm[1].num_batches_tracked == 0 and torch.equal(batchnorm[1].running_mean, torch.zeros(4))


def test_plugins_are_discovered_through_entry_points(tmp_path, monkeypatch):
    (tmp_path / "my_proxy_plugin.py").write_text(textwrap.dedent("""
        from metantk_plugin.proxies import register_proxy

        @register_proxy("param_count_plugin", higher_is_better=True, uses_data=False)
        def param_count_plugin(network, tasks, *, seed=0):
            '''Number of parameters.'''
            return float(sum(p.numel() for p in network.parameters()))
    """))
    dist = tmp_path / "my_proxy_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-proxy-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[metantk_plugin.proxies]\nparams = my_proxy_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry_module, "_entry_points_loaded", False)
    try:
        assert "param_count_plugin" in available_proxies()
        proxy = get_proxy("param_count_plugin")
        assert proxy.summary == "Number of parameters." and not proxy.uses_data
        assert compute_proxy("param_count_plugin", nn.Linear(3, 2), synthetic_tasks(image_size=2)) == 8.0
    finally:
        registry_module._REGISTRY.pop("param_count_plugin", None)
        sys.modules.pop("my_proxy_plugin", None)
