"""The HDF5 score store: commit, resume, refusal of foreign/corrupt/mismatched files, and
survival of a real ``kill -9`` in the middle of a scoring run."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pandas as pd
import pytest

from metantk_plugin.scoring.run import score_architectures
from metantk_plugin.scoring.settings import ScoreSettings
from metantk_plugin.scoring.store import (
    ScoreFileError,
    ScoreRow,
    ScoreStore,
    export_csv,
    read_scores,
    read_settings,
    score_directions,
)

SETTINGS = {"space": "nb201", "proxies": ["a", "b", "te_nas"], "seed": 1, "data": "synthetic"}
COLUMNS = ("a", "ntk_cond", "linear_regions")


def open_store(path, settings=SETTINGS):
    return ScoreStore.open(path, settings=settings, columns=COLUMNS, higher_is_better=(True, False, True),
                           derived=("te_nas",))


def row(i: int) -> ScoreRow:
    return ScoreRow(f"arch{i}", (float(i), 10.0 - i if i != 2 else math.inf, float(i % 2)), (0.1, 0.2, 0.3), 0.7)


def test_append_read_and_resume(tmp_path):
    path = tmp_path / "s.h5"
    with open_store(path) as store:
        assert store.n_rows == 0 and path.exists()
        store.append([row(0), row(1)])
        store.append([])
        store.append([row(2)])
        with pytest.raises(ValueError, match="already in"):
            store.append([row(1)])
    table = read_scores(path)
    assert list(table.columns) == ["arch", "te_nas", "a", "ntk_cond", "linear_regions"]
    assert table["arch"].tolist() == ["arch0", "arch1", "arch2"]
    assert table["ntk_cond"].tolist() == [10.0, 9.0, math.inf]
    # te_nas = rank(-kappa) + rank(regions): kappa 10, 9, inf -> 2, 3, 1; regions 0, 1, 0 -> 1.5, 3, 1.5
    assert table["te_nas"].tolist() == [3.5, 6.0, 2.5]
    timed = read_scores(path, times=True)
    assert timed["seconds_ntk_cond"].tolist() == [0.2] * 3 and timed["seconds_total"].tolist() == [0.7] * 3
    assert read_settings(path) == SETTINGS
    assert score_directions(path) == {"te_nas": True, "a": True, "ntk_cond": False, "linear_regions": True}
    with open_store(path) as store:  # resume
        assert store.n_rows == 3 and store.is_finished("arch2") and not store.is_finished("arch3")
        store.append([row(3)])
    assert len(read_scores(path)) == 4


def test_settings_mismatch_is_refused_with_the_difference(tmp_path):
    path = tmp_path / "s.h5"
    with open_store(path) as store:
        store.append([row(0)])
    before = path.read_bytes()
    with pytest.raises(ScoreFileError, match=r"other settings(.|\n)*seed: 1 in the file, 2 now"):
        open_store(path, {**SETTINGS, "seed": 2})
    assert path.read_bytes() == before


@pytest.mark.parametrize("content", [b"", b"not an hdf5 file at all\n" * 10])
def test_non_hdf5_files_are_refused_and_untouched(tmp_path, content):
    path = tmp_path / "s.h5"
    path.write_bytes(content)
    with pytest.raises(ScoreFileError, match="not an HDF5 file"):
        open_store(path)
    with pytest.raises(ScoreFileError, match="not an HDF5 file"):
        read_scores(path)
    assert path.read_bytes() == content


def test_foreign_and_truncated_hdf5_files_are_refused(tmp_path):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["data"] = np.arange(3)
    before = foreign.read_bytes()
    with pytest.raises(ScoreFileError, match="not a metantk score file"):
        open_store(foreign)
    assert foreign.read_bytes() == before

    good = tmp_path / "good.h5"
    with open_store(good) as store:
        store.append([row(i) for i in range(50)])
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ScoreFileError, match="left untouched"):
        open_store(truncated)

    inconsistent = tmp_path / "inconsistent.h5"
    inconsistent.write_bytes(good.read_bytes())
    with h5py.File(inconsistent, "r+") as f:
        f["total_seconds"].resize(49, axis=0)
    with pytest.raises(ScoreFileError, match="inconsistent"):
        read_scores(inconsistent)


def test_a_second_writer_is_refused_and_a_stale_partial_is_discarded(tmp_path):
    path = tmp_path / "s.h5"
    with open_store(path) as store:
        store.append([row(0)])
        with pytest.raises(ScoreFileError, match="another process is writing"):
            open_store(path)
    partial = tmp_path / ".s.h5.partial"
    partial.write_bytes(b"half a commit")
    with open_store(path) as store:
        assert store.n_rows == 1
    assert not partial.exists()


def test_export_csv_round_trips_and_never_overwrites(tmp_path):
    path = tmp_path / "s.h5"
    with open_store(path) as store:
        store.append([row(0), row(1), row(2)])
    csv = export_csv(path, tmp_path / "s.csv")
    table = pd.read_csv(csv)
    pd.testing.assert_frame_equal(table, read_scores(path), check_dtype=False, check_exact=True)
    with pytest.raises(FileExistsError, match="exists"):
        export_csv(path, csv)
    export_csv(path, csv, overwrite=True, times=True)
    assert "seconds_total" in pd.read_csv(csv).columns


_SETTINGS = dict(proxies=("params", "synflow", "nwot"), n_tasks=1, ways=2, image_size=8, channels=2, cells=1, seed=4)
_RUN = textwrap.dedent(f"""
    import sys
    import torch
    torch.set_num_threads(1)
    from metantk_plugin.scoring.run import score_architectures
    from metantk_plugin.scoring.settings import ScoreSettings
    settings = ScoreSettings(**{_SETTINGS!r})
    score_architectures(settings, list(range(int(sys.argv[2]))), sys.argv[1], chunk_size=1, progress=False)
""")


def _rows(path) -> int:
    try:
        with h5py.File(path, "r") as f:
            return int(f.attrs["rows"])
    except (OSError, KeyError):
        return 0


def test_kill_9_mid_run_then_resume_gives_the_uninterrupted_table(tmp_path):
    n = 30
    killed = tmp_path / "killed.h5"
    proc = subprocess.Popen([sys.executable, "-c", _RUN, str(killed), str(n)],
                            env={**os.environ, "PYTHONWARNINGS": "ignore"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 90
    while _rows(killed) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    done = len(read_scores(killed))  # readable right after the kill
    assert 3 <= done < n

    settings = ScoreSettings(**_SETTINGS)
    summary = score_architectures(settings, list(range(n)), killed, chunk_size=4, progress=False)
    assert (summary.already_done, summary.scored) == (done, n - done)
    clean = tmp_path / "clean.h5"
    score_architectures(settings, list(range(n)), clean, chunk_size=7, progress=False)
    pd.testing.assert_frame_equal(read_scores(killed), read_scores(clean), check_exact=True)
    assert read_settings(killed) == read_settings(clean)
