"""Seeded N-way K-shot Q-query episodes from a labelled image store.

One episode: draw ``ways`` distinct classes, then ``shots + queries`` distinct images
of each class; the first ``shots`` form the support set and the rest the queries, so
no image is in both. Labels are the position of the class in the draw (``0..ways-1``)
and samples are shot-major (``[c0, c1, ..., c0, c1, ...]``), as in
:func:`metantk_plugin.tasks.synthetic_tasks`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from metantk_plugin.data.images import LabelledImages
from metantk_plugin.data.transforms import prepare_images
from metantk_plugin.task_spec import check_positive_int
from metantk_plugin.tasks import TaskBatch

__all__ = ["EpisodeSampler", "as_generator", "concat_tasks", "derive_seed"]

Transform = Callable[[torch.Tensor, "torch.Generator | None"], torch.Tensor]
_PREPARE_ONCE_BYTES = 512 * 2**20


def derive_seed(*parts: int) -> int:
    """A 63-bit seed that depends on every part (e.g. ``(seed, iteration)``), through
    numpy's SeedSequence hashing, so neighbouring parts give unrelated streams."""
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFFFFFFFFFF for p in parts]).generate_state(1, np.uint64)[0]
               >> np.uint64(1))


def as_generator(generator_or_seed: torch.Generator | int) -> torch.Generator:
    """A CPU generator: the given one, or a fresh one seeded with the given int."""
    if isinstance(generator_or_seed, torch.Generator):
        return generator_or_seed
    if isinstance(generator_or_seed, (int, np.integer)) and not isinstance(generator_or_seed, bool):
        return torch.Generator().manual_seed(int(generator_or_seed))
    raise TypeError(f"expected a torch.Generator or an int seed, got {type(generator_or_seed).__name__}")


def concat_tasks(batches: Sequence[TaskBatch]) -> TaskBatch:
    """One TaskBatch holding the tasks of several (same ways, shots and queries)."""
    if not batches:
        raise ValueError("concat_tasks needs at least one TaskBatch")
    return TaskBatch(
        torch.cat([b.support_x for b in batches]),
        torch.cat([b.support_y for b in batches]),
        torch.cat([b.query_x for b in batches]),
        torch.cat([b.query_y for b in batches]),
        batches[0].ways,
    )


