"""The in-memory form every dataset reader returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["LabelledImages"]


@dataclass(frozen=True)
class LabelledImages:
    """``images``: uint8 ``[N, H, W, C]`` (C = 1 or 3); ``labels``: int64 ``[N]`` class ids;
    ``class_names``: optional names indexed by class id."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.images, np.ndarray) or self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError(
                "images must be a uint8 array [N, H, W, C]; got "
                f"{getattr(self.images, 'dtype', type(self.images).__name__)} {getattr(self.images, 'shape', '')}"
            )
        if self.images.shape[-1] not in (1, 3):
            raise ValueError(f"images must have 1 or 3 channels last, got shape {self.images.shape}")
        labels = np.asarray(self.labels)
        if labels.shape != (self.images.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be {self.images.shape[0]} integers, got {labels.dtype} {labels.shape}")
        object.__setattr__(self, "labels", labels.astype(np.int64, copy=False))

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def classes(self) -> np.ndarray:
        """The distinct class ids, sorted."""
        return np.unique(self.labels)
