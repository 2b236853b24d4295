"""Transactions: all files appear together, none on error, none over a concurrent change."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage import publish
from storage.publish import ConcurrentWriteError


def test_files_appear_together_and_staging_is_emptied(tmp_path: Path):
    with publish.transaction(tmp_path) as txn:
        txn.stage(tmp_path / "a" / "one.txt").write_text("1")
        txn.stage(tmp_path / "b" / "two.txt").write_text("2")
        assert not (tmp_path / "a").exists()
    assert (tmp_path / "a" / "one.txt").read_text() == "1"
    assert (tmp_path / "b" / "two.txt").read_text() == "2"
    assert sorted(p.name for p in (tmp_path / "_staging").iterdir()) == ["publish.mutex"]


def test_an_error_inside_the_block_publishes_nothing(tmp_path: Path):
    with pytest.raises(RuntimeError, match="parse failed"), publish.transaction(tmp_path) as txn:
        txn.stage(tmp_path / "one.txt").write_text("1")
        raise RuntimeError("parse failed")
    assert not (tmp_path / "one.txt").exists()
    assert not list((tmp_path / "_staging").glob("txn-*"))


def test_a_file_changed_by_another_writer_aborts_the_commit(tmp_path: Path):
    merged = tmp_path / "merged.txt"
    merged.write_text("old")
    changed = pytest.raises(ConcurrentWriteError, match="changed while this write was prepared")
    with changed, publish.transaction(tmp_path) as txn:
        txn.expect_unchanged(merged)
        txn.stage(tmp_path / "new.txt").write_text("new")
        txn.delete(merged)
        merged.write_text("rewritten by someone else")
    assert merged.read_text() == "rewritten by someone else"
    assert not (tmp_path / "new.txt").exists()


def test_a_file_created_by_another_writer_aborts_the_commit(tmp_path: Path):
    rollup = tmp_path / "rollup.txt"
    changed = pytest.raises(ConcurrentWriteError, match="changed while this write was prepared")
    with changed, publish.transaction(tmp_path) as txn:
        txn.expect_unchanged(rollup)
        txn.stage(rollup).write_text("mine")
        rollup.write_text("written by someone else")
    assert rollup.read_text() == "written by someone else"
