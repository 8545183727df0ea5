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
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from metantk_plugin.data.batches import SupervisedBatches
from metantk_plugin.data.episodes import EpisodeSampler
from metantk_plugin.data.sources import SyntheticTaskSampler, parse_data_spec
from metantk_plugin.fewshot.checkpoint import Checkpoint
from metantk_plugin.fewshot.networks import build_network
from metantk_plugin.fewshot.output_folder import OutputConflict, OutputFolder
from metantk_plugin.fewshot.protocols import MetaLearning, RFSPretraining, TrainingProtocol
from metantk_plugin.fewshot.settings import PROTOCOLS, EvaluationSettings
from metantk_plugin.fewshot.training import TrainingHistory, seeded_global_rng

__all__ = ["PROTOCOLS", "EvaluationSettings", "OutputConflict", "build_protocol", "run_evaluation"]

# settings that do not change the trained parameters: a checkpoint made with other values resumes
_NOT_TRAINING = ("meta_iterations", "episodes", "device", "val_every", "val_episodes", "eval_batch",
                 "test_inner_steps", "test_inner_lr")


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
