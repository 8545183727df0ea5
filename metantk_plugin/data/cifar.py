"""CIFAR-10 and CIFAR-100 from the official "python version" pickle batches.

Layout (what ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz`` extract to):
``cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}`` and
``cifar-100-python/{train, test, meta}``. Each batch is a pickled dict with ``data``,
uint8 ``[n, 3072]`` (per image the 1024 red, 1024 green, then 1024 blue values of the
32 x 32 image in row-major order), and ``labels`` (CIFAR-10) or ``fine_labels``
(CIFAR-100, 100 classes). The meta file gives the class names. Batches are unpickled
with the restricted unpickler (numpy arrays and builtin containers only).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metantk_plugin.data.errors import DatasetError
from metantk_plugin.data.images import LabelledImages
from metantk_plugin.data.safe_pickle import safe_load

__all__ = ["CIFAR_NAMES", "read_cifar", "read_pickle_batch"]

CIFAR_NAMES = ("cifar10", "cifar100")
_SIDE = 32


@dataclass(frozen=True)
class _Layout:
    title: str
    folder: str
    archive: str
    files: dict
    label_key: str
    meta_file: str
    names_key: str
    classes: int


_LAYOUTS = {
    "cifar10": _Layout(
        "CIFAR-10", "cifar-10-batches-py", "cifar-10-python.tar.gz",
        {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
        "labels", "batches.meta", "label_names", 10,
    ),
    "cifar100": _Layout(
        "CIFAR-100", "cifar-100-python", "cifar-100-python.tar.gz",
        {"train": ("train",), "test": ("test",)},
        "fine_labels", "meta", "fine_label_names", 100,
    ),
}


def read_cifar(root: str | Path, name: str = "cifar10", split: str = "train") -> LabelledImages:
    """Images ``[n, 32, 32, 3]`` uint8 and labels of one CIFAR split.

    ``root`` is the extracted folder (``cifar-10-batches-py``) or the folder holding it;
    ``name`` is ``'cifar10'`` or ``'cifar100'`` (fine labels); ``split`` is ``'train'``
    (50,000 images) or ``'test'`` (10,000)."""
    if name not in _LAYOUTS:
        raise ValueError(f"unknown CIFAR name {name!r}; expected one of {', '.join(CIFAR_NAMES)}")
    layout = _LAYOUTS[name]
    if split not in layout.files:
        raise ValueError(f"unknown CIFAR split {split!r}; expected one of {', '.join(layout.files)}")
    folder = _locate(Path(root), layout, split)
    images, labels = [], []
    for file_name in layout.files[split]:
        batch_images, batch_labels = _read_batch(folder / file_name, layout)
        images.append(batch_images)
        labels.append(batch_labels)
    return LabelledImages(np.concatenate(images), np.concatenate(labels), _class_names(folder, layout))


def _locate(root: Path, layout: _Layout, split: str) -> Path:
    """The folder holding the split's batch files: ``root/<folder>`` or ``root`` itself."""
    files = layout.files[split]
    for folder in (root / layout.folder, root):
        if folder.is_dir() and all((folder / f).is_file() for f in files):
            return folder
    folder = root / layout.folder if (root / layout.folder).is_dir() else root
    missing = [f for f in files if not (folder / f).is_file()]
    raise DatasetError(
        f"{layout.title} {split} split: expected the file(s) {', '.join(files)} in {root / layout.folder} "
        f"(the folder {layout.archive} extracts to) or in {root}; missing in {folder}: {', '.join(missing)}"
    )


def _read_batch(path: Path, layout: _Layout) -> tuple[np.ndarray, np.ndarray]:
    what = f"a {layout.title} python batch"
    images, labels = read_pickle_batch(path, label_key=layout.label_key, side=_SIDE, what=what)
    if labels.size and (labels.min() < 0 or labels.max() >= layout.classes):
        raise DatasetError(f"{path}: labels must lie in 0..{layout.classes - 1}, got {labels.min()}..{labels.max()}")
    return images, labels


def read_pickle_batch(path: str | Path, *, label_key: str, side: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """One batch in CIFAR's pickle format (also used by downsampled ImageNet): a dict with
    ``data`` uint8 ``[n, 3 * side * side]`` (channel planes, row-major) and ``label_key``
    (n integers). Returns images uint8 ``[n, side, side, 3]`` and labels int64 ``[n]``
    unchanged; ``what`` names the format in error messages."""
    path = Path(path)
    entry = _load_dict(path, what)
    data = entry.get("data")
    width = 3 * side * side
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != width:
        raise DatasetError(
            f"{path}: 'data' must be a uint8 array [n, {width}], got "
            f"{getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}"
        )
    labels = _labels(entry, label_key, path, len(data))
    images = data.reshape(-1, 3, side, side).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _class_names(folder: Path, layout: _Layout) -> list[str]:
    """Class names from the meta file; an empty list if there is none."""
    path = folder / layout.meta_file
    if not path.is_file():
        return []
    names = _load_dict(path, f"a {layout.title} meta file").get(layout.names_key)
    if not isinstance(names, (list, tuple)) or len(names) != layout.classes:
        raise DatasetError(f"{path}: '{layout.names_key}' must list {layout.classes} class names")
    return [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names]


def _load_dict(path: Path, what: str) -> dict:
    """Unpickle ``path`` safely into a dict with ``str`` keys (Python-2 byte keys decoded)."""
    try:
        entry = safe_load(path)
    except Exception as error:  # a truncated or foreign file fails in many ways; all mean "not this format"
        raise DatasetError(f"{path} is not {what}: {type(error).__name__}: {error}") from error
    if not isinstance(entry, dict):
        raise DatasetError(f"{path} is not {what}: it holds a {type(entry).__name__}, expected a dict")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in entry.items()}


def _labels(entry: dict, key: str, path: Path, count: int) -> np.ndarray:
    if key not in entry:
        raise DatasetError(f"{path}: missing the key '{key}' (found {', '.join(map(str, entry))})")
    labels = np.asarray(entry[key])
    if labels.shape != (count,) or not np.issubdtype(labels.dtype, np.integer):
        raise DatasetError(f"{path}: '{key}' must hold {count} integer labels, got {labels.dtype} {labels.shape}")
    return labels.astype(np.int64)
