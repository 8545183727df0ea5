"""Whole-file writes go through one writer: the old file or the whole new one, never a part."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from metantk_plugin.atomic_files import write_atomically, write_file_atomically


def test_writes_text_bytes_and_creates_folders(tmp_path):
    path = write_atomically(tmp_path / "a" / "b.txt", lambda file: file.write("one\n"))
    assert path == tmp_path / "a" / "b.txt" and path.read_text() == "one\n"
    write_atomically(path, lambda file: file.write(b"\x00two"), binary=True)
    assert path.read_bytes() == b"\x00two"
    assert write_file_atomically(path, "drei\r\n") == path and path.read_bytes() == b"drei\r\n"
    write_file_atomically(path, b"\xff")
    assert path.read_bytes() == b"\xff"
    assert os.listdir(path.parent) == ["b.txt"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    path = tmp_path / "kept.json"
    path.write_text("old")

    def fail(file) -> None:
        file.write("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(path, fail)
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["kept.json"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_the_file_gets_the_permissions_of_a_plain_open(tmp_path):
    plain = tmp_path / "plain"
    plain.write_text("x")
    assert (write_file_atomically(tmp_path / "atomic", "x").stat().st_mode & 0o777
            == plain.stat().st_mode & 0o777)


def test_the_checkpoint_module_name_still_imports_and_warns():
    code = ("import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
            "import metantk_plugin.fewshot.checkpoint as c, metantk_plugin.atomic_files as a\n"
            "try:\n"
            "    c.write_atomically\n"
            "except DeprecationWarning as w:\n"
            "    print('warned:', w)\n"
            "warnings.simplefilter('ignore', DeprecationWarning)\n"
            "from metantk_plugin.fewshot.checkpoint import write_atomically\n"
            "assert write_atomically is a.write_atomically\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "warned: metantk_plugin.fewshot.checkpoint.write_atomically is deprecated; use " \
           "metantk_plugin.atomic_files.write_atomically" in out
    assert out.strip().endswith("ok")
