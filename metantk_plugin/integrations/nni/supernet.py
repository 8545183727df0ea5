"""An NNI model space seen as a :class:`~metantk_plugin.search.PrunableSpace`.

Spaces whose only choices are operations on edges (every choice is a ``LayerChoice``,
e.g. NNI's ``NasBench201``) map onto the pruning search: one cell type ``'choices'``,
one "edge" per choice label (in the order of ``space.simplify()``), and the union of the
candidate names as operations; a label lacking a name has that operation removed from the
start. Layer choices that share a label (NAS-Bench-201's 15 cells share ``cell/i_j``)
share one row of alphas, so they are pruned together.

Supernets are fresh instances of the space's class, built from its recorded init
arguments, with every ``LayerChoice`` replaced by a mixed operation

    y = Σ_o softmax(α)_o · op_o(x)   over the active o (weight > 0.01, α not removed)

* kernel network: the space as given, BatchNorm -> GroupNorm (see
  :func:`~metantk_plugin.integrations.nni.network.kernel_ready`), returning
  ``(features, logits)`` when it has a ``classifier`` ``nn.Linear``;
* region network: the space rebuilt with ``region_kwargs`` (for NNI's ``NasBench201``
  by default ``stem_out_channels=1, num_modules_per_stack=1``, the thin network of
  TE-NAS), BatchNorm kept (in training mode, as in TE-NAS); the search's one-channel 3x3
  crops are repeated to the stem's input channels and resized (nearest) to
  ``region_image_size`` (default 4: NAS-Bench-201's two stride-2 blocks need an even
  size that halves twice).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from metantk_plugin.integrations.nni._require import require_nni
from metantk_plugin.integrations.nni.network import NORM_MODES, _kernel_view
from metantk_plugin.search.space import REMOVED, PrunableSpace
from metantk_plugin.spaces.mixed_edges import active_operations
from metantk_plugin.task_spec import check_optional_positive_int

_nas_nn = require_nni("nni.nas.nn.pytorch")
_nas_space = require_nni("nni.nas.space")

__all__ = ["CELL_TYPE", "NNIPrunableSpace"]

CELL_TYPE = "choices"
_THIN_DEFAULTS = {
    "nni.nas.hub.pytorch.nasbench201.NasBench201": {"stem_out_channels": 1, "num_modules_per_stack": 1},
}


class NNIPrunableSpace(PrunableSpace):
    """``model_space``: an NNI ``ModelSpace`` or the ``ExecutableModelSpace`` a strategy
    receives ('simplified' or 'raw' format). ``exclude_ops``: operation names removed from
    the start (e.g. ``('none',)``). ``norm``: 'group' or 'none' for the kernel network."""

    cell_types = (CELL_TYPE,)

    def __init__(
        self,
        model_space: Any,
        *,
        exclude_ops: Sequence[str] = (),
        norm: str = "group",
        region_kwargs: dict[str, Any] | None = None,
        region_image_size: int | None = 4,
    ):
        if norm not in NORM_MODES or norm == "eval":
            raise ValueError(f"norm must be 'group' or 'none' for a supernet, got {norm!r}")
        check_optional_positive_int("region_image_size", region_image_size)
        self._traced = _traced_space(model_space)
        self.norm = norm
        self.region_image_size = region_image_size
        symbol = self._traced.trace_symbol
        qualname = f"{symbol.__module__}.{symbol.__qualname__}"
        self.name = f"NNI {symbol.__qualname__}"
        self.region_kwargs = dict(_THIN_DEFAULTS.get(qualname, {}) if region_kwargs is None else region_kwargs)
        self.labels, self._values = _layer_choices(self._build({}))
        names: list[str] = []
        for values in self._values:
            names.extend(str(v) for v in values if str(v) not in names)
        self.op_names = tuple(names)
        self.n_edges = len(self.labels)
        unknown = [op for op in exclude_ops if op not in self.op_names]
        if unknown:
            raise ValueError(f"exclude_ops names {unknown}, which no choice offers; operations: {self.op_names}")
        self.exclude_ops = tuple(exclude_ops)
        for label, values in zip(self.labels, self._values):
            if all(str(v) in self.exclude_ops for v in values):
                raise ValueError(f"exclude_ops {self.exclude_ops} removes every operation of choice {label!r}")

    # ------------------------------------------------------------------ PrunableSpace
    def initial_alphas(self) -> dict[str, torch.Tensor]:
        alpha = torch.full((self.n_edges, len(self.op_names)), REMOVED)
        for edge, values in enumerate(self._values):
            for v in values:
                if str(v) not in self.exclude_ops:
                    alpha[edge, self.op_names.index(str(v))] = 0.0
        return {CELL_TYPE: alpha}

    def kernel_network(self, alphas: dict[str, torch.Tensor]) -> nn.Module:
        return _kernel_view(self._supernet({}, alphas), self.norm)

    def region_network(self, alphas: dict[str, torch.Tensor]) -> nn.Module:
        net = self._supernet(self.region_kwargs, alphas)
        convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
        if not convs:
            raise ValueError(f"{self.name} has no Conv2d, so it cannot take image crops for region counting")
        return _RegionInput(net, convs[0].in_channels, self.region_image_size)

    def apply_alphas(self, network: nn.Module, alphas: dict[str, torch.Tensor]) -> None:
        alpha = alphas[CELL_TYPE]
        for module in network.modules():
            if isinstance(module, _MixedChoice):
                module.set_alpha(alpha[module.edge])

    def describe(self, alphas: dict[str, torch.Tensor]) -> dict[str, Any]:
        """``{'sample': {label: chosen value}}``, the NNI sample of the strongest active
        operation of every choice."""
        alpha = alphas[CELL_TYPE]
        active = active_operations(alpha)
        sample = {}
        for edge, (label, values) in enumerate(zip(self.labels, self._values)):
            choices = [v for v in values if self.op_names.index(str(v)) in active[edge]]
            if not choices:
                raise ValueError(f"choice {label!r} has no active operation left")
            sample[label] = max(choices, key=lambda v: float(alpha[edge, self.op_names.index(str(v))]))
        return {"sample": sample}

    # ------------------------------------------------------------------ helpers
    def _build(self, overrides: dict[str, Any]) -> nn.Module:
        kwargs = {**self._traced.trace_kwargs, **overrides}
        return self._traced.trace_symbol(*self._traced.trace_args, **kwargs)

    def _supernet(self, overrides: dict[str, Any], alphas: dict[str, torch.Tensor]) -> nn.Module:
        net = self._build(overrides)
        labels, _ = _layer_choices(net)
        if labels != self.labels:
            raise ValueError(f"{self.name} built with {overrides} has choices {labels}, expected {self.labels}")
        for parent in list(net.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, _nas_nn.LayerChoice):
                    parent._modules[name] = _MixedChoice(child, self.labels.index(child.label), self.op_names)
        self.apply_alphas(net, alphas)
        return net


class _MixedChoice(nn.Module):
    """The candidates of one LayerChoice mixed by the softmax of one alpha row."""

    def __init__(self, choice: nn.Module, edge: int, op_names: tuple[str, ...]):
        super().__init__()
        self.edge = edge
        self.ops = nn.ModuleDict({str(name): choice[name] for name in choice.names})
        self._columns = [op_names.index(str(name)) for name in choice.names]
        self._weights: list[float] = [1.0 / len(self._columns)] * len(self._columns)

    def set_alpha(self, alpha: torch.Tensor) -> None:
        row = alpha.detach().float().cpu()
        weights = torch.softmax(row, dim=0)
        active = active_operations(row.unsqueeze(0))[0]
        self._weights = [float(weights[c]) if c in active else 0.0 for c in self._columns]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = None
        for weight, op in zip(self._weights, self.ops.values()):
            if weight > 0:
                y = weight * op(x)
                out = y if out is None else out + y
        if out is None:  # every operation removed: the edge carries zeros
            out = 0.0 * next(iter(self.ops.values()))(x)
        return out


class _RegionInput(nn.Module):
    """``[N, 1, h, w]`` crops -> ``[N, channels, size, size]`` (channel repeat, nearest resize)."""

    def __init__(self, network: nn.Module, channels: int, size: int | None):
        super().__init__()
        self.network = network
        self.channels = channels
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1 and self.channels != 1:
            x = x.expand(-1, self.channels, -1, -1)
        if self.size is not None and tuple(x.shape[-2:]) != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="nearest")
        return self.network(x)


def _traced_space(model_space: Any) -> Any:
    """The traced NNI ``ModelSpace`` behind ``model_space``."""
    if isinstance(model_space, _nas_space.SimplifiedModelSpace):
        traced = model_space.model
    elif isinstance(model_space, _nas_space.RawFormatModelSpace):
        traced = model_space.model_space
    else:
        traced = model_space
    if not all(hasattr(traced, a) for a in ("trace_symbol", "trace_args", "trace_kwargs")):
        raise ValueError(
            "the pruning search needs an NNI ModelSpace (or a 'simplified'/'raw' ExecutableModelSpace) whose "
            f"init arguments NNI recorded; got {type(model_space).__name__}"
        )
    return traced


def _layer_choices(space: nn.Module) -> tuple[list[str], list[list]]:
    """Labels (in ``simplify()`` order) and candidate names of the space's LayerChoices;
    a ValueError when the space has any other kind of choice."""
    names: dict[str, list] = {}
    for module in space.modules():
        if isinstance(module, _nas_nn.LayerChoice):
            known = names.setdefault(module.label, list(module.names))
            if known != list(module.names):
                raise ValueError(f"layer choices labelled {module.label!r} offer different candidates")
    simplified = space.simplify() if hasattr(space, "simplify") else {}
    others = [label for label in simplified if label not in names]
    if others:
        raise ValueError(
            "the pruning search handles spaces whose only choices are operations (LayerChoice) on edges; "
            f"this space also has the choices {others}"
        )
    if not names:
        raise ValueError("the space has no LayerChoice, so there are no operations to prune")
    labels = [label for label in simplified if label in names] or list(names)
    return labels, [names[label] for label in labels]
