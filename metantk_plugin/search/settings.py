"""The settings of a MetaNTK-NAS (or TE-NAS) pruning search (:mod:`metantk_plugin.search.pruning`).

This module imports no torch (the MetaNTK checks its own settings when the settings are
built), so the ``metantk search`` parser writes its options from :class:`SearchSettings`' fields.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from metantk_plugin.cli_options import option
from metantk_plugin.task_spec import TaskSpec, check_optional_positive_int, check_positive_int

__all__ = ["INDICATORS", "SearchSettings"]

INDICATORS = ("metantk", "ntk", "regions")
"""What ranks a removal: Δ MetaNTK condition + Δ regions, Δ NTK condition + Δ regions, or Δ regions alone."""


@dataclass(frozen=True)
class SearchSettings:
    """``indicator``: 'metantk' (Δ MetaNTK condition + Δ regions, the paper), 'ntk'
    (plain NTK, TE-NAS) or 'regions' (linear regions only); ``algorithm``,
    ``inner_lr_time`` and ``reg`` configure the MetaNTK; ``repeats`` per candidate (1, as
    ``metantk search``; the paper's full-size search uses 3); ``n_tasks`` per meta-batch;
    ``region_samples`` 3x3 one-channel crops per region count; ``precision`` rounds the
    deltas (decimals) and the ranking keys (significant figures), None for exact."""

    indicator: str = option("metantk", "metantk (paper), ntk (TE-NAS) or regions (linear regions only)",
                            choices=INDICATORS)
    algorithm: str = option("maml", "MetaNTK kernel (default maml)")
    inner_lr_time: float = option(math.inf, "inner learning rate x training time t (default inf, the converged "
                                            "limit)")
    reg: float = option(1e-3, "ridge added to K(S,S) (default 1e-3)")
    repeats: int = option(1, "repeats averaged per candidate (default 1; paper 3)")
    prune_number: int = option(1, "operations removed per edge and round")
    precision: int | None = option(None, "round deltas/ranking keys to this many digits (faithful: 3)")
    faithful: bool = option(False, "reproduce the official code (default init, random head per network, rounding)")
    n_tasks: int = option(TaskSpec.n_tasks, "tasks per meta-batch", flag="--tasks")
    region_samples: int = option(1000, "3x3 crops per region count")
    seed: int = option(0, "seed of weights, tasks and heads")
    device: str = option("cpu", "cpu or cuda (default cpu)")
    backend: str = "gram"

    def __post_init__(self) -> None:
        from metantk_plugin.proxies.metantk import MetaNTK

        if self.indicator not in INDICATORS:
            raise ValueError(f"indicator must be one of {INDICATORS}, got {self.indicator!r}")
        for name in ("repeats", "prune_number", "n_tasks", "region_samples"):
            check_positive_int(name, getattr(self, name))
        check_optional_positive_int("precision", self.precision)
        MetaNTK(self.algorithm, self.inner_lr_time, self.reg, backend=self.backend)  # validates the rest

    @property
    def effective_precision(self) -> int | None:
        """``precision``, or the official 3 in faithful mode when unset."""
        return 3 if self.precision is None and self.faithful else self.precision
