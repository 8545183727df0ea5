"""The end-to-end few-shot evaluation behind ``metantk evaluate``: build the data and the
network, train it with a :mod:`~metantk_plugin.fewshot.protocols` object (meta-learning:
MAML / first-order MAML / ANIL, or RFS pre-training), then score test episodes, with
checkpoints and results kept in an :class:`~metantk_plugin.fewshot.output_folder.OutputFolder`
(a checkpoint of matching training settings resumes bitwise; nothing made with other
settings is replaced unless ``force``). Network initialisation and dropout draw from torch's
global RNG, seeded in one place (:func:`~metantk_plugin.fewshot.training.seeded_global_rng`).
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from metantk_plugin.data.batches import SupervisedBatches
from metantk_plugin.data.episodes import EpisodeSampler
from metantk_plugin.data.sources import (
    SyntheticTaskSampler,
    input_transform,
    load_split,
    parse_data_spec,
    training_transform,
)
from metantk_plugin.data.splits import with_rotated_classes
from metantk_plugin.data.transforms import prepare_images
from metantk_plugin.fewshot.checkpoint import Checkpoint
from metantk_plugin.fewshot.maml import META_LEARNING_ALGORITHMS, MetaConfig
from metantk_plugin.fewshot.networks import build_network
from metantk_plugin.fewshot.output_folder import OutputConflict, OutputFolder
from metantk_plugin.fewshot.protocols import MetaLearning, RFSPretraining, TrainingProtocol
from metantk_plugin.fewshot.rfs import PretrainConfig
from metantk_plugin.fewshot.training import TrainingHistory, seeded_global_rng
from metantk_plugin.task_spec import TaskSampler, check_optional_positive_int, check_positive_int

__all__ = ["PROTOCOLS", "EvaluationSettings", "OutputConflict", "build_protocol", "run_evaluation"]

PROTOCOLS = (*META_LEARNING_ALGORITHMS, "rfs")
# settings that do not change the trained parameters: a checkpoint made with other values resumes
_NOT_TRAINING = ("meta_iterations", "episodes", "device", "val_every", "val_episodes", "eval_batch",
                 "test_inner_steps", "test_inner_lr")


@dataclass(frozen=True)
class EvaluationSettings:
    """Everything that defines a run. ``None`` values take the defaults for the data
    (:meth:`resolved`): Omniglot uses Finn et al.'s 0.4 / 1 step / 32 tasks, other data
    0.01 / 5 steps (10 at test) / 4 tasks; RFS pre-trains with SGD at lr 0.02 (0.01 for
    tieredImageNet), batch 64. For ANIL the Conv-4 head starts at zero. ``channels`` and
    ``cells`` size NAS-Bench-201 and DARTS networks (None: the network's defaults)."""

    network: str
    data: str
    protocol: str = "maml"
    ways: int = 5
    shots: int = 1
    queries: int = 15
    meta_iterations: int = 1000
    episodes: int = 600
    seed: int = 0
    meta_batch: int | None = None
    inner_lr: float | None = None
    inner_steps: int | None = None
    test_inner_lr: float | None = None
    test_inner_steps: int | None = None
    meta_lr: float = 1e-3
    grad_clip: float | None = None
    image_size: int | None = None
    channels: int | None = None
    cells: int | None = None
    rotations: bool = True
    batch_size: int = 64
    lr: float | None = None
    strategy: str = "auto"
    device: str = "cpu"
    val_every: int = 0
    val_episodes: int = 100
    eval_batch: int = 32

    def resolved(self) -> EvaluationSettings:
        """A copy with every dataset-dependent default filled in."""
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.protocol!r}; expected one of {list(PROTOCOLS)}")
        for name in ("ways", "shots", "queries", "meta_iterations", "episodes", "batch_size", "val_episodes",
                     "eval_batch"):
            check_positive_int(name, getattr(self, name))
        for name in ("channels", "cells"):
            check_optional_positive_int(name, getattr(self, name), none="the network's default")
        spec = parse_data_spec(self.data)
        omniglot = spec.kind == "omniglot"

        def default(value, fallback):
            return fallback if value is None else value

        inner_steps = default(self.inner_steps, 1 if omniglot else 5)
        resolved = replace(
            self,
            data=str(spec),
            meta_batch=default(self.meta_batch, 32 if omniglot else 4),
            inner_lr=default(self.inner_lr, 0.4 if omniglot else 0.01),
            inner_steps=inner_steps,
            test_inner_steps=default(self.test_inner_steps, inner_steps if omniglot or self.inner_steps else 10),
            image_size=default(self.image_size, spec.image_size),
            lr=default(self.lr, 0.01 if spec.kind == "tiered-imagenet" else 0.02),
            rotations=self.rotations and omniglot,
        )
        for name in ("meta_batch", "inner_steps", "test_inner_steps", "image_size"):
            check_positive_int(name, getattr(resolved, name))
        return resolved

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def meta_config(self) -> MetaConfig:
        """The meta-learning settings (of resolved settings)."""
        return MetaConfig(algorithm=self.protocol, inner_lr=self.inner_lr, inner_steps=self.inner_steps,
                          test_inner_lr=self.test_inner_lr, test_inner_steps=self.test_inner_steps,
                          meta_lr=self.meta_lr, grad_clip=self.grad_clip, strategy=self.strategy)

    def pretrain_config(self) -> PretrainConfig:
        """The RFS pre-training settings (of resolved settings): ``meta_iterations`` SGD steps,
        the learning rate decayed at RFS's epochs (tieredImageNet: its own schedule)."""
        tiered = parse_data_spec(self.data).kind == "tiered-imagenet"
        return PretrainConfig(steps=self.meta_iterations, batch_size=self.batch_size, lr=self.lr,
                              decay_at=(0.5, 2 / 3, 5 / 6) if tiered else (0.6, 0.8))

    def pretraining_batches(self) -> tuple[SupervisedBatches, int]:
        """RFS pre-training batches of the base classes (augmented, see
        :func:`training_transform`) and the number of those classes (of resolved settings)."""
        spec = parse_data_spec(self.data)
        if spec.kind == "synthetic":
            raise ValueError("the rfs protocol pre-trains on labelled base classes, which 'synthetic' data does "
                             "not have")
        data = load_split(spec, "train")
        store = prepare_images(torch.from_numpy(data.images), image_size=self.image_size, channels=spec.channels)
        batches = SupervisedBatches(store, data.labels, batch_size=min(self.batch_size, len(store)),
                                    transform=training_transform(spec, self.image_size, spec.channels),
                                    seed=self.seed)
        return batches, len(data.classes)

    def episode_sampler(self, split: str, *, rotations: bool = False) -> TaskSampler:
        """Episodes of ``split`` with these ways, shots and queries (of resolved settings);
        ``rotations`` adds the rotated classes (Omniglot meta-training)."""
        spec = parse_data_spec(self.data)
        if spec.kind == "synthetic":
            return SyntheticTaskSampler(ways=self.ways, shots=self.shots, queries=self.queries,
                                        image_size=self.image_size, channels=spec.channels, seed=self.seed)
        data = load_split(spec, split)
        if rotations:
            data = with_rotated_classes(data)
        return EpisodeSampler.from_images(data, ways=self.ways, shots=self.shots, queries=self.queries,
                                          image_size=self.image_size, channels=spec.channels,
                                          transform=input_transform(spec, spec.channels), seed=self.seed)


