"""Atomic writes: whole or not at all, and durable once written."""

from __future__ import annotations

import os
import stat

import pytest

from orgscan import fs


def test_a_write_replaces_the_file_whole_and_syncs_the_file_and_its_directory(
    tmp_path, monkeypatch
):
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(stat.S_IFMT(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    path = tmp_path / "out" / "findings.json"
    fs.write_atomic(path, b"old")
    fs.write_atomic(path, b"new")
    assert path.read_bytes() == b"new"
    assert [p.name for p in path.parent.iterdir()] == ["findings.json"]  # no temporary left
    # The data, then the directory entry of the rename, for each write.
    assert synced == [stat.S_IFREG, stat.S_IFDIR] * 2


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "findings.json"
    fs.write_atomic(path, b"old")

    def broken(*_):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        fs.write_atomic(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["findings.json"]


def test_an_older_run_is_never_mixed_into_a_package(tmp_path):
    (tmp_path / "findings.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("mine")
    package = ["findings.json", "report.html"]
    with pytest.raises(fs.OutputError, match="already holds a run"):
        fs.prepare_output(tmp_path, package)
    fs.prepare_output(tmp_path, package, resuming=True)
    assert (tmp_path / "findings.json").exists()
    fs.prepare_output(tmp_path, package, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_resume_needs_the_previous_evidence(tmp_path):
    with pytest.raises(fs.OutputError, match=r"holds no findings\.json"):
        fs.previous_run_path(tmp_path, "findings.json")
