"""Benchmark files are untrusted input: a crafted NATS-Bench archive (file or fast-mode
folder) or NAS-Bench-201 .pth whose pickle calls os.system is refused, by every route that
opens one, before the payload can run. Each test checks that the payload's marker file was
never created."""

from __future__ import annotations

import bz2
import os
import pickle

import pytest
import torch

from metantk_plugin.cli import main
from metantk_plugin.spaces.nasbench201 import GroundTruth, all_architectures


class _Payload:
    """Unpickling this runs ``touch MARKER`` (what a hostile benchmark file would do)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _hostile_pbz2(path, marker, *, meta_only: bool = False) -> None:
    content = {"meta_archs": [a.to_string() for a in all_architectures()], "evil": _Payload(marker)}
    if not meta_only:
        content.update(arch2infos={}, evaluated_indexes=[])
    path.write_bytes(bz2.compress(pickle.dumps(content, protocol=4)))


def test_the_payload_really_runs_when_unpickled_plainly(tmp_path):
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.exists()  # so the marker checks below can fail


def test_hostile_nats_bench_file_is_refused(tmp_path):
    pytest.importorskip("nats_bench")
    marker = tmp_path / "ran"
    path = tmp_path / "NATS-tss-v1_0-3ffb9.pickle.pbz2"
    _hostile_pbz2(path, marker)
    with pytest.raises(ValueError, match="refusing to load .*NATS-tss-v1_0-3ffb9.pickle.pbz2.*posix.system"):
        GroundTruth.open(path)
    assert not marker.exists()


def test_hostile_nats_bench_fast_mode_folder_is_refused(tmp_path):
    nats = pytest.importorskip("nats_bench")
    marker = tmp_path / "ran"
    folder = tmp_path / "NATS-tss-v1_0-3ffb9-simple"
    folder.mkdir()
    _hostile_pbz2(folder / "meta.pickle.pbz2", marker, meta_only=True)
    with pytest.raises(ValueError, match="refusing to load .*meta.pickle.pbz2"):
        GroundTruth.open(folder)
    assert not marker.exists()
    # a clean meta file, but one architecture's file is hostile: read lazily, refused all the same
    nats.pickle_save({"meta_archs": [a.to_string() for a in all_architectures()]}, str(folder / "meta.pickle"))
    (folder / "000042.pickle.pbz2").write_bytes(bz2.compress(pickle.dumps({"200": _Payload(marker)})))
    truth = GroundTruth.open(folder)
    with pytest.raises(ValueError, match="refusing to load .*000042.pickle.pbz2"):
        truth.accuracy(42)
    assert not marker.exists()


def test_hostile_nas_bench_201_pth_is_refused_even_when_torch_is_told_to_trust_files(tmp_path, monkeypatch):
    pytest.importorskip("nas_201_api")
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # what the old error message suggested
    marker = tmp_path / "ran"
    path = tmp_path / "NAS-Bench-201-v1_1-096897.pth"
    torch.save({"meta_archs": [], "arch2infos": {}, "evaluated_indexes": [], "evil": _Payload(marker)}, path)
    with pytest.raises(ValueError, match="refusing to load .*could run code"):
        GroundTruth.open(path)
    assert not marker.exists()


@pytest.mark.parametrize("command", ["correlate", "search"])
def test_the_commands_refuse_a_hostile_truth_file_in_one_line(command, tmp_path, capsys):
    pytest.importorskip("nats_bench")
    marker = tmp_path / "ran"
    path = tmp_path / "NATS-tss-v1_0-3ffb9.pickle.pbz2"
    _hostile_pbz2(path, marker)
    if command == "correlate":
        scores = tmp_path / "s.h5"
        assert main(["score", "--archs", "sample:3", "--proxies", "params", "--out", str(scores), "--channels", "2",
                     "--cells", "1", "--quiet"]) == 0
        args = ["correlate", str(scores), "--truth", str(path)]
    else:
        args = ["search", "--truth", str(path), "--channels", "100000000"]  # refused before the search is set up
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"metantk {command}: error: ") and "posix.system" in err and len(err.splitlines()) == 1
    assert not marker.exists()
