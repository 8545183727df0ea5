"""The end-to-end few-shot evaluation behind ``metantk evaluate``: build the data and the
network, meta-train (MAML / first-order MAML / ANIL) or pre-train (RFS), then score test
episodes, with checkpoints and results kept in an output folder.

Output folder rules: a checkpoint whose training settings match is resumed (which gives
bitwise the same parameters as not stopping); a checkpoint or result made with other
settings is never replaced unless ``force`` is set.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch

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
from metantk_plugin.fewshot.checkpoint import Checkpoint, differing_settings, load_checkpoint, save_checkpoint
from metantk_plugin.fewshot.evaluation import EpisodeResult, evaluate_episodes
from metantk_plugin.fewshot.maml import MetaConfig, MetaLearner
from metantk_plugin.fewshot.networks import build_network
from metantk_plugin.fewshot.plots import plot_training_curve
from metantk_plugin.fewshot.rfs import PretrainConfig, Pretrainer, probe_accuracy
from metantk_plugin.fewshot.training import Prefetcher, TrainingHistory, meta_train, run_steps
from metantk_plugin.task_spec import TaskSampler, check_optional_positive_int, check_positive_int

__all__ = ["PROTOCOLS", "EvaluationSettings", "OutputConflict", "run_evaluation"]

PROTOCOLS = ("maml", "fomaml", "anil", "rfs")
CHECKPOINT_NAME, RESULT_NAME, CURVE_NAME = "checkpoint.pt", "result.json", "training_curve.png"
# settings that do not change the trained parameters: a checkpoint made with other values resumes
_NOT_TRAINING = ("meta_iterations", "episodes", "device", "val_every", "val_episodes", "eval_batch",
                 "test_inner_steps", "test_inner_lr")


class OutputConflict(ValueError):
    """The output folder holds a checkpoint or result made with other settings."""


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


def _write_json(path: Path, payload: dict) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(handle, "w") as file:
        json.dump(payload, file, indent=2)
        file.write("\n")
    os.replace(temporary, path)


def _describe(differences: list[str], saved: dict, current: dict) -> str:
    return ", ".join(f"{k}: {saved.get(k, '<absent>')!r} there vs {current.get(k, '<absent>')!r} now"
                     for k in differences)


def _resume_point(out: Path | None, settings: dict, force: bool, log: Callable[[str], None]) -> Checkpoint | None:
    """The checkpoint to resume from, None to start fresh; OutputConflict when refusing."""
    if out is None or not (out / CHECKPOINT_NAME).is_file():
        return None
    path = out / CHECKPOINT_NAME
    try:
        checkpoint = load_checkpoint(path)
    except ValueError as error:
        if force:
            log(f"replacing unreadable checkpoint {path} (--force)")
            return None
        raise OutputConflict(f"{error}; pass --force to replace it or choose another --out") from None
    # the RFS learning-rate schedule depends on the total steps, so an RFS run cannot be extended
    ignore = tuple(k for k in _NOT_TRAINING if not (k == "meta_iterations" and settings["protocol"] == "rfs"))
    differences = differing_settings(checkpoint.settings, settings, ignore=ignore)
    if not differences and checkpoint.iteration <= settings["meta_iterations"]:
        log(f"resuming from {path} at iteration {checkpoint.iteration}")
        return checkpoint
    if differences:
        reason = f"it was made with other training settings ({_describe(differences, checkpoint.settings, settings)})"
    else:
        reason = (f"it has already run {checkpoint.iteration} iterations, more than the "
                  f"{settings['meta_iterations']} asked")
    if force:
        log(f"starting afresh and replacing {path} (--force): {reason}")
        return None
    raise OutputConflict(f"refusing to overwrite {path}: {reason}. Pass --force to replace it or choose another --out")


def _finished_result(out: Path | None, settings: dict, force: bool) -> dict | None:
    """A stored result of exactly these settings; OutputConflict for one of other settings."""
    if out is None or not (out / RESULT_NAME).is_file():
        return None
    path = out / RESULT_NAME
    try:
        stored = json.loads(path.read_text())
        saved = stored["settings"]
    except (ValueError, KeyError, TypeError):
        stored, saved = None, {}
    if stored is not None and not differing_settings(saved, settings, ignore=("device",)):
        return None if force else stored
    if force:
        return None
    detail = _describe(differing_settings(saved, settings), saved, settings) if stored is not None else "unreadable"
    raise OutputConflict(f"refusing to overwrite {path}, a result of other settings ({detail}). Pass --force to "
                         "replace it (a matching checkpoint is still resumed) or choose another --out")


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
    spec = parse_data_spec(settings.data)
    current = settings.to_dict()
    out = Path(out) if out is not None else None
    if out is not None and out.exists() and not out.is_dir():
        raise OutputConflict(f"--out {out} exists and is not a folder")
    finished = _finished_result(out, current, force)
    if finished is not None:
        log(f"{out / RESULT_NAME} already holds the result of these settings; nothing to do (--force to redo)")
        return finished
    resume = _resume_point(out, current, force, log)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(settings.seed)
    channels = spec.channels
    rfs = settings.protocol == "rfs"
    if rfs:
        batches, num_classes = settings.pretraining_batches()
    else:
        num_classes = settings.ways
    network = build_network(settings.network, num_classes=num_classes, input_size=settings.image_size,
                            in_channels=channels, zero_head=settings.protocol == "anil", channels=settings.channels,
                            cells=settings.cells)
    n_parameters = sum(p.numel() for p in network.parameters())
    history = TrainingHistory()
    start = 0

    if rfs:
        trainer: Any = Pretrainer(network, settings.pretrain_config(), device=settings.device)
    else:
        trainer = MetaLearner(network, settings.meta_config(), device=settings.device)
        train_sampler = settings.episode_sampler("train", rotations=settings.rotations)
    if resume is not None:
        trainer.load_state_dict(resume.state)
        torch.set_rng_state(resume.state["torch_rng"])
        history = TrainingHistory.from_dict(resume.history)
        start = resume.iteration

    def checkpoint(iteration: int) -> None:
        if out is not None:
            state = {**trainer.state_dict(), "torch_rng": torch.get_rng_state()}
            save_checkpoint(out / CHECKPOINT_NAME, Checkpoint(current, iteration, state, history.to_dict()))

    checkpoint_every = max(1, settings.meta_iterations // 20)
    test_sampler = settings.episode_sampler("test")
    if rfs:
        def score(tasks):
            return probe_accuracy(trainer.network, tasks)
    else:
        score = trainer.evaluate
    validate = None
    if settings.val_every and "val" in spec.splits:
        val_sampler = settings.episode_sampler("val")

        def validate(iteration: int) -> tuple[float, float]:
            result = evaluate_episodes(score, val_sampler, episodes=settings.val_episodes, seed=settings.seed + 1,
                                       batch_size=settings.eval_batch, progress=False)
            return result.accuracy, result.ci95

    began = time.perf_counter()
    if rfs:
        with Prefetcher(batches.batch, start, settings.meta_iterations) as prefetched:
            run_steps(lambda i: trainer.step(i, *prefetched.get(i)), start=start, stop=settings.meta_iterations,
                      history=history, description="pre-train", checkpoint=checkpoint,
                      checkpoint_every=checkpoint_every, validate=validate, validate_every=settings.val_every,
                      progress=progress)
    else:
        meta_train(trainer, train_sampler, iterations=settings.meta_iterations, meta_batch=settings.meta_batch,
                   seed=settings.seed, start=start, history=history, checkpoint=checkpoint,
                   checkpoint_every=checkpoint_every, validate=validate, validate_every=settings.val_every,
                   progress=progress)
    train_seconds = time.perf_counter() - began
    began = time.perf_counter()
    evaluation: EpisodeResult = evaluate_episodes(score, test_sampler, episodes=settings.episodes,
                                                  seed=settings.seed, batch_size=settings.eval_batch,
                                                  progress=progress)
    result = {
        **evaluation.to_dict(),
        "seconds_per_iteration": history.seconds_per_iteration(),
        "meta_iterations": len(history.iteration),
        "protocol": settings.protocol,
        "network": settings.network,
        "parameters": n_parameters,
        "data": settings.data,
        "ways": settings.ways,
        "shots": settings.shots,
        "queries": settings.queries,
        "final_train_accuracy": history.accuracy[-1] if history.accuracy else math.nan,
        "train_seconds_this_run": train_seconds,
        "eval_seconds": time.perf_counter() - began,
        "torch_threads": torch.get_num_threads(),
        "settings": current,
    }
    if out is not None:
        curve = plot_training_curve(history, out / CURVE_NAME,
                                    title=f"{settings.protocol} {settings.network} on {spec.kind}, "
                                          f"{settings.ways}-way {settings.shots}-shot")
        result["files"] = {"result": str(out / RESULT_NAME), "checkpoint": str(out / CHECKPOINT_NAME),
                           "training_curve": str(curve)}
        _write_json(out / RESULT_NAME, result)
    return result
