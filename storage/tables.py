"""Where the store's Delta tables live (a local folder or `s3://bucket/prefix`) and how they are
opened at one version, read as Arrow datasets, and written with delta-rs.

delta-rs commits every write atomically (a put-if-absent of the next log entry, which S3 does as
a conditional write), retries a commit that lost a race when the two do not conflict, and reads
S3 credentials and endpoint from the usual `AWS_*` variables.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pa_fs
from deltalake import CommitProperties, DeltaTable, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError

from storage.schema import DELTA_TABLES, PARTITIONS, PRIORS, delta_schema_of

ROW_GROUP_ROWS = 16_384
"""Rows per Parquet row group: small enough that a filter on a sorted column (image_id after
compaction's Z-order, relation_counts' ranks) skips all but a few by their min/max statistics."""
WRITER_PROPERTIES = WriterProperties(compression="ZSTD", max_row_group_size=ROW_GROUP_ROWS)
COMMIT_RETRIES = 50
"""Commits delta-rs retries after losing a race to a writer it does not conflict with."""
_REMOTE = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*):/+")
"""`s3://...`, also as `s3:/...` once a Path has collapsed its slashes."""
_SCHEMES = ("s3",)
# delta-rs builds an object-store URL whose host holds the table path; these cannot be in a host.
_UNUSABLE_IN_PATHS = "[]"
_GLOB_CHARACTERS = "*?"

AsOf = int | datetime | None
"""A version of the `priors` table, a point in time, or None for the latest version."""
Source = ds.Dataset | list[str]
"""One version of a Delta table as DuckDB reads it: the paths of its Parquet files, which DuckDB
reads itself, or an Arrow dataset where it cannot (S3: DuckDB reads it only through httpfs, an
extension that cannot be installed here)."""


class StoreError(Exception):
    """A problem with the store a user can fix; the message is one line."""


class ConcurrentWriteError(StoreError):
    """Another writer's commit conflicts with this one (delta-rs retried what it could)."""


@dataclass(frozen=True)
class StoreLocation:
    """The root of a store: an absolute local folder or an `s3://bucket/prefix` URL."""

    uri: str

    @classmethod
    def parse(cls, root: str | Path) -> StoreLocation:
        """A location from a path or URL; anything but a local path or s3:// is refused."""
        text = str(root)
        if match := _REMOTE.match(text):
            if match["scheme"] not in _SCHEMES:
                raise StoreError(f"store {text!r}: only local folders and s3:// URLs are supported")
            if not (rest := text[match.end() :].strip("/")):
                raise StoreError(f"store {text!r} names no bucket")
            return cls(f"{match['scheme']}://{rest}")
        path = Path(text).expanduser().resolve()
        if bad := sorted(set(str(path)) & set(_UNUSABLE_IN_PATHS)):
            raise StoreError(
                f"store folder {path} holds {' and '.join(bad)}, which delta-rs cannot write "
                "under; choose a folder without square brackets"
            )
        return cls(str(path))

    @property
    def local(self) -> Path | None:
        """The folder of a local store, None for a remote one."""
        return None if _REMOTE.match(self.uri) else Path(self.uri)

    @property
    def duckdb_reads_files(self) -> bool:
        """Whether DuckDB reads the store's files itself: a local folder whose path it would not
        take for a glob (`*`, `?`)."""
        return self.local is not None and not set(_GLOB_CHARACTERS) & set(self.uri)

    def table_uri(self, table: str) -> str:
        return f"{self.uri}/{table}"


def exists(location: StoreLocation) -> bool:
    """Whether the store's `priors` table (created last) is there."""
    return DeltaTable.is_deltatable(location.table_uri(PRIORS))


def create_tables(location: StoreLocation) -> None:
    """Create each missing Delta table, `priors` last so a store exists only once whole."""
    for table in (*(t for t in DELTA_TABLES if t != PRIORS), PRIORS):
        uri = location.table_uri(table)
        try:
            DeltaTable.create(
                uri, delta_schema_of(table), mode="ignore", partition_by=PARTITIONS.get(table)
            )
        except CommitFailedError:  # another process created it at the same moment
            if not DeltaTable.is_deltatable(uri):
                raise


