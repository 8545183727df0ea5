"""Readers for the RFS / MetaOptNet files of miniImageNet and tieredImageNet.

miniImageNet: one Python-2 pickle per split, a dict with ``'data'`` (uint8
``[N, 84, 84, 3]``) and ``'labels'`` (N ints), plus ``'catname2label'`` /
``'label2catname'`` naming the classes. tieredImageNet: ``<split>_images.npz`` (key
``'images'``, uint8 ``[N, 84, 84, 3]``) beside ``<split>_labels.pkl`` (a dict with key
``'labels'``). Pickles are read with the restricted unpickler of :mod:`.safe_pickle`.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from metantk_plugin.data.errors import DatasetError
from metantk_plugin.data.images import LabelledImages
from metantk_plugin.data.safe_pickle import UnsafePickleError, safe_load

__all__ = ["MINI_IMAGENET_FILES", "TIERED_IMAGENET_SPLITS", "read_mini_imagenet", "read_tiered_imagenet"]

#: split -> file name; "train" holds the 64 base classes, "val"/"test" the 16/20 novel classes.
MINI_IMAGENET_FILES = {
    "train": "miniImageNet_category_split_train_phase_train.pickle",
    "train_phase_val": "miniImageNet_category_split_train_phase_val.pickle",
    "train_phase_test": "miniImageNet_category_split_train_phase_test.pickle",
    "train_phase_trainval": "miniImageNet_category_split_train_phase_trainval.pickle",
    "val": "miniImageNet_category_split_val.pickle",
    "test": "miniImageNet_category_split_test.pickle",
}
TIERED_IMAGENET_SPLITS = ("train", "val", "test", "trainval", "train_phase_val")


def read_mini_imagenet(root: str | Path, split: str = "train") -> LabelledImages:
    """One miniImageNet split (see :data:`MINI_IMAGENET_FILES`) from ``root`` or
    ``root/miniImageNet``. Labels are renumbered ``0..C-1`` in increasing raw-label order
    (the RFS ``label - min(label)`` when ids are contiguous); class names are the WordNet
    ids when the file names them."""
    if split not in MINI_IMAGENET_FILES:
        raise ValueError(f"unknown miniImageNet split {split!r}; expected one of {sorted(MINI_IMAGENET_FILES)}")
    path = _locate(Path(root), "miniImageNet", MINI_IMAGENET_FILES[split])
    content = _load_pickle(path)
    if not isinstance(content, dict):
        raise DatasetError(f"{path} holds a {type(content).__name__}; expected a dict with keys 'data' and 'labels'")
    content = {_text(k): v for k, v in content.items()}
    for key in ("data", "labels"):
        if key not in content:
            raise DatasetError(f"{path} has no key {key!r} (keys: {sorted(content)}); expected an RFS miniImageNet "
                               "pickle with 'data' (uint8 [N, 84, 84, 3]) and 'labels'")
    images = _check_images(content["data"], path, "'data'")
    raw = _check_labels(content["labels"], len(images), path)
    names = _mini_class_names(content)
    return _relabel(images, raw, names)


def read_tiered_imagenet(root: str | Path, split: str = "train") -> LabelledImages:
    """One tieredImageNet split from ``<split>_images.npz`` and ``<split>_labels.pkl`` in
    ``root`` or ``root/tieredImageNet``; labels renumbered ``0..C-1`` in raw-label order,
    class names the raw label ids."""
    if split not in TIERED_IMAGENET_SPLITS:
        raise ValueError(f"unknown tieredImageNet split {split!r}; expected one of {list(TIERED_IMAGENET_SPLITS)}")
    root = Path(root)
    png_release = [root / f"{split}_images_png.pkl", root / "tieredImageNet" / f"{split}_images_png.pkl"]
    image_path = _locate(root, "tieredImageNet", f"{split}_images.npz", also_seen=png_release)
    label_path = _locate(image_path.parent, "", f"{split}_labels.pkl")
    try:
        with np.load(image_path, allow_pickle=False) as archive:
            if "images" not in archive.files:
                raise DatasetError(f"{image_path} has arrays {archive.files}; expected 'images' (uint8 [N, 84, 84, 3])")
            images = _check_images(archive["images"], image_path, "'images'")
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        if isinstance(error, DatasetError):
            raise
        raise DatasetError(f"{image_path} is not a readable .npz of plain arrays ({error})") from None
    content = _load_pickle(label_path)
    if isinstance(content, dict):
        content = {_text(k): v for k, v in content.items()}
    if not isinstance(content, dict) or "labels" not in content:
        found = sorted(content) if isinstance(content, dict) else type(content).__name__
        raise DatasetError(f"{label_path} holds {found}; expected a dict with key 'labels' (the RFS format; the "
                           "original Ren et al. release with 'label_specific' is a different format)")
    raw = _check_labels(content["labels"], len(images), label_path)
    return _relabel(images, raw, None)


def _locate(root: Path, folder: str, name: str, also_seen: list[Path] | None = None) -> Path:
    candidates = [root / name] + ([root / folder / name] if folder else [])
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    where = " or ".join(str(c) for c in candidates)
    hint = ""
    if also_seen and any(p.is_file() for p in also_seen):
        hint = " (found *_images_png.pkl: that is the original Ren et al. release, not the RFS .npz format)"
    if not root.exists():
        raise DatasetError(f"dataset folder {root} does not exist; expected the file {name} at {where}")
    raise DatasetError(f"missing dataset file: expected {name} at {where}{hint}")


def _load_pickle(path: Path) -> Any:
    try:
        return safe_load(path, encoding="latin1")
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as error:
        raise DatasetError(f"{path} is not a readable pickle ({type(error).__name__}: {error})") from None


def _text(key: Any) -> Any:
    return key.decode("latin1") if isinstance(key, bytes) else key


def _check_images(images: Any, path: Path, what: str) -> np.ndarray:
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        got = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
        raise DatasetError(f"{path}: {what} is {got}; expected uint8 [N, H, W, 3]")
    return images


def _check_labels(labels: Any, n_images: int, path: Path) -> np.ndarray:
    array = np.asarray(labels)
    if array.shape != (n_images,) or not np.issubdtype(array.dtype, np.integer):
        raise DatasetError(f"{path}: labels are {array.dtype} {array.shape}; expected {n_images} integers, "
                           "one per image")
    return array.astype(np.int64)


def _mini_class_names(content: dict) -> dict[int, str] | None:
    if "catname2label" in content and isinstance(content["catname2label"], dict):
        return {int(label): str(_text(name)) for name, label in content["catname2label"].items()}
    return None


def _relabel(images: np.ndarray, raw: np.ndarray, names: dict[int, str] | None) -> LabelledImages:
    ids, labels = np.unique(raw, return_inverse=True)
    class_names = [names.get(int(i), str(int(i))) for i in ids] if names else [str(int(i)) for i in ids]
    return LabelledImages(images, labels.astype(np.int64), class_names)
