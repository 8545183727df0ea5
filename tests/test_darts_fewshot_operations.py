"""The 8 few-shot DARTS operations: shapes, parameter counts against hand formulas, structure."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from metantk_plugin.spaces.darts_fewshot import OP_NAMES, build_operation, make_norm
from metantk_plugin.spaces.darts_fewshot.operations import FactorizedReduce, LeadingReLU, canonical_op_name


def expected_parameters(op: str, c: int, stride: int, norm: str) -> int:
    """Hand count: depthwise 3x3 = 9C, pointwise = C², 1x5 or 5x1 = 5C², affine norm = 2C."""
    n = 0 if norm == "none" else 2 * c
    return {
        "none": 0,
        "skip_connect": 0 if stride == 1 else c * c + n,
        "sep_conv_3x3": 2 * (9 * c + c * c + n),
        "dil_conv_3x3": 9 * c + c * c + n,
        "avg_pool_3x3BN": n,
        "max_pool_3x3BN": n,
        "conv_1x5_5x1": 10 * c * c + n,
        "conv_3x3": 9 * c + c * c + n,
    }[op]


@pytest.mark.parametrize("norm", ["batch", "group", "none"])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("op", OP_NAMES)
def test_operation_shape_and_parameter_count(op, stride, norm):
    c = 8
    module = build_operation(op, c, stride, norm)
    assert sum(p.numel() for p in module.parameters()) == expected_parameters(op, c, stride, norm)
    for size in (8, 7):  # even and odd inputs: every op gives (H - 1) // s + 1
        out = module(torch.randn(2, c, size, size + 2))
        assert out.shape == (2, c, (size - 1) // stride + 1, (size + 1) // stride + 1)


def test_only_kernel_friendly_module_types():
    allowed = (nn.Conv2d, nn.BatchNorm2d, nn.GroupNorm, nn.Identity, nn.ReLU, nn.AvgPool2d, nn.MaxPool2d, nn.Sequential)
    for op in OP_NAMES:
        for module in build_operation(op, 4, 2, "group").modules():
            assert isinstance(module, allowed) or type(module).__name__ in {"Zero", "FactorizedReduce"}, (op, module)


def test_structure_matches_the_official_definitions():
    sep = build_operation("sep_conv_3x3", 4, 2, "batch")
    convs = [m for m in sep.modules() if isinstance(m, nn.Conv2d)]
    assert [(m.kernel_size, m.stride, m.groups) for m in convs] == [
        ((3, 3), (2, 2), 4),
        ((1, 1), (1, 1), 1),
        ((3, 3), (1, 1), 4),
        ((1, 1), (1, 1), 1),
    ]
    dil = [m for m in build_operation("dil_conv_3x3", 4, 1, "batch").modules() if isinstance(m, nn.Conv2d)]
    assert (dil[0].dilation, dil[0].padding, dil[0].groups) == ((2, 2), (2, 2), 4)
    conv3 = [m for m in build_operation("conv_3x3", 4, 1, "batch").modules() if isinstance(m, nn.Conv2d)]
    assert [(m.kernel_size, m.groups) for m in conv3] == [((3, 3), 4), ((1, 1), 1)]  # depthwise-separable, not full
    fac = [m for m in build_operation("conv_1x5_5x1", 4, 2, "batch").modules() if isinstance(m, nn.Conv2d)]
    assert [(m.kernel_size, m.stride) for m in fac] == [((1, 5), (2, 2)), ((5, 1), (1, 1))]  # 1x5 first
    avg = build_operation("avg_pool_3x3BN", 4, 1, "batch")[0]
    assert isinstance(avg, nn.AvgPool2d) and avg.count_include_pad is False
    assert isinstance(build_operation("skip_connect", 4, 1, "batch"), nn.Identity)
    assert isinstance(build_operation("skip_connect", 4, 2, "batch"), FactorizedReduce)


def test_factorized_reduce_matches_its_formula():
    torch.manual_seed(0)
    fr = FactorizedReduce(3, 5, "none")
    x = torch.randn(2, 3, 7, 6)
    r = torch.relu(x)
    shifted = F.pad(r, (0, 1, 0, 1))[:, :, 1:, 1:]
    expected = torch.cat([F.conv2d(r, fr.conv_a.weight, stride=2), F.conv2d(shifted, fr.conv_b.weight, stride=2)], 1)
    assert fr.conv_a.out_channels == 2 and fr.conv_b.out_channels == 3
    torch.testing.assert_close(fr(x), expected)


def test_pooling_then_norm_and_zero_values():
    x = torch.randn(2, 4, 6, 6)
    pool = build_operation("max_pool_3x3BN", 4, 1, "none")
    torch.testing.assert_close(pool(x), F.max_pool2d(x, 3, 1, 1))
    assert build_operation("none", 4, 2, "batch")(x).abs().sum() == 0


def test_group_norm_is_groupnorm16_and_refuses_indivisible_channels():
    assert make_norm("group", 48).num_groups == 16
    assert make_norm("group", 8).num_groups == 8
    with pytest.raises(ValueError, match="24 channels"):
        make_norm("group", 24)
    with pytest.raises(ValueError, match="24 channels"):
        build_operation("conv_3x3", 24, 1, "group")


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="sep_conv_9x9"):
        build_operation("sep_conv_9x9", 4, 1)
    with pytest.raises(ValueError, match="stride must be 1 or 2, got 3"):
        build_operation("conv_3x3", 4, 3)
    with pytest.raises(ValueError, match="unknown norm 'layer'"):
        build_operation("conv_3x3", 4, 1, "layer")
    with pytest.raises(ValueError, match="positive int"):
        build_operation("conv_3x3", 0, 1)
    assert canonical_op_name("max_pool_3x3") == "max_pool_3x3BN"
    assert canonical_op_name("avg_pool_3x3") == "avg_pool_3x3BN"


_STARTS_WITH_RELU = {"sep_conv_3x3", "dil_conv_3x3", "conv_1x5_5x1", "conv_3x3"}


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("op", OP_NAMES)
def test_an_operation_that_starts_with_relu_runs_the_same_on_a_rectified_input(op, stride):
    torch.manual_seed(3)
    module = build_operation(op, 6, stride, "group").double()
    x = torch.randn(2, 6, 8, 8, dtype=torch.float64)
    leading = op in _STARTS_WITH_RELU or (op == "skip_connect" and stride == 2)  # FactorizedReduce
    assert isinstance(module, LeadingReLU) == leading
    if leading:
        torch.testing.assert_close(module.after_relu(torch.relu(x)), module(x), rtol=0, atol=0)


@pytest.mark.parametrize("stride", [1, 2])
def test_channels_last_pooling_equals_the_plain_kernels_with_ties(stride):
    x = torch.randint(0, 3, (2, 4, 9, 8)).double().requires_grad_()  # many exact ties
    plain = x.detach().clone().requires_grad_()
    for op, reference in (
        ("max_pool_3x3BN", lambda t: F.max_pool2d(t, 3, stride, 1)),
        ("avg_pool_3x3BN", lambda t: F.avg_pool2d(t, 3, stride, 1, count_include_pad=False)),
    ):
        pool = build_operation(op, 4, stride, "none").double()
        weights = torch.randn(reference(plain).shape, dtype=torch.float64)
        x.grad = plain.grad = None
        out = pool(x)
        assert out.is_contiguous()
        torch.testing.assert_close(out, reference(plain), rtol=0, atol=0)
        (out * weights).sum().backward()
        (reference(plain) * weights).sum().backward()
        torch.testing.assert_close(x.grad, plain.grad, rtol=0, atol=0)
        last = pool(x.detach().contiguous(memory_format=torch.channels_last))  # stays channels-last, no copy back
        assert last.is_contiguous(memory_format=torch.channels_last) and not last.is_contiguous()
        torch.testing.assert_close(last, reference(plain), rtol=0, atol=0)
