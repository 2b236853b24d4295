"""Stores of the layout before Delta Lake (schema versions 1-3: folders of Parquet files under a
local root with a `store.json`): recognised on open, converted by `priors upgrade`.

The conversion moves the old folders into `ROOT/_parquet_layout/`, writes their rows into new
Delta tables a batch at a time, and removes the old files and `store.json` last: until then the
store is refused as one to upgrade, and a conversion cut short starts over.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from storage import tables
from storage.schema import DELTA_TABLES, PRIORS, SCHEMA_VERSION, SHARD_TABLES, TABLE_COLUMN
from storage.store import SchemaVersionError, StoreError
from storage.tables import StoreLocation

LEGACY_MANIFEST = "store.json"
LEGACY_FOLDER = "_parquet_layout"
LEGACY_VERSIONS = (1, 2, 3)
_ANCHOR = "schema.parquet"


def legacy_version(root: Path) -> int | None:
    """The schema version a pre-Delta store at `root` names, None if there is none."""
    manifest = root / LEGACY_MANIFEST
    if not manifest.exists():
        return None
    try:
        version = json.loads(manifest.read_text())["schema_version"]
    except (ValueError, KeyError, TypeError) as error:  # TypeError: not a JSON object
        raise StoreError(f"{manifest} is unreadable ({error}); is this a prior store?") from None
    if not isinstance(version, int) or isinstance(version, bool):
        raise StoreError(f"{manifest} names schema version {version!r}, not a whole number")
    return version


def refuse_legacy_layout(location: StoreLocation) -> None:
    """A SchemaVersionError for a store of an older layout, with the command that converts it."""
    root = location.local
    if root is None or (version := legacy_version(root)) is None:
        return
    remedy = (
        f"run: llmformer priors upgrade --store {root}"
        if version in LEGACY_VERSIONS
        else "write a new store or use a matching llmformer release"
    )
    raise SchemaVersionError(
        f"the store at {root} has schema version {version}, but this llmformer "
        f"reads schema version {SCHEMA_VERSION}; {remedy}"
    )


def convert_legacy_store(location: StoreLocation) -> None:
    """Convert the pre-Delta store at `location` (if it is one) into Delta tables in place."""
    root = location.local
    if root is None or (version := legacy_version(root)) is None:
        if not tables.exists(location):
            raise StoreError(f"no prior store at {location.uri} to upgrade")
        return
    if version not in LEGACY_VERSIONS:
        refuse_legacy_layout(location)
    for table in DELTA_TABLES:  # what a conversion cut short left
        if (root / table / "_delta_log").is_dir():
            shutil.rmtree(root / table)
    legacy = root / LEGACY_FOLDER
    legacy.mkdir(exist_ok=True)
    for path in sorted(root.iterdir()):
        if path.name not in (LEGACY_MANIFEST, LEGACY_FOLDER):
            path.rename(legacy / path.name)
    tables.create_tables(location)
    for table in (*SHARD_TABLES, *(t for t in DELTA_TABLES if t != PRIORS)):
        if files := [p for p in sorted((legacy / table).rglob("*.parquet")) if p.name != _ANCHOR]:
            target = PRIORS if table in SHARD_TABLES else table
            tables.write(location, target, (_legacy_rows(path, table) for path in files))
    (root / LEGACY_MANIFEST).unlink()
    shutil.rmtree(legacy)


def _legacy_rows(path: Path, table: str) -> pa.Table:
    """The rows of one old file of `table` (as rows of `priors` for a shard table): a conversion
    streams them into one commit per table, holding about one file at a time."""
    try:
        rows = pq.read_table(path, partitioning=None)
    except (pa.ArrowInvalid, OSError) as error:
        raise StoreError(
            f"{path} is damaged ({error}); move it aside (its shard's images will be redone) "
            "and upgrade again"
        ) from None
    if table not in SHARD_TABLES:
        return rows
    return rows.append_column(TABLE_COLUMN, pa.array([table] * rows.num_rows, pa.string()))
