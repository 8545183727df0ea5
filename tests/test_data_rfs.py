from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from metantk_plugin.data.errors import DatasetError
from metantk_plugin.data.omniglot import read_omniglot
from metantk_plugin.data.rfs import MINI_IMAGENET_FILES, read_mini_imagenet, read_tiered_imagenet
from metantk_plugin.data.safe_pickle import UnsafePickleError
from metantk_plugin.data.splits import select_classes
from metantk_plugin.data.transforms import prepare_images


class _Py2Pickler(pickle._Pickler):
    """Protocol 2 with Python 2's ``str`` opcodes (SHORT_BINSTRING / BINSTRING) for both
    ``bytes`` and ``str``, as Python 2 wrote its byte strings."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj):
        data = obj if isinstance(obj, bytes) else obj.encode("latin1")
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str
    dispatch[str] = _save_py2_str


def py2_pickle_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def write_mini_imagenet(folder: Path, split_file: str, images: np.ndarray, labels: list[int],
                        names: dict[str, int]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / split_file
    path.write_bytes(py2_pickle_bytes({"data": images, "labels": labels, "catname2label": names}))
    return path


def write_tiered_imagenet(folder: Path, split: str, images: np.ndarray, labels: list[int]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / f"{split}_images.npz", images=images)
    with open(folder / f"{split}_labels.pkl", "wb") as handle:
        pickle.dump({"labels": labels}, handle, protocol=2)


@pytest.fixture(scope="module")
def rgb_images(shared_data):
    """Real images in the RFS shape: Omniglot characters, resized to 84 x 84, 3 channels,
    6 classes x 20 images."""
    data = select_classes(read_omniglot(shared_data / "fewshot" / "omniglot"), list(range(6)))
    images = prepare_images(torch.from_numpy(data.images), image_size=84, channels=3)
    return images.permute(0, 2, 3, 1).contiguous().numpy(), data.labels


def test_mini_imagenet_pickle_reads_back_exactly(tmp_path, rgb_images):
    images, labels = rgb_images
    raw = [int(label) + 64 for label in labels]  # novel-class ids need not start at 0
    names = {f"n0{4000 + i}": 64 + i for i in range(6)}
    write_mini_imagenet(tmp_path / "miniImageNet", MINI_IMAGENET_FILES["test"], images, raw, names)
    data = read_mini_imagenet(tmp_path, "test")  # the parent folder works as root too
    assert data.images.dtype == np.uint8 and np.array_equal(data.images, images)
    assert np.array_equal(data.labels, labels) and data.labels.dtype == np.int64
    assert data.class_names == [f"n0{4000 + i}" for i in range(6)]


def test_tiered_imagenet_files_read_back_exactly(tmp_path, rgb_images):
    images, labels = rgb_images
    raw = [int(label) * 3 + 10 for label in labels]  # sparse raw ids are renumbered in order
    write_tiered_imagenet(tmp_path, "val", images, raw)
    data = read_tiered_imagenet(tmp_path, "val")
    assert np.array_equal(data.images, images) and np.array_equal(data.labels, labels)
    assert data.class_names == [str(10 + 3 * c) for c in range(6)]


def test_missing_file_names_what_was_expected_where(tmp_path):
    with pytest.raises(DatasetError) as error:
        read_mini_imagenet(tmp_path, "val")
    message = str(error.value)
    assert "miniImageNet_category_split_val.pickle" in message and str(tmp_path / "miniImageNet") in message
    with pytest.raises(DatasetError, match="does not exist"):
        read_tiered_imagenet(tmp_path / "nowhere", "train")
    (tmp_path / "train_images_png.pkl").write_bytes(b"")
    with pytest.raises(DatasetError, match="Ren et al"):
        read_tiered_imagenet(tmp_path, "train")


def test_malformed_files_are_explained(tmp_path, rgb_images):
    images, labels = rgb_images
    folder = tmp_path / "mini"
    folder.mkdir()
    (folder / MINI_IMAGENET_FILES["train"]).write_bytes(pickle.dumps({"images": images}, protocol=2))
    with pytest.raises(DatasetError, match="no key 'data'"):
        read_mini_imagenet(folder, "train")
    (folder / MINI_IMAGENET_FILES["val"]).write_bytes(pickle.dumps({"data": images, "labels": [0, 1]}))
    with pytest.raises(DatasetError, match=f"expected {len(images)} integers"):
        read_mini_imagenet(folder, "val")
    (folder / MINI_IMAGENET_FILES["test"]).write_bytes(b"not a pickle at all")
    with pytest.raises(DatasetError, match="not a readable pickle"):
        read_mini_imagenet(folder, "test")
    np.savez(tmp_path / "test_images.npz", images=images.astype(np.float32))
    (tmp_path / "test_labels.pkl").write_bytes(pickle.dumps({"labels": labels.tolist()}))
    with pytest.raises(DatasetError, match="expected uint8"):
        read_tiered_imagenet(tmp_path, "test")
    with pytest.raises(ValueError, match="unknown miniImageNet split"):
        read_mini_imagenet(folder, "validation")


def test_a_label_pickle_that_runs_code_is_refused(tmp_path, rgb_images):
    images, labels = rgb_images
    np.savez(tmp_path / "train_images.npz", images=images)
    payload = b"\x80\x02cposix\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03."
    (tmp_path / "train_labels.pkl").write_bytes(payload)
    with pytest.raises(UnsafePickleError, match="posix.system"):
        read_tiered_imagenet(tmp_path, "train")
