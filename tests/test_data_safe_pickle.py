from __future__ import annotations

import collections
import os
import pickle

import numpy as np
import pytest
from test_data_rfs import py2_pickle_bytes

from metantk_plugin.data.safe_pickle import UnsafePickleError, safe_load, safe_loads


class _RunsCommand:
    """Unpickling this would call os.system(command)."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_refuses_a_pickle_that_would_run_a_command(tmp_path):
    proof, marker = tmp_path / "plain-pickle-ran", tmp_path / "ran"
    pickle.loads(pickle.dumps(_RunsCommand(f"touch {proof}")))
    assert proof.exists()  # the payload really runs code under the plain unpickler
    path = tmp_path / "evil.pickle"
    path.write_bytes(pickle.dumps({"data": _RunsCommand(f"touch {marker}")}, protocol=2))
    with pytest.raises(UnsafePickleError) as error:
        safe_load(path)
    message = str(error.value)
    assert str(path) in message and "system" in message and "could run arbitrary code" in message
    assert not marker.exists()


@pytest.mark.parametrize("module, name", [("builtins", "eval"), ("subprocess", "Popen"), ("numpy", "load"),
                                          ("__builtin__", "getattr")])
def test_refuses_other_globals(module, name):
    payload = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"q\x00."
    with pytest.raises(UnsafePickleError, match=f"{module}.{name}"):
        safe_loads(payload)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_reads_numpy_arrays_and_containers(protocol):
    data = {
        "images": np.arange(2 * 5 * 5 * 3, dtype=np.uint8).reshape(2, 5, 5, 3),
        "floats": np.linspace(0, 1, 7, dtype=np.float32)[::2],
        "labels": [3, 4],
        "scalar": np.int64(7),
        "nested": ({"a": b"bytes", "b": 1.5}, {1, 2}, frozenset({3}), complex(1, 2)),
        "ordered": collections.OrderedDict(x=1),
        "objects": np.array(["n01", "n02"], dtype=object),
    }
    out = safe_loads(pickle.dumps(data, protocol=protocol))
    assert out["images"].dtype == np.uint8 and np.array_equal(out["images"], data["images"])
    assert np.array_equal(out["floats"], data["floats"])
    assert out["labels"] == [3, 4] and out["scalar"] == 7 and out["nested"] == data["nested"]
    assert out["ordered"] == data["ordered"] and list(out["objects"]) == ["n01", "n02"]


def test_reads_a_python2_style_pickle():
    images = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    out = safe_loads(py2_pickle_bytes({"data": images, "labels": [5, 6, 7]}), encoding="latin1")
    assert sorted(out) == ["data", "labels"]
    assert np.array_equal(out["data"], images) and out["labels"] == [5, 6, 7]
