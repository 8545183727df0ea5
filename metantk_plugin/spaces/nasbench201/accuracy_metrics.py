"""Which NAS-Bench-201 accuracy: dataset, split and training schedule.

All accuracies are in percent, averaged over the training seeds of a cell. The split
names map to NAS-Bench-201's own protocol as follows:

==============  =======  ===================================================
dataset         split    NAS-Bench-201 run and evaluation set
==============  =======  ===================================================
cifar10         test     ``cifar10`` (trained on train+valid), ``ori-test``
cifar10         valid    ``cifar10-valid`` (trained on train), ``x-valid``
cifar100        test     ``cifar100``, ``x-test``
cifar100        valid    ``cifar100``, ``x-valid``
imagenet16-120  test     ``ImageNet16-120``, ``x-test``
imagenet16-120  valid    ``ImageNet16-120``, ``x-valid``
==============  =======  ===================================================

``epochs`` is the schedule: 200 (the full one) or 12 (NAS-Bench-201's short ``hp=12``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DATASETS", "EPOCHS", "SPLITS", "Metric", "all_metrics", "metric"]

DATASETS = ("cifar10", "cifar100", "imagenet16-120")
SPLITS = ("valid", "test")
EPOCHS = (12, 200)


@dataclass(frozen=True)
class Metric:
    """One accuracy of the benchmark; build it with :func:`metric`, which validates."""

    dataset: str
    split: str
    epochs: int

    @property
    def name(self) -> str:
        """Column name used in tables, e.g. ``'cifar100_valid_12ep'``."""
        return f"{self.dataset}_{self.split}_{self.epochs}ep"

    def __str__(self) -> str:
        return f"{self.dataset} {self.split} accuracy after {self.epochs} epochs"


def metric(dataset: str = "cifar10", split: str = "test", epochs: int = 200) -> Metric:
    """A validated :class:`Metric`; ``dataset`` is case-insensitive (``'ImageNet16-120'`` works)."""
    if not isinstance(dataset, str) or dataset.lower() not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if isinstance(epochs, str) and epochs.isascii() and epochs.isdigit():
        epochs = int(epochs)
    if isinstance(epochs, bool) or epochs not in EPOCHS:
        raise ValueError(f"unknown schedule epochs={epochs!r}; expected one of {', '.join(map(str, EPOCHS))}")
    return Metric(dataset.lower(), split, int(epochs))


def all_metrics() -> tuple[Metric, ...]:
    """Every (dataset, split, epochs) combination NAS-Bench-201 defines."""
    return tuple(Metric(d, s, e) for e in reversed(EPOCHS) for d in DATASETS for s in SPLITS)
