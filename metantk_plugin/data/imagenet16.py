"""ImageNet16-120 (NAS-Bench-201) from the official downsampled-ImageNet 16x16 pickle batches.

Files (Chrabaszcz et al. 2017, ``Imagenet16_train.zip`` / ``Imagenet16_val.zip``):
``train_data_batch_1`` .. ``train_data_batch_10`` and ``val_data``, each a pickled dict
in CIFAR's batch format with ``data`` uint8 ``[n, 768]`` (3 channel planes of 16 x 16)
and ``labels``, 1-based ImageNet class numbers 1..1000. ImageNet16-``k`` keeps the
images whose label is in 1..``k`` (k = 120 for NAS-Bench-201) and, as NAS-Bench-201's
loader does, returns class ids ``label - 1`` in 0..k-1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from metantk_plugin.data.cifar import read_pickle_batch
from metantk_plugin.data.errors import DatasetError
from metantk_plugin.data.images import LabelledImages

__all__ = ["IMAGENET16_FILES", "read_imagenet16"]

IMAGENET16_FILES = {
    "train": tuple(f"train_data_batch_{i}" for i in range(1, 11)),
    "val": ("val_data",),
}
_SIDE = 16
_IMAGENET_CLASSES = 1000
_FOLDERS = {"train": "Imagenet16_train", "val": "Imagenet16_val"}


def read_imagenet16(root: str | Path, split: str = "train", classes: int = 120) -> LabelledImages:
    """Images ``[n, 16, 16, 3]`` uint8 and labels 0..classes-1 of ImageNet16-``classes``.

    ``root`` holds the batch files directly, or in ``ImageNet16/`` or the folder the
    official zip extracts to (``Imagenet16_train/``, ``Imagenet16_val/``); ``split`` is
    ``'train'`` or ``'val'``."""
    if split not in IMAGENET16_FILES:
        raise ValueError(f"unknown ImageNet16 split {split!r}; expected one of {', '.join(IMAGENET16_FILES)}")
    if isinstance(classes, bool) or not isinstance(classes, int) or not 1 <= classes <= _IMAGENET_CLASSES:
        raise ValueError(f"classes must be an int in 1..{_IMAGENET_CLASSES} (120 for ImageNet16-120), got {classes!r}")
    folder = _locate(Path(root), split)
    images, labels = [], []
    for file_name in IMAGENET16_FILES[split]:
        path = folder / file_name
        batch_images, batch_labels = read_pickle_batch(
            path, label_key="labels", side=_SIDE, what="a downsampled-ImageNet 16x16 batch"
        )
        if batch_labels.size and (batch_labels.min() < 1 or batch_labels.max() > _IMAGENET_CLASSES):
            raise DatasetError(
                f"{path}: labels must be 1-based ImageNet classes 1..{_IMAGENET_CLASSES}, "
                f"got {batch_labels.min()}..{batch_labels.max()}"
            )
        keep = batch_labels <= classes
        images.append(batch_images[keep])
        labels.append(batch_labels[keep] - 1)
    return LabelledImages(np.concatenate(images), np.concatenate(labels))


def _locate(root: Path, split: str) -> Path:
    files = IMAGENET16_FILES[split]
    candidates = (root, root / "ImageNet16", root / _FOLDERS[split])
    for folder in candidates:
        if folder.is_dir() and all((folder / f).is_file() for f in files):
            return folder
    missing = [f for f in files if not (root / f).is_file()]
    raise DatasetError(
        f"ImageNet16 {split} split: expected the file(s) {', '.join(files)} in one of "
        f"{', '.join(str(c) for c in candidates)}; missing in {root}: {', '.join(missing)}"
    )
