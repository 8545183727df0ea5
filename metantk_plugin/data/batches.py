"""Seeded mini-batches for supervised training (e.g. RFS pre-training on base classes).

Each epoch is a fresh permutation of all images (seeded by ``(seed, epoch)``) cut into
``batch_size`` pieces, the last incomplete piece dropped; step ``i`` is a pure function of
``(seed, i)``, so training resumes exactly from any step.
"""

from __future__ import annotations

import numpy as np
import torch

from metantk_plugin.data.episodes import Transform, derive_seed

__all__ = ["SupervisedBatches"]


class SupervisedBatches:
    """Batches ``(x [B, C, H, W] float, y [B] long)`` from ``images [N, C, H, W]`` (uint8 or
    float in [0, 1]) and ``labels [N]``, passed through ``transform(x, generator)``."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | np.ndarray, *, batch_size: int,
                 transform: Transform | None = None, seed: int = 0):
        labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        if images.dim() != 4 or labels.shape != (images.shape[0],):
            raise ValueError(f"need images [N, C, H, W] and labels [N]; got {tuple(images.shape)}, "
                             f"{tuple(labels.shape)}")
        if not isinstance(batch_size, int) or not 1 <= batch_size <= len(labels):
            raise ValueError(f"batch_size must be an int in 1..{len(labels)} (the number of images), "
                             f"got {batch_size!r}")
        self.images, self.labels = images, labels
        self.batch_size, self.transform, self.seed = batch_size, transform, seed
        self._permutation: tuple[int, torch.Tensor] | None = None

    @property
    def steps_per_epoch(self) -> int:
        return len(self.labels) // self.batch_size

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch of training step ``step`` (0-based)."""
        epoch, position = divmod(int(step), self.steps_per_epoch)
        if self._permutation is None or self._permutation[0] != epoch:
            generator = torch.Generator().manual_seed(derive_seed(self.seed, epoch))
            self._permutation = (epoch, torch.randperm(len(self.labels), generator=generator))
        index = self._permutation[1][position * self.batch_size:(position + 1) * self.batch_size]
        x = self.images[index]
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        if self.transform is not None:
            x = self.transform(x, torch.Generator().manual_seed(derive_seed(self.seed, epoch, position)))
        return x, self.labels[index]
