"""Training protocols as objects: meta-learning (MAML / first-order MAML / ANIL) and RFS
pre-training behind one interface.

A protocol owns a network, its optimiser and its training data. Step ``i`` trains on
``batch(i)``, which depends only on the run's seed and ``i`` (drawn ahead in a background
thread); ``score(tasks)`` gives the query accuracies ``[T]`` of test episodes; ``state()``
holds everything a resumed run needs to continue bitwise as if it had not stopped: the
network, the optimiser and torch's global RNG (dropout draws from it).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Generic, TypeVar

import torch
from torch import nn

from metantk_plugin.data.batches import SupervisedBatches
from metantk_plugin.data.episodes import derive_seed
from metantk_plugin.fewshot.evaluation import EpisodeResult, evaluate_episodes
from metantk_plugin.fewshot.maml import MetaConfig, MetaLearner
from metantk_plugin.fewshot.rfs import PretrainConfig, Pretrainer, probe_accuracy
from metantk_plugin.fewshot.training import TrainingHistory, run_prefetched_steps
from metantk_plugin.tasks import TaskBatch

__all__ = ["MetaLearning", "RFSPretraining", "TrainingProtocol"]

B = TypeVar("B")


class TrainingProtocol(ABC, Generic[B]):
    """One way to train a network for few-shot tasks and to score it on test episodes."""

    description: str
    """Label of the training progress bar."""

    def __init__(self, trainer: MetaLearner | Pretrainer):
        self._trainer = trainer

    @property
    def network(self) -> nn.Module:
        return self._trainer.network

    @abstractmethod
    def batch(self, i: int) -> B:
        """The training data of step ``i`` (0-based)."""

    @abstractmethod
    def step(self, i: int, batch: B) -> tuple[float, float]:
        """One training iteration on ``batch = self.batch(i)``; its (loss, accuracy)."""

    @abstractmethod
    def score(self, tasks: TaskBatch) -> torch.Tensor:
        """Query accuracies ``[T]`` of test episodes."""

    def train(self, *, start: int, stop: int, history: TrainingHistory, **loop) -> TrainingHistory:
        """Steps ``start .. stop-1``, appended to ``history``; ``loop``: the checkpoint,
        validation, time-budget and progress arguments of
        :func:`~metantk_plugin.fewshot.training.run_steps`."""
        return run_prefetched_steps(self.batch, self.step, start=start, stop=stop, history=history,
                                    description=self.description, **loop)

    def evaluate(self, sampler, *, episodes: int, seed: int, batch_size: int, progress: bool = True) -> EpisodeResult:
        """:meth:`score` over the episodes of :func:`~metantk_plugin.fewshot.evaluation.evaluate_episodes`."""
        return evaluate_episodes(self.score, sampler, episodes=episodes, seed=seed, batch_size=batch_size,
                                 progress=progress)

    def state(self) -> dict[str, Any]:
        """Network, optimiser and torch's global RNG state."""
        return {**self._trainer.state_dict(), "torch_rng": torch.get_rng_state()}

    def load_state(self, state: dict[str, Any]) -> None:
        self._trainer.load_state_dict(state)
        torch.set_rng_state(state["torch_rng"])


class MetaLearning(TrainingProtocol[TaskBatch]):
    """MAML, first-order MAML or ANIL (``config.algorithm``): step ``i`` takes one
    meta-update on ``meta_batch`` tasks of ``tasks`` drawn with seed ``derive_seed(seed, i)``;
    test episodes are scored after adaptation with the test inner-loop settings."""

    description = "meta-train"

    def __init__(self, network: nn.Module, config: MetaConfig, tasks, *, meta_batch: int, seed: int,
                 device: torch.device | str | None = None):
        super().__init__(MetaLearner(network, config, device=device))
        self.tasks, self.meta_batch, self.seed = tasks, meta_batch, seed

    def batch(self, i: int) -> TaskBatch:
        return self.tasks.sample(self.meta_batch, derive_seed(self.seed, i))

    def step(self, i: int, batch: TaskBatch) -> tuple[float, float]:
        return self._trainer.meta_step(batch)

    def score(self, tasks: TaskBatch) -> torch.Tensor:
        return self._trainer.evaluate(tasks)


class RFSPretraining(TrainingProtocol[tuple[torch.Tensor, torch.Tensor]]):
    """RFS: step ``i`` is one supervised SGD step on ``batches.batch(i)`` of the base
    classes; a test episode is scored by the logistic-regression probe on the normalised
    features (:func:`~metantk_plugin.fewshot.rfs.probe_accuracy`)."""

    description = "pre-train"

    def __init__(self, network: nn.Module, config: PretrainConfig, batches: SupervisedBatches, *,
                 device: torch.device | str | None = None):
        super().__init__(Pretrainer(network, config, device=device))
        self.batches = batches

    def batch(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.batches.batch(i)

    def step(self, i: int, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[float, float]:
        return self._trainer.step(i, *batch)

    def score(self, tasks: TaskBatch) -> torch.Tensor:
        return probe_accuracy(self.network, tasks)
