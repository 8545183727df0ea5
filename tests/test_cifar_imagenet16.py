"""CIFAR-10/100 and ImageNet16 readers on small files written in the real formats: the
CIFAR batches as Python 2 protocol-2 pickles exactly as the official archives store them
(byte strings, arrays through ``numpy.core.multiarray._reconstruct``), ImageNet16 batches
both that way and as Python 3 pickles."""

from __future__ import annotations

import pickle
import struct

import numpy as np
import pytest

from metantk_plugin.data.cifar import read_cifar
from metantk_plugin.data.errors import DatasetError
from metantk_plugin.data.imagenet16 import read_imagenet16


def _python2_pickle(obj) -> bytes:
    """Protocol-2 pickle as Python 2 with numpy 1 writes it (py2 ``str`` for all strings)."""
    out = bytearray(b"\x80\x02")

    def string(raw: bytes) -> None:
        out.extend(b"U" + bytes([len(raw)]) + raw if len(raw) < 256 else b"T" + struct.pack("<i", len(raw)) + raw)

    def write(value) -> None:
        if isinstance(value, dict):
            out.extend(b"}(")
            for key, item in value.items():
                write(key)
                write(item)
            out.extend(b"u")
        elif isinstance(value, list):
            out.extend(b"](")
            for item in value:
                write(item)
            out.extend(b"e")
        elif isinstance(value, tuple):
            out.extend(b"(")
            for item in value:
                write(item)
            out.extend(b"t")
        elif value is None:
            out.extend(b"N")
        elif isinstance(value, bool):
            out.extend(b"\x88" if value else b"\x89")
        elif isinstance(value, int):
            out.extend(b"K" + bytes([value]) if 0 <= value < 256 else b"J" + struct.pack("<i", value))
        elif isinstance(value, (str, bytes)):
            string(value.encode("latin1") if isinstance(value, str) else value)
        elif isinstance(value, np.ndarray):
            out.extend(b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n")
            write((0,))
            string(b"b")
            out.extend(b"\x87R(")  # TUPLE3, REDUCE, then the BUILD state (1, shape, dtype, fortran, raw)
            write(1)
            write(tuple(value.shape))
            out.extend(b"cnumpy\ndtype\n")
            write((value.dtype.str[1:], 0, 1))
            out.extend(b"R")
            write((3, value.dtype.str[0], None, None, None, -1, -1, 0))
            out.extend(b"b\x89")
            string(value.tobytes())
            out.extend(b"tb")
        else:
            raise TypeError(type(value))

    write(obj)
    out.extend(b".")
    return bytes(out)


def _rows(images: np.ndarray) -> np.ndarray:
    """[n, H, W, 3] -> the batch layout [n, 3*H*W]: red plane, green plane, blue plane."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1)


def _images(n: int, side: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, side, side, 3), dtype=np.uint8)


def test_python2_writer_is_what_pickle_reads():
    batch = {"data": np.arange(12, dtype=np.uint8).reshape(2, 6), "labels": [3, 300], "name": "x"}
    loaded = pickle.loads(_python2_pickle(batch), encoding="latin1")
    assert loaded["labels"] == [3, 300] and loaded["name"] == "x"
    np.testing.assert_array_equal(loaded["data"], batch["data"])
    assert b"cnumpy.core.multiarray\n_reconstruct" in _python2_pickle(batch)


@pytest.fixture
def cifar10_root(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    truth = {}
    for k, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        images = _images(3, 32, seed=k)
        labels = [(k + j) % 10 for j in range(3)]
        truth[name] = (images, labels)
        batch = {"batch_label": f"training batch {k} of 5", "labels": labels, "data": _rows(images),
                 "filenames": [f"img_{k}_{j}.png" for j in range(3)]}
        (folder / name).write_bytes(_python2_pickle(batch))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (folder / "batches.meta").write_bytes(
        _python2_pickle({"num_cases_per_batch": 10000, "label_names": names, "num_vis": 3072}))
    return tmp_path, truth


def test_cifar10_train_and_test(cifar10_root):
    root, truth = cifar10_root
    train = read_cifar(root, "cifar10", "train")
    assert train.images.shape == (15, 32, 32, 3) and train.images.dtype == np.uint8
    np.testing.assert_array_equal(train.images[:3], truth["data_batch_1"][0])
    np.testing.assert_array_equal(train.images[12:], truth["data_batch_5"][0])
    assert train.labels.tolist() == sum((truth[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    assert train.class_names[0] == "airplane" and len(train.class_names) == 10
    test = read_cifar(root / "cifar-10-batches-py", "cifar10", "test")  # the extracted folder itself works too
    np.testing.assert_array_equal(test.images, truth["test_batch"][0])


def test_cifar_pixel_layout_is_channel_planes_in_row_major_order(tmp_path):
    data = np.zeros((1, 3072), dtype=np.uint8)
    data[0, 0], data[0, 1024], data[0, 2048] = 200, 100, 50  # red, green, blue of pixel (0, 0)
    data[0, 1], data[0, 32] = 7, 9  # red of pixel (0, 1) and of pixel (1, 0)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for split in ("train", "test"):
        batch = {"filenames": ["a.png"], "batch_label": split, "fine_labels": [99], "coarse_labels": [19], "data": data}
        (folder / split).write_bytes(_python2_pickle(batch))
    images = read_cifar(tmp_path, "cifar100", "test")
    assert images.images[0, 0, 0].tolist() == [200, 100, 50]
    assert images.images[0, 0, 1, 0] == 7 and images.images[0, 1, 0, 0] == 9
    assert images.labels.tolist() == [99] and images.class_names == []  # no meta file: no names


def test_missing_and_malformed_cifar_files_give_one_clear_message(cifar10_root, tmp_path):
    root, _ = cifar10_root
    (root / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetError, match="expected the file.*data_batch_1.*missing in .*: data_batch_3"):
        read_cifar(root, "cifar10", "train")
    (root / "cifar-10-batches-py" / "test_batch").write_bytes(b"\x80\x02}q\x00(U")  # truncated
    with pytest.raises(DatasetError, match="test_batch is not a CIFAR-10 python batch"):
        read_cifar(root, "cifar10", "test")
    (root / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({"data": np.zeros((2, 10), np.uint8)}))
    with pytest.raises(DatasetError, match=r"'data' must be a uint8 array \[n, 3072\]"):
        read_cifar(root, "cifar10", "test")
    (root / "cifar-10-batches-py" / "test_batch").write_bytes(
        _python2_pickle({"data": np.zeros((1, 3072), np.uint8), "labels": [10]}))
    with pytest.raises(DatasetError, match=r"labels must lie in 0..9, got 10..10"):
        read_cifar(root, "cifar10", "test")
    with pytest.raises(ValueError, match="unknown CIFAR name 'cifar1000'"):
        read_cifar(root, "cifar1000")
    with pytest.raises(ValueError, match="unknown CIFAR split 'valid'"):
        read_cifar(root, "cifar10", "valid")
    with pytest.raises(DatasetError, match="cifar-100-python.tar.gz"):
        read_cifar(tmp_path / "nowhere", "cifar100", "train")


def test_pickles_that_ask_for_other_globals_are_refused(cifar10_root):
    root, _ = cifar10_root

    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    (root / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({"data": Evil(), "labels": []}))
    with pytest.raises(DatasetError, match="builtins.print"):
        read_cifar(root, "cifar10", "test")


@pytest.fixture
def imagenet16_root(tmp_path):
    rng = np.random.default_rng(0)
    truth = {}
    for k, name in enumerate([f"train_data_batch_{i}" for i in range(1, 11)] + ["val_data"]):
        images = _images(4, 16, seed=100 + k)
        labels = [int(x) for x in rng.choice([1, 2, 120, 121, 500, 1000], size=4)]
        truth[name] = (images, labels)
        batch = {"data": _rows(images), "labels": labels}
        if name != "val_data":
            batch["mean"] = np.zeros(768, dtype=np.float64)
        # the first batches as Python 2 pickles, the others as Python 3 ones: both occur
        blob = _python2_pickle(batch) if k < 5 else pickle.dumps(batch, protocol=2 if k < 8 else 4)
        (tmp_path / name).write_bytes(blob)
    return tmp_path, truth


def test_imagenet16_keeps_classes_1_to_k_as_0_based_ids(imagenet16_root):
    root, truth = imagenet16_root
    train = read_imagenet16(root, "train", classes=120)
    keep = [(img, lab) for i in range(1, 11) for img, lab in zip(*truth[f"train_data_batch_{i}"]) if lab <= 120]
    assert train.images.shape == (len(keep), 16, 16, 3)
    np.testing.assert_array_equal(train.images, np.stack([img for img, _ in keep]))
    assert train.labels.tolist() == [lab - 1 for _, lab in keep]
    assert set(train.labels.tolist()) <= {0, 1, 119}
    val = read_imagenet16(root, "val", classes=1000)
    np.testing.assert_array_equal(val.images, truth["val_data"][0])
    assert val.labels.tolist() == [lab - 1 for lab in truth["val_data"][1]]


def test_imagenet16_errors(imagenet16_root, tmp_path_factory):
    root, _ = imagenet16_root
    (root / "train_data_batch_7").unlink()
    with pytest.raises(DatasetError, match="missing in .*: train_data_batch_7"):
        read_imagenet16(root, "train")
    (root / "val_data").write_bytes(_python2_pickle({"data": np.zeros((1, 768), np.uint8), "labels": [0]}))
    with pytest.raises(DatasetError, match="1-based ImageNet classes 1..1000, got 0..0"):
        read_imagenet16(root, "val")
    (root / "val_data").write_bytes(_python2_pickle({"data": np.zeros((1, 3072), np.uint8), "labels": [1]}))
    with pytest.raises(DatasetError, match=r"\[n, 768\]"):
        read_imagenet16(root, "val")
    with pytest.raises(ValueError, match="unknown ImageNet16 split 'test'"):
        read_imagenet16(root, "test")
    with pytest.raises(ValueError, match="classes must be an int in 1..1000"):
        read_imagenet16(root, "val", classes=0)