def open_table(location: StoreLocation, table: str, as_of: AsOf = None) -> DeltaTable:
    """`table` at the latest version, at version `as_of` (an int: only for `priors`), or as it
    was at time `as_of` (its first version for a time before it); DeltaError for a version it
    does not have."""
    delta = DeltaTable(location.table_uri(table))
    if as_of is not None:
        delta.load_as_version(as_of)
    return delta


def dataset(delta: DeltaTable, table: str, files: str | None = None) -> ds.Dataset:
    """The rows of a snapshot as a dataset DuckDB and pyarrow scan with pushdown, read through
    Arrow's own filesystem for the table's location; `files`, a predicate on partition values
    and column statistics, leaves out the files delta-rs can tell hold no matching row."""
    return delta.to_pyarrow_dataset(
        schema=delta_schema_of(table),
        filesystem=_filesystem(delta.table_uri),
        file_pruning_predicate=files,
    )


def source(
    location: StoreLocation, delta: DeltaTable, table: str, files: str | None = None
) -> Source:
    """The snapshot `delta` of `table` as DuckDB reads it (see `Source`); `files` as `dataset`'s."""
    if not location.duckdb_reads_files:
        return dataset(delta, table, files)
    return [unquote(uri) for uri in delta.file_uris(file_pruning_predicate=files)]


@functools.cache
def _filesystem(table_uri: str) -> pa_fs.FileSystem:
    """An Arrow filesystem rooted at the table (local, or S3 configured from the `AWS_*`
    variables), as deltalake's docs show, so that scans read files natively rather than
    through delta-rs's Python file handler."""
    filesystem, path = pa_fs.FileSystem.from_uri(table_uri)
    return pa_fs.SubTreeFileSystem(path, filesystem)


def commit_time(delta: DeltaTable) -> datetime:
    """When the loaded version of `delta` was committed (UTC)."""
    latest = delta.history(1)[0]  # newest first; an older version may list more than asked
    return datetime.fromtimestamp(latest["timestamp"] / 1000, UTC)


def write(
    location: StoreLocation,
    table: str,
    rows: pa.Table | Iterable[pa.Table | pa.RecordBatch],
    replace_where: str | None = None,
    read_version: DeltaTable | None = None,
) -> None:
    """Append `rows` (a table, or batches streamed one at a time) to `table`, or, with
    `replace_where`, delete the rows it matches and add `rows` (which must match it) in one
    commit. `rows` computed from `read_version` (an opened version of `table`) are committed as
    a change of that version: a concurrent commit they conflict with fails this one
    (ConcurrentWriteError)."""
    schema = delta_schema_of(table)
    parts = [rows] if isinstance(rows, pa.Table) else rows
    stream = pa.RecordBatchReader.from_batches(
        schema,
        (batch for part in parts for batch in _conform(part, schema).to_batches()),
    )
    try:
        write_deltalake(
            read_version if read_version is not None else location.table_uri(table),
            stream,
            mode="append" if replace_where is None else "overwrite",
            predicate=replace_where,
            partition_by=PARTITIONS.get(table),
            schema_mode="merge",  # a column added to schema.py is added to the table
            writer_properties=WRITER_PROPERTIES,
            commit_properties=CommitProperties(max_commit_retries=COMMIT_RETRIES),
        )
    except CommitFailedError as error:
        raise ConcurrentWriteError(
            f"{table}: a concurrent commit conflicts with this write; retry it ({one_line(error)})"
        ) from None


def _conform(rows: pa.Table | pa.RecordBatch, schema: pa.Schema) -> pa.Table:
    """`rows` with the columns of `schema` in its order and types (nulls where it has none)."""
    rows = pa.Table.from_batches([rows]) if isinstance(rows, pa.RecordBatch) else rows
    columns = [
        rows[field.name] if field.name in rows.column_names else pa.nulls(rows.num_rows)
        for field in schema
    ]
    return pa.Table.from_arrays(columns, names=schema.names).cast(schema)


def sql_literal(value: str) -> str:
    """A string as a SQL literal of a delta-rs predicate."""
    return "'" + value.replace("'", "''") + "'"


def sql_list(values: list[str]) -> str:
    return "(" + ", ".join(map(sql_literal, values)) + ")"


def one_line(error: Exception) -> str:
    """An error's message on one line (what a user sees of a library's error)."""
    return " ".join(str(error).split())
