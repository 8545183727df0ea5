"""NASLib's NAS-Bench-201 search space graph (``search_spaces/nasbench201/graph.py`` and
the primitives it uses), reduced to what a zero-cost measure sees of it.

NASLib's graph is a networkx DiGraph whose edges carry the operations; they become
registered sub-modules only when ``parse()`` runs. This stand-in keeps the operations in
plain dicts until ``parse()`` for the same effect, and computes the same function: a
chain of macro edges (stem, 3 x 5 cells with a ResNet block between stages, head), and
in each cell node j = sum over i < j of op_ij(node i), output node 4.
"""

from __future__ import annotations

import copy

from torch import nn
from torch.nn import functional as F

OP_NAMES = ["Identity", "Zero", "ReLUConvBN3x3", "ReLUConvBN1x1", "AvgPool1x1"]
EDGE_LIST = ((1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4))
NUM_EDGES = 6
NUM_OPS = 5


class Identity(nn.Module):
    def forward(self, x, edge_data=None):
        return x


class Zero(nn.Module):
    def __init__(self, stride):
        super().__init__()
        self.stride = stride

    def forward(self, x, edge_data=None):
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class ReLUConvBN(nn.Module):
    def __init__(self, C_in, C_out, kernel_size, stride=1, affine=True, track_running_stats=True):
        super().__init__()
        self.init_params = {"C_in": C_in, "C_out": C_out, "kernel_size": kernel_size, "stride": stride,
                            "affine": affine, "track_running_stats": track_running_stats}
        pad = 0 if kernel_size == 1 else 1
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=pad, bias=False),
            nn.BatchNorm2d(C_out, affine=affine, track_running_stats=track_running_stats),
        )

    def forward(self, x, edge_data=None):
        return self.op(x)


class AvgPool1x1(nn.Module):
    def __init__(self, kernel_size, stride, affine=True):
        super().__init__()
        self.avgpool = nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)

    def forward(self, x, edge_data=None):
        return self.avgpool(x)


class Stem(nn.Module):
    def __init__(self, C_in=3, C_out=64):
        super().__init__()
        self.seq = nn.Sequential(nn.Conv2d(C_in, C_out, 3, padding=1, bias=False), nn.BatchNorm2d(C_out))

    def forward(self, x, edge_data=None):
        return self.seq(x)


class ResNetBasicblock(nn.Module):
    def __init__(self, C_in, C_out, stride):
        super().__init__()
        self.conv_a = ReLUConvBN(C_in, C_out, 3, stride)
        self.conv_b = ReLUConvBN(C_out, C_out, 3)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(C_in, C_out, kernel_size=1, stride=1, padding=0, bias=False),
        )

    def forward(self, x, edge_data=None):
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class Head(nn.Module):
    def __init__(self, C, n_classes):
        super().__init__()
        self.op = nn.Sequential(
            nn.BatchNorm2d(C), nn.ReLU(inplace=False), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(C, n_classes)
        )

    def forward(self, x, edge_data=None):
        return self.op(x)


def _candidate_ops(C):
    """The five primitives every cell edge starts with (BatchNorm without affine or stats)."""
    return [
        Identity(),
        Zero(stride=1),
        ReLUConvBN(C, C, kernel_size=3, affine=False, track_running_stats=False),
        ReLUConvBN(C, C, kernel_size=1, affine=False, track_running_stats=False),
        AvgPool1x1(kernel_size=3, stride=1, affine=False),
    ]


def _with_affine_batchnorm(op):
    """NASLib's ``update_batchnorms``: rebuild an op holding BatchNorm as affine, with running stats."""
    if not isinstance(op, ReLUConvBN):
        return op
    params = dict(op.init_params, affine=True, track_running_stats=True)
    return ReLUConvBN(**params)


class Cell(nn.Module):
    def __init__(self, C):
        super().__init__()
        self.edge_ops = {edge: _candidate_ops(C) for edge in EDGE_LIST}

    def choose(self, op_indices):
        for edge, index in zip(EDGE_LIST, op_indices):
            self.edge_ops[edge] = _with_affine_batchnorm(self.edge_ops[edge][index])

    def parse(self):
        for (i, j), op in self.edge_ops.items():
            if isinstance(op, nn.Module):
                self.add_module(f"edge({i},{j})", op)

    def forward(self, x, edge_data=None):
        nodes = {1: x}
        for j in (2, 3, 4):
            nodes[j] = sum(_chosen(self.edge_ops[(i, j)])(nodes[i], None) for i in range(1, j))
        return nodes[4]


def _chosen(op):
    """An edge's operation; before ``set_spec`` the edge still holds the list of candidates,
    which NASLib's graph refuses with this ValueError."""
    if not isinstance(op, nn.Module):
        raise ValueError(f"Unknown class as op: {op}. Expected either Graph or AbstactPrimitive")
    return op


class NasBench201SearchSpace(nn.Module):
    """The NAS-Bench-201 macro graph with NASLib's op numbering and ``set_spec`` rules."""

    OPTIMIZER_SCOPE = ["stage_1", "stage_2", "stage_3"]
    QUERYABLE = True

    def __init__(self, n_classes=10, in_channels=3):
        super().__init__()
        self.num_classes = n_classes
        self.op_indices = None
        self.max_epoch = 199
        self.in_channels = in_channels
        self.space_name = "nasbench201"
        self.instantiate_model = True
        self.channels = [16, 32, 64]
        ops = [Stem(C_in=in_channels, C_out=self.channels[0])]
        for stage, c in enumerate(self.channels):
            if stage:
                ops.append(ResNetBasicblock(self.channels[stage - 1], c, stride=2))
            ops.extend(Cell(c) for _ in range(5))
        ops.append(Head(self.channels[-1], n_classes))
        self.macro_edges = {(i, i + 1): op for i, op in enumerate(ops, start=1)}

    def set_op_indices(self, op_indices):
        if self.instantiate_model:
            assert self.op_indices is None, (
                f"An architecture has already been assigned to this instance of {self.__class__.__name__}. "
                "Instantiate a new instance to be able to sample a new model or set a new architecture."
            )
            for op in self.macro_edges.values():
                if isinstance(op, Cell):
                    op.choose(op_indices)
        self.op_indices = op_indices

    def set_spec(self, op_indices, dataset_api=None):
        self.set_op_indices(op_indices)

    def get_op_indices(self):
        return self.op_indices

    def get_hash(self):
        return tuple(self.get_op_indices())

    def parse(self):
        for (i, j), op in self.macro_edges.items():
            if isinstance(op, Cell):
                op.parse()
            self.add_module(f"edge({i},{j})", op)

    def clone(self):
        return copy.deepcopy(self)

    def forward(self, x, *args):
        for op in self.macro_edges.values():
            x = op(x, None)
        return x

    def forward_before_global_avg_pool(self, x):
        outputs = []
        pools = [m for m in self.modules() if isinstance(m, nn.AdaptiveAvgPool2d)]
        handles = [m.register_forward_hook(lambda module, inputs, output: outputs.append(inputs[0])) for m in pools]
        try:
            self.forward(x, None)
        finally:
            for handle in handles:
                handle.remove()
        assert len(outputs) == 1
        return outputs[0]

    def get_type(self):
        return "nasbench201"

    def get_loss_fn(self):
        return F.cross_entropy

