"""The few-shot DARTS supernet: layout, shapes, the official masking semantics, genotype(),
the linear-region network, and agreement of the NTK backends on it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from metantk_plugin.kernels import empirical_ntk
from metantk_plugin.spaces.darts_fewshot import (
    INF_ALPHA,
    OP_NAMES,
    PRESETS,
    DartsFewshotSupernet,
    Genotype,
    active_operations,
    edge_groups,
    edge_keys,
    initial_alphas,
    linear_region_supernet,
)

NONE = OP_NAMES.index("none")


def alphas_for(genotype: Genotype) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits that leave exactly the genotype's operations (everything else at -1000)."""
    out = []
    for cell in (genotype.normal, genotype.reduce):
        alpha = torch.full((9, len(OP_NAMES)), -INF_ALPHA)
        for (start, _), node in zip(edge_groups(3), cell):
            for op, src in node:
                alpha[start + src, OP_NAMES.index(op)] = 0.0
        out.append(alpha)
    return out[0], out[1]


def test_edge_keys_and_groups_follow_the_official_order():
    assert edge_keys(3) == ["0<-0", "0<-1", "1<-0", "1<-1", "1<-2", "2<-0", "2<-1", "2<-2", "2<-3"]
    assert edge_groups(3) == [(0, 2), (2, 5), (5, 9)]
    assert edge_groups(4)[-1] == (9, 14)
    alpha = initial_alphas()
    assert alpha.shape == (9, 8) and (alpha[:, NONE] == -INF_ALPHA).all() and (alpha[:, 1:] == 0).all()
    assert active_operations(alpha) == [list(range(1, 8))] * 9


@pytest.mark.parametrize(
    ("cells", "reductions", "channels"), [(5, [1, 3], [4, 8, 8, 16, 16]), (8, [2, 5], [4, 4, 8, 8, 8, 16, 16, 16])]
)
def test_layout_and_forward_shapes(cells, reductions, channels):
    torch.manual_seed(0)
    net = DartsFewshotSupernet(C=4, cells=cells, num_classes=7)
    assert [i for i, c in enumerate(net.cells) if c.reduction] == reductions
    assert [c.channels for c in net.cells] == channels
    features, logits = net(torch.randn(3, 3, 9, 9))
    assert features.shape == (3, 3 * 16) and logits.shape == (3, 7)
    assert net.feature_dim == 48
    assert not any("alpha" in name for name, _ in net.named_parameters())
    assert {"alpha_normal", "alpha_reduce"} <= {name for name, _ in net.named_buffers()}


def test_official_width_gives_576_features_and_group_norm16():
    net = DartsFewshotSupernet(C=48, cells=5, depth=1)
    assert isinstance(net.stem[1], nn.GroupNorm) and net.stem[1].num_groups == 16
    full = DartsFewshotSupernet(C=16, cells=5, norm="none")
    assert full.feature_dim == 3 * 4 * 16


def test_removing_an_op_reweights_the_rest_and_skips_inactive_ops():
    torch.manual_seed(1)
    c = 4
    net = DartsFewshotSupernet(C=c, cells=5, depth=1, norm="none", num_classes=3).double()
    normal = initial_alphas().double()
    normal[1] = -INF_ALPHA  # edge '0<-1' removed: node 0 = edge '0<-0' alone
    removed = [OP_NAMES.index("skip_connect"), OP_NAMES.index("conv_3x3")]
    normal[0, removed] = -INF_ALPHA
    net.set_alphas(normal, initial_alphas())
    cell, edge = net.cells[0], net.cells[0].edges["0<-0"]
    ran, seen = set(), {}
    hooks = [m.register_forward_hook(lambda mod, i, o, k=k: ran.add(k))
             for k, op in enumerate(edge) for m in op.modules()]
    hooks.append(cell.preprocess0.register_forward_hook(lambda m, i, o: seen.__setitem__("s0", o)))
    hooks.append(cell.register_forward_hook(lambda m, i, o: seen.__setitem__("y", o)))
    net(torch.randn(2, 3, 6, 6, dtype=torch.float64))
    for h in hooks:
        h.remove()
    survivors = [o for o in range(1, 8) if o not in removed]
    assert sorted(ran) == survivors  # 'none' and the removed ops never ran
    weights = torch.softmax(normal[0], 0)
    torch.testing.assert_close(weights[survivors], torch.full((5,), 1 / 5, dtype=torch.float64))
    expected = sum(weights[o] * edge[o](seen["s0"]) for o in survivors)  # each op whole, its own ReLU included
    torch.testing.assert_close(seen["y"][:, :c], expected)


