from __future__ import annotations

import zipfile

import numpy as np
import pytest

from metantk_plugin.data.errors import DatasetError
from metantk_plugin.data.omniglot import omniglot_sources, read_omniglot


@pytest.fixture(scope="module")
def omniglot_dir(shared_data):
    return shared_data / "fewshot" / "omniglot"


@pytest.fixture(scope="module")
def omniglot(omniglot_dir):
    return read_omniglot(omniglot_dir)


def test_two_small_zips_merge_to_242_classes(omniglot):
    assert omniglot.images.shape == (4840, 105, 105, 1)
    assert len(omniglot.class_names) == 242 and len(set(omniglot.class_names)) == 242
    assert np.array_equal(np.bincount(omniglot.labels), np.full(242, 20))
    alphabets = {name.split("/")[0] for name in omniglot.class_names}
    assert alphabets == {"Balinese", "Early_Aramaic", "Greek", "Japanese_(katakana)", "Korean", "Latin",
                         "Sanskrit", "Tagalog"}
    assert omniglot.class_names == sorted(omniglot.class_names)
    assert set(np.unique(omniglot.images)) == {0, 255} and 0.03 < (omniglot.images == 0).mean() < 0.15


def test_extracted_folder_reads_like_the_zip(tmp_path, omniglot_dir, omniglot):
    with zipfile.ZipFile(omniglot_dir / "images_background_small1.zip") as archive:
        members = [m for m in archive.namelist() if "/Greek/" in m]
        archive.extractall(tmp_path, members=members)
    folder = read_omniglot(tmp_path / "images_background_small1")
    assert folder.class_names == [f"Greek/character{i:02d}" for i in range(1, 25)]
    greek = [omniglot.class_names.index(name) for name in folder.class_names]
    expected = np.concatenate([omniglot.images[omniglot.labels == c] for c in greek])
    assert np.array_equal(folder.images, expected)
    # a parent folder holding the extracted folder and a zip with the same characters: merged once
    (tmp_path / "images_background_small1.zip").write_bytes((omniglot_dir / "images_background_small1.zip")
                                                            .read_bytes())
    merged = read_omniglot(tmp_path)
    assert len(merged.class_names) == 136 and len(merged) == 2720


def test_missing_or_malformed_folders_say_what_was_expected(tmp_path, omniglot_dir):
    with pytest.raises(DatasetError, match="does not exist"):
        read_omniglot(tmp_path / "absent")
    (tmp_path / "all_runs.zip").write_bytes((omniglot_dir / "all_runs.zip").read_bytes())
    with pytest.raises(DatasetError) as error:
        omniglot_sources(tmp_path)
    assert "images_background*.zip" in str(error.value) and str(tmp_path) in str(error.value)
    (tmp_path / "images_background.zip").write_bytes(b"this is no zip")
    with pytest.raises(DatasetError, match="not a readable zip"):
        read_omniglot(tmp_path)


def test_conflicting_duplicates_are_refused(tmp_path):
    for name, payload in (("images_a.zip", b"one"), ("images_b.zip", b"two")):
        with zipfile.ZipFile(tmp_path / name, "w") as archive:
            archive.writestr("images_x/Greek/character01/0001_01.png", payload)
    with pytest.raises(DatasetError, match="differs between"):
        read_omniglot(tmp_path)
