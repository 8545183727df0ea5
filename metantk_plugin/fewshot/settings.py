"""The settings of a few-shot evaluation (:func:`metantk_plugin.fewshot.pipeline.run_evaluation`):
the network, the data, the protocol and every hyperparameter that defines a run.

This module imports no torch (the methods that build configs, batches and samplers import
what they build), so the ``metantk evaluate`` parser writes its options from
:class:`EvaluationSettings`' fields.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from metantk_plugin.cli_options import option
from metantk_plugin.task_spec import TaskSampler, check_optional_positive_int, check_positive_int

if TYPE_CHECKING:
    from metantk_plugin.data.batches import SupervisedBatches
    from metantk_plugin.fewshot.maml import MetaConfig
    from metantk_plugin.fewshot.rfs import PretrainConfig

__all__ = ["META_LEARNING_ALGORITHMS", "PROTOCOLS", "EvaluationSettings"]

META_LEARNING_ALGORITHMS = ("maml", "fomaml", "anil")
"""The meta-training algorithms (see :mod:`~metantk_plugin.fewshot.maml`); ``fomaml`` has no
MetaNTK kernel of its own."""

PROTOCOLS = (*META_LEARNING_ALGORITHMS, "rfs")
"""Meta-learning (second-order MAML, first-order MAML, ANIL) or RFS pre-training."""


@dataclass(frozen=True)
class EvaluationSettings:
    """Everything that defines a run. ``None`` values take the defaults for the data
    (:meth:`resolved`): Omniglot uses Finn et al.'s 0.4 / 1 step / 32 tasks, other data
    0.01 / 5 steps (10 at test) / 4 tasks; RFS pre-trains with SGD at lr 0.02 (0.01 for
    tieredImageNet), batch 64. For ANIL the Conv-4 head starts at zero. ``channels`` and
    ``cells`` size NAS-Bench-201 and DARTS networks (None: the network's defaults)."""

    network: str
    data: str
    protocol: str = option("maml", "training protocol", choices=PROTOCOLS)
    ways: int = option(5, "classes per episode")
    shots: int = 1
    queries: int = option(15, "query images per class")
    meta_iterations: int = option(1000, "meta-updates (maml/fomaml/anil) or pre-training SGD steps (rfs)")
    episodes: int = option(600, "test episodes")
    seed: int = option(0, "seed of initialisation, tasks and test episodes")
    meta_batch: int | None = option(None, "tasks per meta-update (default: 32 for Omniglot, 4 otherwise)")
    inner_lr: float | None = option(None, "inner-loop step size (default: 0.4 Omniglot, 0.01)")
    inner_steps: int | None = option(None, "inner-loop steps in training (default: 1 Omniglot, 5)")
    test_inner_lr: float | None = option(None, "inner-loop step size at test time (default: the training one)")
    test_inner_steps: int | None = option(None, "inner-loop steps at test time (default: the training steps; 10 "
                                                "off Omniglot)")
    meta_lr: float = option(1e-3, "Adam learning rate of the meta-update (default 1e-3)")
    grad_clip: float | None = option(None, "clip the meta-gradient to this global L2 norm")
    image_size: int | None = option(None, "input size after an antialiased resize (default: 28 Omniglot, 84 "
                                          "mini/tiered)")
    channels: int | None = option(None, "C of NAS-Bench-201 / DARTS networks (default: the network's)")
    cells: int | None = option(None, "nb201: cells per stage N; darts-fewshot: cells, 3k+2 (default: the "
                                     "network's)")
    rotations: bool = True
    batch_size: int = option(64, "rfs: pre-training batch size")
    lr: float | None = option(None, "rfs: SGD learning rate (default: 0.02; 0.01 tiered)")
    strategy: str = option("auto", "how tasks of a meta-batch run: a loop, torch.func.vmap (fastest on GPU), "
                                   "batched inner loops (fastest on CPU), or auto (default)")
    device: str = option("cpu", "torch device, e.g. cuda or cuda:1 (default: cpu)")
    val_every: int = option(0, "validate on meta-val episodes every N iterations, shown in the curve (default: "
                               "never)")
    val_episodes: int = option(100, "episodes per validation")
    eval_batch: int = 32
    query_precision: str = option("float32", "dtype of the query sets' forward and backward passes in "
                                             "meta-training with maml or fomaml: float32, or bfloat16 (autocast; "
                                             "faster on AMX / AVX512-BF16 CPUs and GPUs; the inner loop stays "
                                             "float32) (default: float32)")

    def resolved(self) -> EvaluationSettings:
        """A copy with every dataset-dependent default filled in."""
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.protocol!r}; expected one of {list(PROTOCOLS)}")
        for name in ("ways", "shots", "queries", "meta_iterations", "episodes", "batch_size", "val_episodes",
                     "eval_batch"):
            check_positive_int(name, getattr(self, name))
        for name in ("channels", "cells"):
            check_optional_positive_int(name, getattr(self, name), none="the network's default")
        from metantk_plugin.data.sources import parse_data_spec

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
        from metantk_plugin.fewshot.maml import MetaConfig

        return MetaConfig(algorithm=self.protocol, inner_lr=self.inner_lr, inner_steps=self.inner_steps,
                          test_inner_lr=self.test_inner_lr, test_inner_steps=self.test_inner_steps,
                          meta_lr=self.meta_lr, grad_clip=self.grad_clip, strategy=self.strategy,
                          query_precision=self.query_precision)

    def pretrain_config(self) -> PretrainConfig:
        """The RFS pre-training settings (of resolved settings): ``meta_iterations`` SGD steps,
        the learning rate decayed at RFS's epochs (tieredImageNet: its own schedule)."""
        from metantk_plugin.data.sources import parse_data_spec
        from metantk_plugin.fewshot.rfs import PretrainConfig

        tiered = parse_data_spec(self.data).kind == "tiered-imagenet"
        return PretrainConfig(steps=self.meta_iterations, batch_size=self.batch_size, lr=self.lr,
                              decay_at=(0.5, 2 / 3, 5 / 6) if tiered else (0.6, 0.8))

    def pretraining_batches(self) -> tuple[SupervisedBatches, int]:
        """RFS pre-training batches of the base classes (augmented, see
        :func:`~metantk_plugin.data.sources.training_transform`) and the number of those classes
        (of resolved settings)."""
        import torch

        from metantk_plugin.data.batches import SupervisedBatches
        from metantk_plugin.data.sources import load_split, parse_data_spec, training_transform
        from metantk_plugin.data.transforms import prepare_images

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
        from metantk_plugin.data.episodes import EpisodeSampler
        from metantk_plugin.data.sources import SyntheticTaskSampler, input_transform, load_split, parse_data_spec
        from metantk_plugin.data.splits import with_rotated_classes

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
