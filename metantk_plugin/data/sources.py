"""Data specs (``'omniglot:PATH'``, ``'mini-imagenet:PATH'``, ..., ``'synthetic'``) and the
task samplers every command builds from them.

Class splits: miniImageNet and tieredImageNet use their own split files; Omniglot's
classes are split by name (sorted, ``random.Random(0).shuffle``, then meta-train /
meta-val / meta-test in the proportions 162 / 40 / 40 of the 242 classes of the two small
background zips); CIFAR and ImageNet16 tasks come from the classes of the chosen file split.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import torch

from metantk_plugin.data.episodes import EpisodeSampler, as_generator
from metantk_plugin.data.errors import DatasetError
from metantk_plugin.data.images import LabelledImages
from metantk_plugin.data.splits import select_classes, shuffled_class_split, split_counts
from metantk_plugin.data.transforms import ColorJitter, Compose, Invert, Normalize, RandomCrop, RandomHorizontalFlip
from metantk_plugin.task_spec import TaskSampler, TaskSpec
from metantk_plugin.tasks import TaskBatch, check_sizes, synthetic_tasks

__all__ = [
    "DATA_KINDS",
    "DataSpec",
    "SyntheticTaskSampler",
    "input_transform",
    "load_split",
    "parse_data_spec",
    "task_sampler_from_spec",
    "training_transform",
]


@dataclass(frozen=True)
class _Kind:
    splits: tuple[str, ...]
    channels: int
    image_size: int
    mean: tuple[float, ...] | None  # None: no normalisation (images stay in [0, 1])
    std: tuple[float, ...] | None
    invert: bool = False


def _per255(values: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(v / 255.0 for v in values)


_RFS_MEAN, _RFS_STD = _per255((120.39586422, 115.59361427, 104.54012653)), _per255((70.68188272, 68.27635443,
                                                                                   72.54505529))
_KINDS: dict[str, _Kind] = {
    "omniglot": _Kind(("train", "val", "test"), 1, 28, None, None, invert=True),
    "mini-imagenet": _Kind(("train", "val", "test", "train_phase_val", "train_phase_test", "train_phase_trainval"),
                           3, 84, _RFS_MEAN, _RFS_STD),
    "tiered-imagenet": _Kind(("train", "val", "test", "trainval", "train_phase_val"), 3, 84, _RFS_MEAN, _RFS_STD),
    # NAS-Bench-201's normalisation constants for CIFAR and ImageNet16-120
    "cifar10": _Kind(("train", "test"), 3, 32, _per255((125.3, 123.0, 113.9)), _per255((63.0, 62.1, 66.7))),
    "cifar100": _Kind(("train", "test"), 3, 32, _per255((129.3, 124.1, 112.4)), _per255((68.2, 65.4, 70.4))),
    "imagenet16": _Kind(("train", "val"), 3, 16, _per255((122.68, 116.66, 104.01)), _per255((63.22, 61.26, 65.09))),
    "synthetic": _Kind(("train", "val", "test"), 3, 32, None, None),
}
DATA_KINDS = tuple(_KINDS)
_TASKS = TaskSpec()
_OMNIGLOT_HELD_OUT = (40 / 242, 40 / 242)  # meta-val, meta-test fractions; meta-train is the rest
_USAGE = ("expected 'omniglot:PATH', 'mini-imagenet:PATH', 'tiered-imagenet:PATH', 'cifar10:PATH', "
          "'cifar100:PATH', 'imagenet16:PATH' or 'synthetic'")


@dataclass(frozen=True)
class DataSpec:
    """A dataset kind and, except for ``synthetic``, the path it is read from."""

    kind: str
    path: Path | None = None

    def __str__(self) -> str:
        return self.kind if self.path is None else f"{self.kind}:{self.path}"

    @property
    def channels(self) -> int:
        """Channels of the images as stored."""
        return _KINDS[self.kind].channels

    @property
    def image_size(self) -> int:
        """The usual input size for this data (Omniglot 28, mini/tiered 84, CIFAR 32, ImageNet16 16)."""
        return _KINDS[self.kind].image_size

    @property
    def splits(self) -> tuple[str, ...]:
        return _KINDS[self.kind].splits


def parse_data_spec(text: str | DataSpec) -> DataSpec:
    """``'KIND:PATH'`` or ``'synthetic'`` -> :class:`DataSpec`; the path must exist."""
    if isinstance(text, DataSpec):
        return text
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"empty data spec {text!r}; {_USAGE}")
    kind, sep, path = text.strip().partition(":")
    kind = kind.lower()
    if kind not in _KINDS:
        raise ValueError(f"unknown data kind {kind!r} in {text!r}; {_USAGE}")
    if kind == "synthetic":
        if sep:
            raise ValueError(f"'synthetic' takes no path, got {text!r}")
        return DataSpec("synthetic")
    if not path:
        raise ValueError(f"data spec {text!r} has no path; {_USAGE}")
    location = Path(path).expanduser()
    if not location.exists():
        raise DatasetError(f"{kind} data path {location} does not exist (from data spec {text!r})")
    return DataSpec(kind, location)


def load_split(spec: str | DataSpec, split: str = "train") -> LabelledImages:
    """The images of one split of a dataset (not available for ``synthetic``)."""
    spec = parse_data_spec(spec)
    kind = _KINDS[spec.kind]
    if spec.kind == "synthetic":
        raise ValueError("'synthetic' data has no images to load; use task_sampler_from_spec")
    if split not in kind.splits:
        raise ValueError(f"{spec.kind} has no split {split!r}; expected one of {list(kind.splits)}")
    if spec.kind == "omniglot":
        from metantk_plugin.data.omniglot import read_omniglot

        data = read_omniglot(spec.path)
        counts = split_counts(len(data.class_names), _OMNIGLOT_HELD_OUT)
        train, val, test = shuffled_class_split(data.class_names, [len(data.class_names) - sum(counts), *counts])
        return select_classes(data, {"train": train, "val": val, "test": test}[split])
    if spec.kind == "mini-imagenet":
        from metantk_plugin.data.rfs import read_mini_imagenet

        return read_mini_imagenet(spec.path, split)
    if spec.kind == "tiered-imagenet":
        from metantk_plugin.data.rfs import read_tiered_imagenet

        return read_tiered_imagenet(spec.path, split)
    if spec.kind in ("cifar10", "cifar100"):
        return importlib.import_module("metantk_plugin.data.cifar").read_cifar(spec.path, name=spec.kind, split=split)
    return importlib.import_module("metantk_plugin.data.imagenet16").read_imagenet16(spec.path, split=split,
                                                                                      classes=120)


def input_transform(spec: str | DataSpec, channels: int | None = None) -> Compose:
    """The deterministic map from [0, 1] images to network inputs for this data: Omniglot
    is inverted (strokes 1 on 0), the others are normalised per channel with the usual
    constants (averaged to one value when ``channels`` is 1)."""
    spec = parse_data_spec(spec)
    kind = _KINDS[spec.kind]
    steps: list = [Invert()] if kind.invert else []
    if kind.mean is not None and kind.std is not None:
        mean, std = kind.mean, kind.std
        if channels == 1:
            mean, std = (sum(mean) / len(mean),), (sum(std) / len(std),)
        steps.append(Normalize(mean, std))
    return Compose(steps)


def training_transform(spec: str | DataSpec, image_size: int, channels: int | None = None) -> Compose:
    """:func:`input_transform` preceded by RFS-style augmentation: a random crop with zero
    padding of ``image_size * 8 / 84`` pixels (8 at 84 x 84), and for natural images a
    colour jitter of 0.4 (brightness, contrast, saturation) and a random horizontal flip."""
    spec = parse_data_spec(spec)
    steps: list = [RandomCrop(image_size, padding=max(1, round(image_size * 8 / 84)))]
    if spec.kind not in ("omniglot", "synthetic"):
        steps += [ColorJitter(0.4, 0.4, 0.4), RandomHorizontalFlip()]
    return Compose(steps + input_transform(spec, channels).transforms)


class SyntheticTaskSampler:
    """Class-structured Gaussian tasks (:func:`metantk_plugin.tasks.synthetic_tasks`): a
    :class:`~metantk_plugin.task_spec.TaskSampler`, as :class:`EpisodeSampler` is."""

    def __init__(self, *, ways: int, shots: int, queries: int, image_size: int, channels: int, seed: int = 0):
        check_sizes(ways=ways, shots=shots, queries=queries, image_size=image_size, channels=channels)
        self.ways, self.shots, self.queries = ways, shots, queries
        self.image_size, self.channels = image_size, channels
        self._generator = torch.Generator().manual_seed(int(seed))

    def sample(self, n_tasks: int, generator_or_seed: torch.Generator | int | None = None) -> TaskBatch:
        generator = self._generator if generator_or_seed is None else as_generator(generator_or_seed)
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        return synthetic_tasks(n_tasks, self.ways, self.shots, self.queries, self.image_size, self.channels, seed)


def task_sampler_from_spec(
    spec: str | DataSpec,
    *,
    split: str = "train",
    image_size: int = _TASKS.image_size,
    channels: int = _TASKS.image_channels,
    ways: int = _TASKS.ways,
    shots: int = _TASKS.shots,
    queries: int = _TASKS.queries,
    seed: int = 0,
) -> TaskSampler:
    """A sampler (:class:`EpisodeSampler` or :class:`SyntheticTaskSampler`) whose
    ``.sample(n_tasks, generator_or_seed)`` returns a TaskBatch of ``ways``-way
    ``shots``-shot ``queries``-query tasks with inputs ``[channels, image_size, image_size]``
    from one split of the data (resized once with antialiasing, then normalised; see
    :func:`input_transform`). The defaults are those of :class:`~metantk_plugin.task_spec.TaskSpec`."""
    spec = parse_data_spec(spec)
    if spec.kind == "synthetic":
        return SyntheticTaskSampler(ways=ways, shots=shots, queries=queries, image_size=image_size,
                                    channels=channels, seed=seed)
    data = load_split(spec, split)
    return EpisodeSampler.from_images(data, ways=ways, shots=shots, queries=queries, image_size=image_size,
                                      channels=channels, transform=input_transform(spec, channels), seed=seed)