def build_protocol(settings: EvaluationSettings, network: Callable[[int], nn.Module], *,
                   train_data: EpisodeSampler | SyntheticTaskSampler | tuple[SupervisedBatches, int] | None = None,
                   ) -> TrainingProtocol:
    """The training protocol of resolved ``settings`` for the network ``network(num_classes)``
    (``ways`` outputs for meta-learning, one per base class for RFS). ``train_data``: the
    training episodes, or RFS's ``(batches, classes)`` (loaded from the settings when None)."""
    if settings.protocol == "rfs":
        batches, num_classes = settings.pretraining_batches() if train_data is None else train_data
        return RFSPretraining(network(num_classes), settings.pretrain_config(), batches, device=settings.device)
    tasks = settings.episode_sampler("train", rotations=settings.rotations) if train_data is None else train_data
    return MetaLearning(network(settings.ways), settings.meta_config(), tasks, meta_batch=settings.meta_batch,
                        seed=settings.seed, device=settings.device)


def _network(settings: EvaluationSettings, num_classes: int) -> nn.Module:
    return build_network(settings.network, num_classes=num_classes, input_size=settings.image_size,
                         in_channels=parse_data_spec(settings.data).channels, zero_head=settings.protocol == "anil",
                         channels=settings.channels, cells=settings.cells)


