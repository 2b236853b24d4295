"""Damaged Parquet files in the store, found from their framing alone so every open can afford
the check: a Parquet file starts and ends with `PAR1`, and its last 8 bytes give a footer length
that fits in the file. A truncated or overwritten file fails one of these."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PARQUET_MAGIC = b"PAR1"
_TAIL_BYTES = 8  # the footer's length (4 bytes, little-endian), then the magic
_SMALLEST_FILE = len(PARQUET_MAGIC) + _TAIL_BYTES


@dataclass(frozen=True)
class DamagedFile:
    """A store file no reader can open, and why."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path} ({self.reason})"


def damage_of(path: Path) -> str | None:
    """Why `path` is not a readable Parquet file, or None when its framing is intact."""
    try:
        size = path.stat().st_size
        if size < _SMALLEST_FILE:
            return f"{size} bytes, too small to be Parquet"
        with path.open("rb") as file:
            head = file.read(len(PARQUET_MAGIC))
            file.seek(-_TAIL_BYTES, 2)
            tail = file.read(_TAIL_BYTES)
    except OSError as error:
        return f"unreadable: {error.strerror or error}"
    if head != PARQUET_MAGIC:
        return "no Parquet header"
    if tail[4:] != PARQUET_MAGIC:
        return "no Parquet footer; truncated?"
    if int.from_bytes(tail[:4], "little") + _SMALLEST_FILE > size:
        return "footer longer than the file; truncated?"
    return None


def find_damaged(root: Path, tables: Iterable[str]) -> list[DamagedFile]:
    """Every damaged Parquet file in the folders of `tables` under `root`, in path order."""
    found = []
    for table in tables:
        for path in sorted((root / table).rglob("*.parquet")):
            if (reason := damage_of(path)) is not None:
                found.append(DamagedFile(path, reason))
    return found
