"""The evaluation network built from a genotype, the presets and their parameter counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from metantk_plugin.spaces.darts_fewshot import (
    PRESETS,
    DartsEvalNetwork,
    DropPath,
    available_presets,
    build_eval_network,
    count_parameters,
    get_preset,
)

# The reference table (metantk-nas-reference.md, C.4): millions of parameters of the
# evaluation network at C = 48 with 64 (mini) or 351 (tiered) classes, as count_params prints.
REFERENCE_MILLIONS = {
    "metantk-nas/mini-5cell-1": 1.761,
    "metantk-nas/mini-5cell-2": 2.222,
    "metantk-nas/mini-5cell-3": 1.344,
    "metantk-nas/mini-8cell-1": 3.181,
    "metantk-nas/mini-8cell-2": 2.967,
    "metantk-nas/mini-8cell-3": 3.489,
    "metantk-nas/tiered-5cell-1": 2.186,
    "metantk-nas/tiered-5cell-2": 1.820,
    "metantk-nas/tiered-5cell-3": 2.665,
    "metantk-nas/tiered-8cell-1": 5.940,
    "metantk-nas/tiered-8cell-2": 3.138,
    "metantk-nas/tiered-8cell-3": 5.231,
}


@pytest.mark.parametrize("name", sorted(REFERENCE_MILLIONS))
def test_preset_parameter_counts_match_the_reference_table(name):
    preset = get_preset(name)
    classes = 64 if "mini" in name else 351
    assert preset.num_classes == classes and preset.cells == (8 if "8cell" in name else 5)
    net = build_eval_network(name, classes)
    assert len(net.cells) == preset.cells and net.feature_dim == 576
    count = count_parameters(net)
    assert round(count / 1e6, 3) == REFERENCE_MILLIONS[name] == preset.reference_params
    assert count_parameters(net, dummy_alphas=False) == count - 20


def test_twelve_official_presets_and_three_metanas_ones():
    names = available_presets()
    assert [n for n in names if n.startswith("metantk-nas/")] == list(REFERENCE_MILLIONS)
    assert [n for n in names if n.startswith("metanas/")] == ["metanas/v1", "metanas/in-v2", "metanas/og-v2"]
    with pytest.raises(ValueError, match="Did you mean metantk-nas/mini-5cell-1"):
        get_preset("metantk-nas/mini-5cel-1")


def test_structure_reductions_head_and_forward():
    net = build_eval_network("metantk-nas/mini-8cell-1", 64, C=8)
    assert [i for i, c in enumerate(net.cells) if c.reduction] == [2, 5]
    assert isinstance(net.stem[0], nn.Conv2d) and net.stem[0].out_channels == 8
    assert not any(isinstance(m, nn.ReLU) for m in list(net.children())[-2:])  # pooling -> Linear, no final BN+ReLU
    features, logits = net(torch.randn(2, 3, 84, 84))
    assert features.shape == (2, 96) and logits.shape == (2, 64)
    assert net.input_size == 84


def test_input_forms_agree():
    preset = PRESETS["metantk-nas/tiered-5cell-2"]
    genotype = preset.genotype
    forms = [genotype, str(genotype), genotype.to_json(), genotype.to_dict(), preset.name]
    counts = {count_parameters(build_eval_network(form, 351, C=8, cells=5)) for form in forms}
    assert len(counts) == 1
    with pytest.raises(ValueError, match="unknown genotype preset 'darts-v2'"):
        build_eval_network("darts-v2", 5)
    with pytest.raises(ValueError, match="expected a Genotype"):
        build_eval_network(42, 5)


def test_drop_path_follows_every_non_identity_op():
    net = build_eval_network("metantk-nas/tiered-8cell-1", 5, C=4, cells=5, drop_path=0.3)
    wrapped, identities = 0, 0
    for cell in net.cells:
        for ops in cell.nodes:
            for op in ops:
                if isinstance(op, nn.Identity):
                    identities += 1
                else:
                    assert isinstance(op, nn.Sequential) and isinstance(op[-1], DropPath) and op[-1].p == 0.3
                    wrapped += 1
    assert wrapped + identities == 5 * 6 and wrapped > 0
    with pytest.raises(ValueError, match=r"in \[0, 1\), got 1.0"):
        net.set_drop_path(1.0)


def test_drop_path_masks_whole_samples_and_is_seeded():
    x = torch.ones(200, 2, 3, 3, dtype=torch.float64)
    drop = DropPath(0.25, generator=torch.Generator().manual_seed(0))
    y = drop(x)
    per_sample = y.flatten(1)
    assert set(per_sample[:, 0].tolist()) == {0.0, 1 / 0.75}
    assert (per_sample == per_sample[:, :1]).all()
    assert 0.15 < (per_sample[:, 0] == 0).float().mean() < 0.35
    torch.testing.assert_close(DropPath(0.25, generator=torch.Generator().manual_seed(0))(x), y)
    drop.eval()
    assert drop(x) is x


def test_drop_path_only_acts_in_training():
    torch.manual_seed(0)
    net = build_eval_network("metantk-nas/mini-5cell-3", 5, C=4, input_size=16)
    x = torch.randn(4, 3, 16, 16)
    net.eval()
    reference = net(x)[1]
    net.set_drop_path(0.5, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(net(x)[1], reference)
    net.train()
    first = net(x)[1]
    net.set_drop_path(0.5, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(net(x)[1], first)
    net.set_drop_path(0.0)
    assert not torch.allclose(net(x)[1], first)


def test_group_norm_eval_network_for_kernels():
    net = DartsEvalNetwork(PRESETS["metanas/in-v2"].genotype, 5, C=16, cells=2, norm="group")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    with pytest.raises(ValueError, match="expected an image batch"):
        net(torch.randn(3, 32, 32))