def _output_folder(settings: EvaluationSettings, out: str | Path | None, force: bool,
                   log: Callable[[str], None]) -> OutputFolder:
    # the RFS learning-rate schedule depends on the total steps, so an RFS run cannot be extended
    resumable_despite = tuple(k for k in _NOT_TRAINING if not (k == "meta_iterations" and settings.protocol == "rfs"))
    return OutputFolder(out, settings.to_dict(), steps=settings.meta_iterations, resumable_despite=resumable_despite,
                        force=force, log=log)


def _train(protocol: TrainingProtocol, settings: EvaluationSettings, folder: OutputFolder,
           resume: Checkpoint | None, progress: bool) -> tuple[TrainingHistory, float]:
    """Train from ``resume`` (or afresh) to ``meta_iterations`` steps, checkpointing into
    ``folder`` every 1/20 of them; the history and the wall seconds of this run's steps."""
    history, start = TrainingHistory(), 0
    if resume is not None:
        protocol.load_state(resume.state)
        history, start = TrainingHistory.from_dict(resume.history), resume.iteration
    validate = None
    if settings.val_every and "val" in parse_data_spec(settings.data).splits:
        val_sampler = settings.episode_sampler("val")

        def validate(iteration: int) -> tuple[float, float]:
            result = protocol.evaluate(val_sampler, episodes=settings.val_episodes, seed=settings.seed + 1,
                                       batch_size=settings.eval_batch, progress=False)
            return result.accuracy, result.ci95

    began = time.perf_counter()
    protocol.train(start=start, stop=settings.meta_iterations, history=history,
                   checkpoint=lambda iteration: folder.save_checkpoint(iteration, protocol.state(), history),
                   checkpoint_every=max(1, settings.meta_iterations // 20), validate=validate,
                   validate_every=settings.val_every, progress=progress)
    return history, time.perf_counter() - began


def run_evaluation(
    settings: EvaluationSettings,
    *,
    out: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = lambda message: None,
) -> dict[str, Any]:
    """Train and evaluate as ``settings`` say; returns the result object (also written to
    ``out/result.json`` with a checkpoint and ``training_curve.png`` when ``out`` is given)."""
    settings = settings.resolved()
    folder = _output_folder(settings, out, force, log)
    finished = folder.finished_result()
    if finished is not None:
        return finished
    resume = folder.resume_point()
    with seeded_global_rng(settings.seed):
        protocol = build_protocol(settings, functools.partial(_network, settings))
        history, train_seconds = _train(protocol, settings, folder, resume, progress)
        began = time.perf_counter()
        evaluation = protocol.evaluate(settings.episode_sampler("test"), episodes=settings.episodes,
                                       seed=settings.seed, batch_size=settings.eval_batch, progress=progress)
    result = {
        **evaluation.to_dict(),
        "seconds_per_iteration": history.seconds_per_iteration(),
        "meta_iterations": len(history.iteration),
        "protocol": settings.protocol,
        "network": settings.network,
        "parameters": sum(p.numel() for p in protocol.network.parameters()),
        "data": settings.data,
        "ways": settings.ways,
        "shots": settings.shots,
        "queries": settings.queries,
        "final_train_accuracy": history.accuracy[-1] if history.accuracy else math.nan,
        "train_seconds_this_run": train_seconds,
        "eval_seconds": time.perf_counter() - began,
        "torch_threads": torch.get_num_threads(),
        "settings": settings.to_dict(),
    }
    title = (f"{settings.protocol} {settings.network} on {parse_data_spec(settings.data).kind}, "
             f"{settings.ways}-way {settings.shots}-shot")
    return folder.write_result(result, history, title=title)
