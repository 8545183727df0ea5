"""The RFS protocol (Tian et al. 2020), as used by MetaNTK-NAS: supervised pre-training
on the base classes, then, per test episode, a multinomial logistic regression fitted
on the L2-normalised features of the support set and scored on the queries.

Pre-training: cross-entropy, SGD with momentum and weight decay, the learning rate
multiplied by ``decay`` at each fraction of the steps in ``decay_at`` (RFS's
epochs 60 and 80 of 100 are fractions 0.6 and 0.8).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from metantk_plugin.data.episodes import EpisodeSampler, as_generator
from metantk_plugin.fewshot.evaluation import EpisodeResult, confidence_interval, episode_seeds
from metantk_plugin.fewshot.logistic import fit_logistic_regression
from metantk_plugin.network_adapter import split_output
from metantk_plugin.task_spec import check_positive_int
from metantk_plugin.tasks import TaskBatch

__all__ = [
    "PretrainConfig",
    "Pretrainer",
    "episode_features",
    "feature_bank_accuracy",
    "feature_probe_accuracy",
    "probe_accuracy",
]


@dataclass(frozen=True)
class PretrainConfig:
    """Supervised pre-training settings (``steps`` optimiser steps of ``batch_size`` images)."""

    steps: int
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    decay_at: tuple[float, ...] = (0.6, 0.8)
    decay: float = 0.1

    def __post_init__(self) -> None:
        check_positive_int("steps", self.steps)
        check_positive_int("batch_size", self.batch_size)
        if self.lr <= 0 or not 0 <= self.momentum < 1 or self.weight_decay < 0 or not 0 < self.decay <= 1:
            raise ValueError(f"invalid optimiser settings lr={self.lr}, momentum={self.momentum}, "
                             f"weight_decay={self.weight_decay}, decay={self.decay}")
        if any(not 0 < f < 1 for f in self.decay_at):
            raise ValueError(f"decay_at fractions must lie in (0, 1), got {self.decay_at}")

    def lr_at(self, step: int) -> float:
        """Learning rate of step ``step`` (0-based)."""
        return self.lr * self.decay ** sum(step >= f * self.steps for f in self.decay_at)

    def to_dict(self) -> dict:
        return asdict(self)


class Pretrainer:
    """A network, an SGD optimiser and the step schedule of :class:`PretrainConfig`."""

    def __init__(self, network: nn.Module, config: PretrainConfig, *, device: torch.device | str | None = None):
        self.config = config
        self.device = torch.device(device) if device is not None else next(network.parameters()).device
        self.network = network.to(self.device)
        self.optimizer = torch.optim.SGD(network.parameters(), lr=config.lr, momentum=config.momentum,
                                         weight_decay=config.weight_decay)

    def step(self, step: int, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        """One SGD step on a batch; returns its (loss, accuracy)."""
        self.network.train()
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr_at(step)
        logits = split_output(self.network(x.to(self.device)))[1]
        y = y.to(self.device)
        if logits.shape[-1] <= int(y.max()):
            raise ValueError(f"the network has {logits.shape[-1]} outputs but the labels go up to {int(y.max())}")
        loss = F.cross_entropy(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach()), float((logits.detach().argmax(-1) == y).float().mean())

    def state_dict(self) -> dict:
        return {"network": self.network.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.network.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])


@torch.no_grad()
def episode_features(network: nn.Module, x: torch.Tensor, *, chunk: int = 256) -> torch.Tensor:
    """L2-normalised penultimate features ``[N, D]`` of ``x [N, C, H, W]`` in eval mode."""
    was_training = network.training
    network.eval()
    try:
        device = next(network.parameters()).device
        parts = []
        for start in range(0, len(x), chunk):
            features, logits = split_output(network(x[start:start + chunk].to(device)))
            if features is logits:
                raise ValueError("the RFS probe needs a network whose forward returns (features, logits)")
            parts.append(features.flatten(1).float())
        return F.normalize(torch.cat(parts), dim=1)
    finally:
        network.train(was_training)


def probe_accuracy(network: nn.Module, tasks: TaskBatch, *, C: float = 1.0, max_iter: int = 1000) -> torch.Tensor:
    """Query accuracy ``[T]`` of a logistic regression (``C``, L-BFGS) fitted per episode on
    the normalised support features."""
    n_tasks = tasks.n_tasks
    support = episode_features(network, tasks.support_x.flatten(0, 1)).view(n_tasks, tasks.n_support, -1)
    query = episode_features(network, tasks.query_x.flatten(0, 1)).view(n_tasks, tasks.n_query, -1)
    return feature_probe_accuracy(support, tasks.support_y, query, tasks.query_y, tasks.ways, C=C, max_iter=max_iter)


def feature_probe_accuracy(support: torch.Tensor, support_y: torch.Tensor, query: torch.Tensor,
                           query_y: torch.Tensor, ways: int, *, C: float = 1.0, max_iter: int = 1000) -> torch.Tensor:
    """Query accuracy ``[T]`` of the per-episode logistic regression on given features:
    ``support [T, S, D]`` with labels ``[T, S]``, ``query [T, Q, D]`` with labels ``[T, Q]``."""
    weight, bias = fit_logistic_regression(support.cpu(), support_y.cpu(), ways, C=C, max_iter=max_iter)
    logits = torch.baddbmm(bias.unsqueeze(1), query.cpu(), weight.transpose(1, 2))
    return (logits.argmax(-1) == query_y.cpu()).float().mean(1)


def feature_bank_accuracy(network: nn.Module, sampler: EpisodeSampler, *, episodes: int, seed: int = 0,
                          batch_size: int = 200, C: float = 1.0) -> EpisodeResult:
    """:func:`probe_accuracy` over the test episodes of :func:`evaluate_episodes` (the same
    episodes, from :func:`episode_seeds`), with every image's features computed once.

    Exact only for a deterministic ``sampler.transform`` (no augmentation), which the test
    samplers have: an image's eval-mode features then do not depend on its episode."""
    check_positive_int("episodes", episodes)
    images = sampler.images if sampler.prepare is None else sampler.prepare(sampler.images)
    images = images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()
    if sampler.transform is not None:
        images = sampler.transform(images, torch.Generator().manual_seed(0))
    bank = episode_features(network, images).cpu()
    ways, shots, queries = sampler.ways, sampler.shots, sampler.queries
    support_y = torch.arange(ways).repeat(shots)
    query_y = torch.arange(ways).repeat(queries)
    seeds = episode_seeds(seed, episodes)
    accuracies: list[torch.Tensor] = []
    for start in range(0, episodes, batch_size):
        picked = [sampler.sample_indices(1, as_generator(s)) for s in seeds[start:start + batch_size]]
        support = torch.cat([s for s, _ in picked])
        query = torch.cat([q for _, q in picked])
        n = len(picked)
        accuracies.append(feature_probe_accuracy(bank[support], support_y.expand(n, -1), bank[query],
                                                 query_y.expand(n, -1), ways, C=C))
    values = torch.cat(accuracies).double().numpy()
    mean, half_width = confidence_interval(values)
    return EpisodeResult(values, mean, half_width)