def test_single_op_edge_is_that_op_and_removed_edges_contribute_zero():
    torch.manual_seed(2)
    net = DartsFewshotSupernet(C=4, cells=5, depth=1, norm="none").double()
    normal = initial_alphas().double()
    normal[0:2] = -INF_ALPHA  # node 0: both edges removed
    normal[2:5] = -INF_ALPHA
    normal[2, OP_NAMES.index("avg_pool_3x3BN")] = 0.0  # node 1 = avg pool of s0 only
    net.set_alphas(normal, initial_alphas())
    cell = net.cells[0]
    seen = {}
    cell.register_forward_hook(lambda m, i, o: seen.__setitem__("y", o))
    cell.preprocess0.register_forward_hook(lambda m, i, o: seen.__setitem__("s0", o))
    net(torch.randn(2, 3, 5, 5, dtype=torch.float64))
    assert seen["y"][:, :4].abs().sum() == 0
    torch.testing.assert_close(
        seen["y"][:, 4:8], nn.functional.avg_pool2d(seen["s0"], 3, 1, 1, count_include_pad=False)
    )


def test_alpha_validation():
    net = DartsFewshotSupernet(C=4, cells=2)
    with pytest.raises(ValueError, match=r"shape \(9, 8\)"):
        net.set_alphas(torch.zeros(9, 7), torch.zeros(9, 8))
    with pytest.raises(ValueError, match="finite"):
        net.set_alphas(torch.full((9, 8), float("nan")), torch.zeros(9, 8))
    normal, reduce = net.alphas()
    normal += 5  # a copy: the network is unchanged
    assert (net.alpha_normal[:, 1:] == 0).all()


def test_bad_configuration_is_named():
    with pytest.raises(ValueError, match="cells must be 3N\\+2"):
        DartsFewshotSupernet(C=4, cells=6)
    with pytest.raises(ValueError, match="depth must be an int in 1..5"):
        DartsFewshotSupernet(C=4, cells=5, depth=6)
    with pytest.raises(ValueError, match="24 channels"):
        DartsFewshotSupernet(C=24, cells=2, depth=1)
    with pytest.raises(ValueError, match=r"expected an image batch \[N, 3, H, W\]"):
        DartsFewshotSupernet(C=4, cells=2)(torch.randn(2, 1, 8, 8))


def test_genotype_of_the_initial_supernet_follows_the_official_tie_breaking():
    genotype = DartsFewshotSupernet(C=4, cells=2).genotype()
    # all weights tie: edges from states 0 and 1, the first non-'none' op (skip_connect)
    assert genotype.normal == ((("skip_connect", 0), ("skip_connect", 1)),) * 3
    assert genotype.normal_concat == (2, 3, 4)


@pytest.mark.parametrize("name", ["metantk-nas/mini-5cell-1", "metantk-nas/tiered-5cell-1", "metanas/og-v2"])
def test_genotype_recovers_the_cell_left_by_pruning(name):
    genotype = PRESETS[name].genotype
    net = DartsFewshotSupernet(C=4, cells=2)
    net.set_alphas(*alphas_for(genotype))
    assert net.genotype() == genotype
    # a non-uniform soft alpha: the strongest two edges per node, arg-max op
    normal, reduce = initial_alphas(), initial_alphas()
    normal[0, OP_NAMES.index("conv_3x3")] = 2.0
    normal[1, OP_NAMES.index("dil_conv_3x3")] = 1.0
    normal[2:5, OP_NAMES.index("sep_conv_3x3")] = torch.tensor([0.1, 0.5, 0.3])
    net.set_alphas(normal, reduce)
    assert net.genotype().normal[:2] == (
        (("conv_3x3", 0), ("dil_conv_3x3", 1)),
        (("sep_conv_3x3", 1), ("sep_conv_3x3", 2)),
    )


def test_linear_region_network_is_the_thin_official_one():
    net = linear_region_supernet()
    assert net.stem is None and len(net.cells) == 2
    assert [(c.channels, c.reduction) for c in net.cells] == [(1, False), (2, True)]
    assert any(isinstance(m, nn.BatchNorm2d) and m.training for m in net.modules())
    features, _ = net(torch.randn(50, 1, 3, 3))
    assert features.shape == (50, 6)


def test_gram_ntk_agrees_with_the_loop_reference_on_a_pruned_supernet():
    torch.manual_seed(3)
    net = DartsFewshotSupernet(C=16, cells=5, depth=2, norm="group", num_classes=5).double()
    normal, reduce = initial_alphas().double(), initial_alphas().double()
    normal[3, 2:5] = -INF_ALPHA  # some edges lose ops, one edge is removed
    reduce[6] = -INF_ALPHA
    net.set_alphas(normal, reduce)
    head = nn.Linear(net.feature_dim, 5).double()
    x = torch.randn(6, 3, 8, 8, dtype=torch.float64)
    gram = empirical_ntk(net, x, head=head, backend="gram")
    loop = empirical_ntk(net, x, head=head, backend="loop")
    torch.testing.assert_close(gram.ntk, loop.ntk, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(gram.head_kernel, loop.head_kernel, rtol=1e-9, atol=1e-9)
    assert gram.features.shape == (6, net.feature_dim)
    assert torch.linalg.eigvalsh(gram.ntk).min() > 0