class EpisodeSampler:
    """Draws meta-batches of episodes from ``images [N, C, H, W]`` (uint8 in [0, 255] or
    float in [0, 1]) with class ``labels [N]``.

    ``prepare(rows)``, when given, maps the gathered rows of ``images`` to that form first
    (e.g. a resize done per batch instead of once for a large dataset).
    ``transform(x, generator)`` maps each sampled float batch ``[B, C, H, W]`` in [0, 1]
    to network inputs (normalisation, augmentation). ``sample(n_tasks, s)`` is a pure
    function of ``s``; without ``s`` it draws from the sampler's own generator, seeded
    with ``seed``, which advances."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor | np.ndarray,
        *,
        ways: int,
        shots: int,
        queries: int,
        transform: Transform | None = None,
        prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
        seed: int = 0,
    ):
        for name, value in (("ways", ways), ("shots", shots), ("queries", queries)):
            check_positive_int(name, value)
        labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        if labels.shape != (images.shape[0],):
            raise ValueError(f"need images [N, ...] and labels [N]; got {tuple(images.shape)} and "
                             f"{tuple(labels.shape)}")
        self.images, self.labels = images, labels
        self.ways, self.shots, self.queries = ways, shots, queries
        self.transform, self.prepare = transform, prepare
        self.classes, counts = torch.unique(labels, return_counts=True)
        if len(self.classes) < ways:
            raise ValueError(f"{ways}-way episodes need at least {ways} classes; the data has {len(self.classes)}")
        per_class = shots + queries
        if int(counts.min()) < per_class:
            worst = int(self.classes[counts.argmin()])
            raise ValueError(
                f"{shots}-shot {queries}-query episodes need {per_class} images per class; "
                f"class {worst} has only {int(counts.min())}"
            )
        order = torch.argsort(labels, stable=True)
        starts = torch.cumsum(counts, 0) - counts
        slot = torch.arange(int(counts.max()))
        valid = slot[None, :] < counts[:, None]
        self._index_table = torch.where(valid, order[(starts[:, None] + slot[None, :]).clamp(max=len(order) - 1)],
                                        torch.full_like(valid, -1, dtype=torch.long))
        self._valid = valid
        self._generator = torch.Generator().manual_seed(int(seed))

    @classmethod
    def from_images(
        cls,
        data: LabelledImages,
        *,
        ways: int,
        shots: int,
        queries: int,
        image_size: int | None = None,
        channels: int | None = None,
        transform: Transform | None = None,
        seed: int = 0,
    ) -> EpisodeSampler:
        """A sampler over :class:`LabelledImages` resized to ``image_size`` with ``channels``
        channels (uint8, see :func:`prepare_images`): once for all images, or per sampled
        batch when the data hold more than 512 MiB (the same result either way)."""
        raw = torch.from_numpy(data.images)
        if raw.numel() <= _PREPARE_ONCE_BYTES:
            store, prepare = prepare_images(raw, image_size=image_size, channels=channels), None
        else:
            store = raw

            def prepare(rows: torch.Tensor) -> torch.Tensor:
                return prepare_images(rows, image_size=image_size, channels=channels)

        return cls(store, data.labels, ways=ways, shots=shots, queries=queries, transform=transform,
                   prepare=prepare, seed=seed)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def sample_indices(self, n_tasks: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Image indices ``[T, ways*shots]`` (support) and ``[T, ways*queries]`` (query)."""
        check_positive_int("n_tasks", n_tasks)
        ways, per_class = self.ways, self.shots + self.queries
        chosen = torch.rand(n_tasks, self.n_classes, generator=generator).argsort(dim=1)[:, :ways]  # [T, ways]
        keys = torch.rand(n_tasks, ways, self._valid.shape[1], generator=generator)
        keys = keys.masked_fill(~self._valid[chosen], 2.0)  # padding slots sort last
        slots = keys.argsort(dim=2)[:, :, :per_class]  # [T, ways, shots+queries]
        picked = torch.gather(self._index_table[chosen], 2, slots)
        support = picked[:, :, :self.shots].transpose(1, 2).reshape(n_tasks, -1)
        query = picked[:, :, self.shots:].transpose(1, 2).reshape(n_tasks, -1)
        return support, query

    def sample(self, n_tasks: int, generator_or_seed: torch.Generator | int | None = None) -> TaskBatch:
        """``n_tasks`` episodes as a TaskBatch (inputs float32 after ``transform``)."""
        generator = self._generator if generator_or_seed is None else as_generator(generator_or_seed)
        support, query = self.sample_indices(n_tasks, generator)
        flat = torch.cat([support.flatten(), query.flatten()])
        x = self.images[flat]
        if self.prepare is not None:
            x = self.prepare(x)
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        if self.transform is not None:
            x = self.transform(x, generator)
        n_support = support.numel()
        shape = x.shape[1:]
        return TaskBatch(
            x[:n_support].reshape(n_tasks, -1, *shape),
            torch.arange(self.ways).repeat(self.shots).expand(n_tasks, -1).clone(),
            x[n_support:].reshape(n_tasks, -1, *shape),
            torch.arange(self.ways).repeat(self.queries).expand(n_tasks, -1).clone(),
            self.ways,
        )

    def sample_episodes(self, seeds: Sequence[int]) -> TaskBatch:
        """One episode per seed (episode ``i`` depends only on ``seeds[i]``), concatenated."""
        return concat_tasks([self.sample(1, int(s)) for s in seeds])
