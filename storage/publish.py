"""All-or-nothing publishing of a set of files into the store, safe against SIGKILL.

A transaction writes its files into `ROOT/_staging/txn-<id>/` (outside every table's glob, on
the same filesystem as the tables), then commits by writing a journal of the renames and
deletions it will do, then applies it with `os.replace`. The journal is the commit point: a
writer killed before it leaves nothing visible, a writer killed after it is rolled forward by
the next process that opens the store. Each live transaction holds an `flock` on its lock file,
so recovery never touches the work of a writer that is still running.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

STAGING_DIR = "_staging"
_JOURNAL = "journal.json"
_PUBLISH_LOCK = "publish.mutex"
# A file's inode, size and modification time: a replaced or rewritten file changes it.
Signature = tuple[int, int, int]


@dataclass
class Transaction:
    """Files staged for publication and files to delete, applied together on commit."""

    root: Path
    directory: Path
    moves: list[tuple[Path, Path]] = field(default_factory=list)
    deletions: list[Path] = field(default_factory=list)
    expected: dict[Path, Signature | None] = field(default_factory=dict)

    def stage(self, destination: Path) -> Path:
        """A staging path to write the file that will become `destination` on commit."""
        staged = self.directory / f"{len(self.moves)}-{destination.name}"
        self.moves.append((staged, destination))
        return staged

    def delete(self, destination: Path) -> None:
        """Remove `destination` from the store on commit."""
        self.deletions.append(destination)

    def expect_unchanged(self, path: Path) -> None:
        """Abort the commit if another writer replaces, creates or deletes `path` before it.

        Call it before reading `path` (or before deciding from its absence).
        """
        self.expected[path] = _signature(path)

    def files_after_commit(self, directory: Path, pattern: str) -> list[Path]:
        """Files matching `pattern` under `directory` as they will be once this commits.

        Each comes as the path holding its future content now: the staged copy of a file this
        transaction writes, else the store file itself, which must then stay unchanged.
        """
        written = {
            destination: staged
            for staged, destination in self.moves
            if destination.is_relative_to(directory)
            and destination.relative_to(directory).match(pattern)
        }
        kept = set(directory.glob(pattern)) - set(self.deletions) - written.keys()
        for path in kept - self.expected.keys():
            self.expect_unchanged(path)
        return [written.get(path, path) for path in sorted(kept | written.keys())]

    def journal(self) -> dict[str, list]:
        """The renames and deletions, relative to the store root."""
        return {
            "moves": [[_relative(a, self.root), _relative(b, self.root)] for a, b in self.moves],
            "deletions": [_relative(path, self.root) for path in self.deletions],
        }


class ConcurrentWriteError(RuntimeError):
    """Another writer changed a file this transaction read; nothing was published."""


def _relative(path: Path, root: Path) -> str:
    return str(path.relative_to(root))


def _signature(path: Path) -> Signature | None:
    """Identity and version of the file at `path`; None while there is none."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


@contextmanager
def transaction(root: Path) -> Iterator[Transaction]:
    """Stage files inside the block; they are published together when the block exits cleanly."""
    staging = root / STAGING_DIR
    staging.mkdir(parents=True, exist_ok=True)
    name = f"txn-{uuid.uuid4().hex}"
    lock_fd = _create_locked_file(staging, f"{name}.lock")
    directory = staging / name
    try:
        directory.mkdir()
        txn = Transaction(root, directory)
        yield txn
        _commit(txn)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        (staging / f"{name}.lock").unlink(missing_ok=True)
        os.close(lock_fd)


def _create_locked_file(directory: Path, name: str) -> int:
    """Create `directory/name` already locked, so no one can see it unlocked while we live."""
    temporary = directory / f"tmp-{uuid.uuid4().hex}"
    fd = os.open(temporary, os.O_CREAT | os.O_RDWR, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.replace(temporary, directory / name)
    return fd


def _commit(txn: Transaction) -> None:
    journal_path = txn.directory / _JOURNAL
    for staged, _ in txn.moves:
        _fsync(staged)
    with publish_lock(txn.root):
        recover(txn.root, lock_held=True)
        _check_unchanged(txn)
        _write_atomically(journal_path, json.dumps(txn.journal()))
        _apply(txn.root, txn.journal())


def _check_unchanged(txn: Transaction) -> None:
    for path, signature in txn.expected.items():
        if _signature(path) != signature:
            raise ConcurrentWriteError(f"{path} changed while this write was prepared; retry it")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f"{path.name}.tmp")
    temporary.write_text(text)
    _fsync(temporary)
    os.replace(temporary, path)


def _apply(root: Path, journal: dict[str, list]) -> None:
    """Idempotent: a move whose source is gone was already done by an earlier attempt."""
    for staged, destination in journal["moves"]:
        source, target = root / staged, root / destination
        if source.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
    for destination in journal["deletions"]:
        (root / destination).unlink(missing_ok=True)


@contextmanager
def publish_lock(root: Path) -> Iterator[None]:
    """Serialise the short rename phase of all writers of one store."""
    staging = root / STAGING_DIR
    staging.mkdir(parents=True, exist_ok=True)
    fd = os.open(staging / _PUBLISH_LOCK, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def pending(root: Path) -> bool:
    """Whether some transaction (live or dead) has left files in the staging area."""
    staging = root / STAGING_DIR
    return staging.is_dir() and any(
        path.name.startswith(("txn-", "tmp-")) for path in staging.iterdir()
    )


def recover(root: Path, lock_held: bool = False) -> None:
    """Roll forward committed transactions of dead writers and drop their uncommitted files."""
    if not pending(root):
        return
    if not lock_held:
        with publish_lock(root):
            recover(root, lock_held=True)
        return
    staging = root / STAGING_DIR
    for leftover in sorted(staging.glob("tmp-*")):
        _remove_if_unlocked(leftover, lambda: None)
    for lock in sorted(staging.glob("txn-*.lock")):
        directory = lock.with_suffix("")
        _remove_if_unlocked(lock, lambda directory=directory: _finish_dead(root, directory))


def _finish_dead(root: Path, directory: Path) -> None:
    journal = directory / _JOURNAL
    if journal.exists():
        _apply(root, json.loads(journal.read_text()))
    shutil.rmtree(directory, ignore_errors=True)


def _remove_if_unlocked(path: Path, finish: Callable[[], None]) -> None:
    """Run `finish` and delete `path` only if no live process holds its lock."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return
    try:
        finish()
        path.unlink(missing_ok=True)
    finally:
        os.close(fd)
