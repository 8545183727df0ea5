"""``metantk score`` never leaves an empty file that blocks the corrected command, checks
``--set`` values before scoring, replaces a file only with ``--force``; the score store
refuses a file whose bytes changed on disk (HDF5 fletcher32 checksums and a row digest)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from metantk_plugin.cli import main
from metantk_plugin.scoring.settings import ScoreSettings
from metantk_plugin.scoring.store import ScoreFileError, ScoreRow, ScoreStore, read_scores, read_settings

TINY = ["--channels", "2", "--cells", "1", "--image-size", "8", "--tasks", "1", "--ways", "3", "--quiet"]


def _score(tmp_path, *extra: str) -> int:
    return main(["score", "--archs", "sample:2", "--proxies", "metantk", "--out", str(tmp_path / "s.h5"),
                 *TINY, *extra])


@pytest.mark.parametrize(("value", "shown"), [("abc", "'abc'"), ("nan", "'nan'"), ("NaN", "nan"), ("true", "True"),
                                              ("[1]", "[1]")])
def test_bad_set_values_are_refused_up_front(value, shown, tmp_path, capsys):
    assert _score(tmp_path, "--set", f"metantk.reg={value}") == 2
    err = capsys.readouterr().err
    assert f"option metantk.reg must be a number (not NaN) (default 0.001), got {shown}" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "s.h5").exists()


def test_unknown_options_and_wrong_types_are_named(tmp_path, capsys):
    assert _score(tmp_path, "--set", "metantk.rge=1") == 2
    assert "proxy 'metantk' has no option 'rge'; its options: algorithm, inner_lr_time, reg, backend" in \
        capsys.readouterr().err
    assert _score(tmp_path, "--set", "metantk.backend=3") == 2
    assert "option metantk.backend must be a string (default 'gram'), got 3" in capsys.readouterr().err


def test_a_failed_run_leaves_no_file_behind(tmp_path, capsys):
    assert _score(tmp_path, "--set", "metantk.reg=-1") == 2  # well typed, refused by MetaNTK at the first cell
    assert "reg must be a finite value >= 0, got -1" in capsys.readouterr().err
    assert not (tmp_path / "s.h5").exists()
    assert _score(tmp_path, "--set", "metantk.reg=0.01") == 0  # the corrected command just runs
    assert len(read_scores(tmp_path / "s.h5")) == 2


def test_force_replaces_a_score_file_and_only_a_score_file(tmp_path, capsys):
    assert _score(tmp_path) == 0
    assert _score(tmp_path, "--seed", "1") == 2
    assert "other settings" in capsys.readouterr().err
    assert _score(tmp_path, "--seed", "1", "--force") == 0
    assert read_settings(tmp_path / "s.h5")["seed"] == 1 and len(read_scores(tmp_path / "s.h5")) == 2
    (tmp_path / "s.h5").write_text("my notes, not a score file")
    assert _score(tmp_path, "--force") == 2
    assert "not an HDF5 file" in capsys.readouterr().err
    assert (tmp_path / "s.h5").read_text() == "my notes, not a score file"


# ---------------------------------------------------------------- checksums
def _store(path, rows: int = 40) -> None:
    settings = ScoreSettings(proxies=("params", "synflow"))
    with ScoreStore.open(path, settings=settings.to_dict(), columns=settings.columns,
                         higher_is_better=[True, True]) as store:
        store.append(ScoreRow(f"arch-{i}", (0.25 * i, 1.5 + i), (0.01, 0.02), 0.05) for i in range(rows))


def _flip_byte(path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


def test_a_flipped_byte_in_a_score_chunk_is_refused(tmp_path):
    path = tmp_path / "s.h5"
    _store(path)
    with h5py.File(path, "r") as f:
        dataset = f["scores"]
        assert dataset.fletcher32
        offset = dataset.id.get_chunk_info(0).byte_offset
        expected = dataset[:]
    assert np.array_equal(read_scores(path)[["params", "synflow"]].to_numpy(), expected)
    _flip_byte(path, offset + 8 * 5 + 6)  # a high byte of one float: the value changes, the file still opens
    with pytest.raises(ScoreFileError, match="changed or damaged on disk: a data block fails its checksum"):
        read_scores(path)
    with pytest.raises(ScoreFileError, match="changed or damaged"):
        ScoreStore.open(path, settings=ScoreSettings(proxies=("params", "synflow")).to_dict(),
                        columns=("params", "synflow"), higher_is_better=(True, True))


def test_a_changed_architecture_string_is_refused(tmp_path):
    path = tmp_path / "s.h5"
    _store(path)
    data = path.read_bytes()
    offset = data.index(b"arch-17")  # variable-length strings live outside the checksummed chunks
    path.write_bytes(data[:offset] + b"arch-71" + data[offset + 7:])
    with pytest.raises(ScoreFileError, match="no longer matches its stored digest"):
        read_scores(path)


def test_correlate_refuses_a_damaged_file_in_one_line(tmp_path, capsys):
    path = tmp_path / "s.h5"
    assert _score(tmp_path) == 0
    with h5py.File(path, "r") as f:
        offset = f["scores"].id.get_chunk_info(0).byte_offset
    _flip_byte(path, offset + 6)
    capsys.readouterr()
    assert main(["correlate", str(path), "--bootstrap", "10"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("metantk correlate: error: ") and "fails its checksum" in err
