"""MetaNTK-NAS as an NNI strategy: operator pruning over the operations on edges.

    NasExperiment(NasBench201(), ProxyEvaluator(), MetaNTKPruning(), sequential_config(1, "runs"))

The strategy turns the experiment's model space into a supernet
(:class:`NNIPrunableSpace`: one mixed operation per choice label) and runs the package's
pruning search (:func:`metantk_plugin.search.run_pruning_search`): in every round each
choice with more than one operation left loses the operation whose removal has the
smallest rank sum of Δ MetaNTK condition number (descending) and Δ linear regions
(ascending), until one operation per choice remains. That architecture is then
submitted to NNI's engine and evaluated by the experiment's evaluator, so
``experiment.export_top_models()`` returns it as usual. The whole search record
(every round's candidates and deltas) is :attr:`MetaNTKPruning.result`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from metantk_plugin.integrations.nni._require import require_nni
from metantk_plugin.integrations.nni.supernet import NNIPrunableSpace
from metantk_plugin.integrations.nni.tasks import task_source
from metantk_plugin.search import SearchResult, SearchSettings, run_pruning_search
from metantk_plugin.tasks import TaskBatch

_strategy = require_nni("nni.nas.strategy")

__all__ = ["MetaNTKPruning"]


class MetaNTKPruning(_strategy.Strategy):
    """Prune every edge choice of an NNI space to one operation, then submit that model.

    ``tasks``, ``task_options``: the meta-batches' source (see
    :mod:`metantk_plugin.integrations.nni.tasks`; a fixed TaskBatch is reused for every
    meta-batch); ``settings``: :class:`~metantk_plugin.search.SearchSettings` (or a dict of
    its fields): indicator, repeats, seed, ...; ``exclude_ops``, ``region_kwargs``,
    ``region_image_size``, ``norm``: see :class:`NNIPrunableSpace`; ``progress``: a
    progress bar over the rounds.
    """

    def __init__(
        self,
        *,
        tasks: TaskBatch | str | None = None,
        task_options: dict[str, Any] | None = None,
        settings: SearchSettings | dict[str, Any] | None = None,
        exclude_ops: Sequence[str] = (),
        region_kwargs: dict[str, Any] | None = None,
        region_image_size: int | None = 4,
        norm: str = "group",
        progress: bool = False,
    ):
        super().__init__()
        if isinstance(settings, dict):
            settings = SearchSettings(**settings)
        if settings is not None and not isinstance(settings, SearchSettings):
            raise ValueError(f"settings must be a SearchSettings or a dict of its fields, got {settings!r}")
        self.settings = settings or SearchSettings()
        self._source = task_source(tasks, task_options)
        self._space_options = dict(exclude_ops=tuple(exclude_ops), norm=norm, region_kwargs=region_kwargs,
                                   region_image_size=region_image_size)
        self.progress = progress
        self.result: SearchResult | None = None

    def extra_repr(self) -> str:
        s = self.settings
        return f"indicator={s.indicator!r}, repeats={s.repeats}, seed={s.seed}"

    def _initialize(self, model_space, engine):
        NNIPrunableSpace(model_space, **self._space_options)  # refuse unsupported spaces before the run
        return model_space

    def _run(self) -> None:
        if self.result is None:
            space = NNIPrunableSpace(self.model_space, **self._space_options)
            self.result = run_pruning_search(space, self._source, self.settings, progress=self.progress)
        model = self.model_space.freeze(self.result.architecture["sample"])
        if self.wait_for_resource():
            self.engine.submit_models(model)
            self.engine.wait_models()

    def state_dict(self) -> dict:
        return {"result": None if self.result is None else self.result.to_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        result = state_dict.get("result")
        fields = {f.name for f in dataclasses.fields(SearchResult)}
        if result is not None and "round_seconds" not in result:  # saved before rounds were timed
            result = {**result, "round_seconds": [None] * len(result["rounds"])}
        self.result = None if result is None else SearchResult(**{k: v for k, v in result.items() if k in fields})
