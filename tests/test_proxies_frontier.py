"""The 2023–24 proxies (ZiCo, MeCo, SWAP, GradSign, AZ-NAS): naive references, the choices
where the official code departs from the paper, both search spaces, and clear refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.nn import functional as F

from metantk_plugin.proxies import compute_proxy, get_proxy, resolve_proxy
from metantk_plugin.proxies.az_nas import AZ_COMPONENTS, feature_entropy
from metantk_plugin.proxies.swap import NB201_MU, NB201_SIGMA
from metantk_plugin.spaces.darts_fewshot import build_eval_network
from metantk_plugin.spaces.nasbench201 import build_network
from metantk_plugin.tasks import TaskBatch, synthetic_tasks

NEW = ("zico", "meco", "meco_opt", "swap", "swap_reg", "gradsign", *AZ_COMPONENTS)
ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_3x3~1|skip_connect~2|"


@pytest.fixture(scope="module")
def tasks() -> TaskBatch:
    return synthetic_tasks(n_tasks=2, ways=3, shots=2, queries=2, image_size=8, channels=3, seed=5)


def _network(space: str) -> nn.Module:
    if space == "nb201":
        return build_network(ARCH, C=4, N=1, num_classes=3, seed=11).train()
    torch.manual_seed(11)
    return build_eval_network("metantk-nas/mini-5cell-3", 3, C=4, cells=3, input_size=8).train()


class Mlp(nn.Module):
    """Flatten -> Linear -> ReLU -> Linear, returning (features, logits)."""

    def __init__(self, d_in: int, hidden: int = 5, classes: int = 3):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d_in, hidden), nn.Linear(hidden, classes)

    def forward(self, x):
        h = torch.relu(self.fc1(x.flatten(1)))
        return h, self.fc2(h)


def test_signs_and_summaries():
    for name in NEW:
        proxy = get_proxy(name)
        assert proxy.higher_is_better and proxy.summary, name
    assert not get_proxy("az_complexity").uses_data
    az = resolve_proxy("az_nas")
    assert (az.kind, az.inputs, az.higher_is_better) == ("population", AZ_COMPONENTS, True)


@pytest.mark.parametrize("space", ["nb201", "darts"])
@pytest.mark.parametrize("name", NEW)
def test_finite_deterministic_and_the_network_untouched(name, space, tasks):
    net = _network(space)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    first = compute_proxy(name, net, tasks, seed=3)
    assert math.isfinite(first) and first == compute_proxy(name, net, tasks, seed=3)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items()), "weights or buffers changed"
    assert all(p.grad is None and p.requires_grad for p in net.parameters()) and net.training


@pytest.mark.parametrize("op", ["none", "skip_connect"])
def test_degenerate_nb201_cells_get_a_number(op, tasks):
    net = build_network(f"|{op}~0|+|{op}~0|{op}~1|+|{op}~0|{op}~1|{op}~2|", C=4, N=1, num_classes=3, seed=1).train()
    for name in NEW:
        assert not math.isnan(compute_proxy(name, net, tasks)), name
    if op == "none":  # no gradient reaches a weight, and every block after the stem outputs zeros
        assert compute_proxy("zico", net, tasks) == -math.inf
        assert compute_proxy("az_trainability", net, tasks) == pytest.approx(-1e6 + 2)


def test_networks_they_cannot_handle_are_refused(tasks):
    mlp = Mlp(3 * 8 * 8)
    with pytest.raises(ValueError, match="MeCo needs convolutional feature maps"):
        compute_proxy("meco", mlp, tasks)
    with pytest.raises(ValueError, match="MeCo needs convolutional feature maps"):
        compute_proxy("meco_opt", mlp, tasks)
    with pytest.raises(ValueError, match="SWAP needs ReLU feature maps, but no nn.ReLU module"):
        compute_proxy("swap", nn.Sequential(nn.Flatten(), nn.Linear(192, 4), nn.ReLU(), nn.Linear(4, 3)), tasks)
    with pytest.raises(ValueError, match="SWAP needs ReLU feature maps, but the network has no nn.ReLU"):
        compute_proxy("swap_reg", nn.Sequential(nn.Conv2d(3, 2, 1)), tasks)
    for name in AZ_COMPONENTS[:3]:
        with pytest.raises(ValueError, match="AZ-NAS needs the network's blocks: a `stem` module"):
            compute_proxy(name, mlp, tasks)
    with pytest.raises(ValueError, match="zico needs 2 <= batches <= 24"):
        compute_proxy("zico", mlp, tasks, batches=1)
    with pytest.raises(ValueError, match="meco_opt needs channels >= 2"):
        compute_proxy("meco_opt", _network("nb201"), tasks, channels=1)


# ---------------------------------------------------------------------- ZiCo
def _hand_gradients(net: Mlp, x: torch.Tensor, y: torch.Tensor) -> list[np.ndarray]:
    """∂(mean cross-entropy)/∂(W1, W2) of the 2-layer MLP, written out by hand."""
    w1, b1 = net.fc1.weight.detach().double().numpy(), net.fc1.bias.detach().double().numpy()
    w2, b2 = net.fc2.weight.detach().double().numpy(), net.fc2.bias.detach().double().numpy()
    xs = x.flatten(1).double().numpy()
    pre = xs @ w1.T + b1
    h = np.maximum(pre, 0)
    logits = h @ w2.T + b2
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    d_logits = (p - np.eye(logits.shape[1])[y.numpy()]) / len(xs)
    d_pre = (d_logits @ w2) * (pre > 0)
    return [d_pre.T @ xs, d_logits.T @ h]


def _zico_formula(per_batch: list[list[np.ndarray]]) -> float:
    total = 0.0
    for layer in zip(*per_batch):
        g = np.stack(layer)
        std = g.std(0)
        total += math.log((np.abs(g).mean(0)[std > 0] / std[std > 0]).sum())
    return total


def test_zico_matches_a_hand_computation_with_gradients_per_batch(tasks):
    torch.manual_seed(0)
    net = Mlp(3 * 8 * 8).double()
    x, y = tasks.inputs().double(), tasks.labels()
    per_batch = [_hand_gradients(net, x[b::3], y[b::3]) for b in range(3)]
    value = compute_proxy("zico", net, tasks, batches=3)
    assert value == pytest.approx(_zico_formula(per_batch), rel=1e-9)
    # the choice: fresh gradients per batch, not the official running sums (never zeroed)
    running = [[sum(per_batch[j][k] for j in range(b + 1)) for k in range(2)] for b in range(3)]
    assert abs(value - _zico_formula(running)) > 1e-3


# ---------------------------------------------------------------------- MeCo
def test_meco_is_the_smallest_correlation_eigenvalue_of_a_one_layer_net(tasks):
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1)).double()
    with torch.no_grad():
        fmap = net[0](tasks.inputs()[:1].double())[0].reshape(5, -1).numpy()
    expected = np.linalg.eigvalsh(np.corrcoef(fmap)).min()
    assert compute_proxy("meco", net, tasks) == pytest.approx(expected, abs=1e-10)
    assert compute_proxy("meco_opt", net, tasks, channels=5) == pytest.approx(expected, abs=1e-10)


def test_meco_opt_samples_channels_from_the_seed(tasks):
    net = build_network(ARCH, C=8, N=1, num_classes=3, seed=11).train()  # 16 channels on 4x4 maps: 8 sampled
    a, b = (compute_proxy("meco_opt", net, tasks, seed=s) for s in (0, 1))
    assert a != b and a == compute_proxy("meco_opt", net, tasks, seed=0)
    assert compute_proxy("meco_opt", net, tasks, channels=32) == pytest.approx(compute_proxy("meco", net, tasks))


def test_meco_counts_each_layer_once_and_a_constant_map_as_zero(tasks):
    torch.manual_seed(2)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    single = compute_proxy("meco", nn.Sequential(conv), tasks)
    nested = compute_proxy("meco", nn.Sequential(nn.Sequential(conv)), tasks)  # containers are not layers
    assert nested == pytest.approx(single)
    with torch.no_grad():
        conv.weight.zero_()
    assert compute_proxy("meco", nn.Sequential(conv), tasks) == 0.0  # every correlation undefined, set to 0


# ---------------------------------------------------------------------- SWAP
class ConvRelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.relu, self.fc = nn.Conv2d(3, 3, 3, padding=1), nn.ReLU(), nn.Linear(3, 3)

    def forward(self, x):
        h = self.relu(self.conv(x))
        return h.mean((2, 3)), self.fc(h.mean((2, 3)))


def _brute_force_patterns(net: ConvRelu, x: torch.Tensor) -> int:
    with torch.no_grad():
        a = torch.relu(net.conv(x)).flatten(1)
    return len({tuple(bool(a[i, j] > 0) for i in range(a.shape[0])) for j in range(a.shape[1])})


def test_swap_counts_distinct_neuron_patterns_by_brute_force(tasks):
    torch.manual_seed(3)
    net = ConvRelu()
    assert compute_proxy("swap", net, tasks) == _brute_force_patterns(net, tasks.inputs())
    many = synthetic_tasks(n_tasks=4, ways=4, shots=2, queries=2, image_size=4, channels=3, seed=1)  # 64 > 62 images
    assert compute_proxy("swap", net, many) == _brute_force_patterns(net, many.inputs())
    # the choice: reinits=k averages over k seeded N(0, 1) re-initialisations of the weights
    gen, counts = torch.Generator().manual_seed(4), []
    for _ in range(3):
        copy = ConvRelu()
        copy.load_state_dict(net.state_dict())
        with torch.no_grad():
            for m in (copy.conv, copy.fc):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen, dtype=torch.float64))
        counts.append(_brute_force_patterns(copy, tasks.inputs()))
    assert compute_proxy("swap", net, tasks, seed=4, reinits=3) == pytest.approx(sum(counts) / 3)


def test_swap_regulariser_and_its_nb201_defaults(tasks):
    net = _network("nb201")
    p_k = sum(p.numel() for p in net.parameters()) / 1000
    raw = compute_proxy("swap", net, tasks)
    assert compute_proxy("swap_reg", net, tasks, mu=50.0, sigma=400.0) == pytest.approx(
        raw * math.exp(-((p_k - 50.0) ** 2) / 400.0))
    every = {op: f"|{op}~0|+|{op}~0|{op}~1|+|{op}~0|{op}~1|{op}~2|" for op in ("nor_conv_3x3", "none")}
    size = {op: sum(p.numel() for p in build_network(a, C=16, N=5, num_classes=5).parameters()) / 1000
            for op, a in every.items()}
    assert abs(size["nor_conv_3x3"] - NB201_MU) < 0.1
    assert math.exp(-((size["none"] - NB201_MU) ** 2) / NB201_SIGMA) == pytest.approx(math.exp(-1), rel=1e-3)


# ---------------------------------------------------------------------- GradSign
def test_gradsign_matches_per_sample_gradients_from_vmap(tasks):
    torch.manual_seed(5)
    net = Mlp(3 * 8 * 8).double()
    params = {k: v.detach() for k, v in net.named_parameters()}

    def loss(p, x, y):
        return F.cross_entropy(functional_call(net, p, (x[None],))[1], y[None])

    per_sample = vmap(grad(loss), in_dims=(None, 0, 0))(params, tasks.inputs().double(), tasks.labels())
    expected = sum(float(per_sample[k].sign().sum(0).abs().sum()) for k in ("fc1.weight", "fc2.weight"))
    assert compute_proxy("gradsign", net, tasks) == expected


# ---------------------------------------------------------------------- AZ-NAS
def test_feature_entropy_of_known_spectra():
    gen = torch.Generator().manual_seed(0)
    white = torch.randn(4000, 2, 1, 1, generator=gen, dtype=torch.float64)
    assert feature_entropy(white) == pytest.approx(math.log(2), abs=1e-3)
    rank_one = white[:, :1].repeat(1, 3, 1, 1)
    assert feature_entropy(rank_one) == pytest.approx(0.0, abs=1e-9)
    assert feature_entropy(torch.ones(5, 3, 2, 2)) == 0.0


class StemAndCells(nn.Module):
    def __init__(self, cells: list[nn.Module]):
        super().__init__()
        self.stem, self.cells, self.fc = nn.Conv2d(3, 4, 3, padding=1), nn.ModuleList(cells), nn.Linear(4, 3)

    def forward(self, x):
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        return x.mean((2, 3)), self.fc(x.mean((2, 3)))


class Triple(nn.Module):
    def forward(self, x):
        return 3 * x


def test_az_components_by_hand_on_a_two_block_net(tasks):
    net = StemAndCells([nn.Identity()])
    assert compute_proxy("az_trainability", net, tasks) == -math.inf  # an identity block
    scaled = StemAndCells([Triple()])  # no weights, so the Kaiming re-initialisation leaves it as it is
    # G_in = 3 G_out, so M = 3 G_outᵀG_out / n: diagonal exactly 3 (Rademacher noise), off-diagonal ~ 3/√n
    value = compute_proxy("az_trainability", scaled, tasks)
    assert -3.4 - 1 / 3.4 + 2 < value < -3.0 - 1 / 3.0 + 2
    assert compute_proxy("az_progressivity", scaled, tasks) == pytest.approx(0.0, abs=1e-9)  # same spectrum
    assert compute_proxy("az_expressivity", scaled, tasks, gaussian=True) != compute_proxy(
        "az_expressivity", scaled, tasks)


def test_az_components_see_the_task_images_unless_gaussian(tasks):
    other = synthetic_tasks(n_tasks=2, ways=3, shots=2, queries=2, image_size=8, channels=3, seed=6)  # same shape
    net = _network("nb201")
    for name in AZ_COMPONENTS[:3]:
        assert compute_proxy(name, net, tasks) != compute_proxy(name, net, other), name
        assert compute_proxy(name, net, tasks, gaussian=True) == compute_proxy(name, net, other, gaussian=True), name


def test_az_nas_sums_log_rank_fractions_with_nan_worst():
    columns = {"az_expressivity": np.array([1.0, 2.0, 3.0]), "az_progressivity": np.array([0.5, np.nan, 0.1]),
               "az_trainability": np.array([-np.inf, -1.0, -2.0]), "az_complexity": np.array([10.0, 10.0, 30.0])}
    ranks = np.array([[1, 2, 3], [3, 1, 2], [1, 3, 2], [1.5, 1.5, 3]])
    expected = np.log(ranks / 3).sum(0)
    np.testing.assert_allclose(resolve_proxy("az_nas").combine(columns), expected)
