"""DuckDB over the store: one version's Delta tables (their Parquet files, or Arrow datasets for
S3), the table views and the statistics views of `views.sql` over them, read-only queries,
batched prior reads."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

from storage.schema import (
    IN_PRIORS,
    PARTITIONS,
    PRIORS,
    ROLLED_RELATIONS,
    TABLE_COLUMN,
    delta_schema_of,
    schema_of,
)
from storage.tables import Source, one_line

VIEWS_SQL = Path(__file__).with_name("views.sql")
DEFAULT_MEMORY_LIMIT = "4GB"
"""The most memory one store connection's queries may hold (DuckDB's `memory_limit`)."""


class QueryError(Exception):
    """A query the store refuses (not a single read statement) or DuckDB cannot run."""


class QueryTimeoutError(QueryError):
    """A query that ran past its time limit and was interrupted."""


def connect(
    sources: Mapping[str, Source],
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    readable: Path | None = None,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB over `sources` (one version of each Delta table) with every table and
    statistics view, sandboxed: it reads files under the folder `readable` only (none if None:
    Arrow datasets need none), installs and loads no extension, holds at most `memory_limit`, and
    its settings are locked so no query can lift any of this."""
    connection = new_connection()
    if readable is not None:
        connection.execute("SET allowed_directories = ?", [[f"{readable}/"]])
    connection.execute("SET temp_directory = ''")
    try:
        connection.execute("SET memory_limit = ?", [memory_limit])
    except duckdb.Error as error:
        raise QueryError(
            f"memory limit {memory_limit!r} is not a size such as {DEFAULT_MEMORY_LIMIT} "
            f"({one_line(error)})"
        ) from None
    connection.execute("SET enable_external_access = false")
    connection.execute("SET lock_configuration = true")
    _add_views(connection, sources, views=True)
    return connection


def connect_unlocked(
    sources: Mapping[str, Source], views: bool = True
) -> duckdb.DuckDBPyConnection:
    """A DuckDB over `sources` with the table views and, if `views`, the statistics views."""
    connection = new_connection()
    _add_views(connection, sources, views)
    return connection


def new_connection() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that loads no extension and caches Parquet footers."""
    connection = duckdb.connect(
        ":memory:",
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False},
    )
    connection.execute("SET parquet_metadata_cache = true")  # Delta never rewrites a file
    connection.execute("SET enable_progress_bar = false")  # a library prints no bars
    return connection


def _add_views(
    connection: duckdb.DuckDBPyConnection, sources: Mapping[str, Source], views: bool
) -> None:
    """Each table of `sources` under its name (a view over its files, or the registered Arrow
    dataset), the table views of `priors` and, if `views`, the statistics views."""
    for name, source in sources.items():
        if isinstance(source, ds.Dataset):
            connection.register(name, source)
        elif not source:  # a table without files yet
            connection.register(name, delta_schema_of(name).empty_table())
        else:
            connection.execute(f"CREATE VIEW {name} AS SELECT {_read_parquet_sql(name, source)}")
    files = sources[PRIORS]
    connection.execute(table_views_sql(None if isinstance(files, ds.Dataset) else files))
    if views:
        connection.execute(VIEWS_SQL.read_text())


def _read_parquet_sql(table: str, files: list[str]) -> str:
    """The columns of the Delta table `table` (in its order) from its Parquet `files`, partition
    values read from their paths (all strings), columns matched by name (a file written before a
    column was added has nulls there)."""
    columns = ", ".join(f'"{name}"' for name in delta_schema_of(table).names)
    paths = ", ".join("'" + path.replace("'", "''") + "'" for path in files)
    hive = ", hive_partitioning = true, hive_types_autocast = false" if table in PARTITIONS else ""
    return f"{columns} FROM read_parquet([{paths}], union_by_name = true{hive})"


def table_views_sql(files: list[str] | None = None) -> str:
    """One view per table of `priors` over the rows that belong to it (relations: fresh and
    rolled up), and `uncompacted_relations`, the relations compaction has not counted yet. Given
    the files of `priors`, a view reads only those of its partitions."""
    partitions = {table: (table,) for table in IN_PRIORS}
    partitions["relations"] = ("relations", ROLLED_RELATIONS)
    partitions["uncompacted_relations"] = ("relations",)
    views = []
    for view, names in partitions.items():
        columns = ", ".join(schema_of(view.removeprefix("uncompacted_")).names)
        own = [f for f in files or [] if any(f"/{TABLE_COLUMN}={n}/" in f for n in names)]
        rows = f"{PRIORS} WHERE {TABLE_COLUMN} IN ({', '.join(repr(name) for name in names)})"
        if own:
            rows = f"(SELECT {_read_parquet_sql(PRIORS, own)})"
        views.append(f"CREATE OR REPLACE VIEW {view} AS SELECT {columns} FROM {rows};")
    return "\n".join(views)


def run_read_query(
    connection: duckdb.DuckDBPyConnection, sql: str, timeout_s: float | None = None
) -> pa.Table:
    """Run one SELECT and return its rows; anything that could write is refused before it runs,
    and a query still running after `timeout_s` seconds is interrupted (QueryTimeoutError)."""
    try:
        statements = connection.extract_statements(sql)
    except duckdb.Error as error:
        raise QueryError(one_line(error)) from None
    if len(statements) != 1:
        raise QueryError(f"expected one SQL statement, got {len(statements)}")
    if statements[0].type != duckdb.StatementType.SELECT:
        keyword = statements[0].query.split(maxsplit=1)[0].upper()
        raise QueryError(f"only read queries (SELECT) are allowed, got {keyword}")
    with _time_limit(connection, timeout_s) as expired:
        try:
            return connection.sql(sql).to_arrow_table()
        except duckdb.InterruptException:
            if not expired.is_set():
                raise QueryError("the query was interrupted") from None
            raise QueryTimeoutError(
                f"the query ran longer than {timeout_s:g} s and was stopped; "
                "narrow it or give a larger --timeout"
            ) from None
        except duckdb.Error as error:
            raise QueryError(one_line(error)) from None


@contextlib.contextmanager
def _time_limit(
    connection: duckdb.DuckDBPyConnection, timeout_s: float | None
) -> Iterator[threading.Event]:
    """Interrupt the connection's query after `timeout_s` (never if None); the event tells
    whether it came to that."""
    expired = threading.Event()
    if timeout_s is None:
        yield expired
        return

    def interrupt() -> None:
        expired.set()
        connection.interrupt()

    timer = threading.Timer(timeout_s, interrupt)
    timer.start()
    try:
        yield expired
    finally:
        timer.cancel()


PRIOR_COLUMNS = [TABLE_COLUMN, "image_id", "caption", "object_index", "name", "span", "count"]
PRIOR_COLUMNS += ["attribute_index", "value", "kind", "relation_index", "subject_index"]
PRIOR_COLUMNS += ["predicate"]
"""The columns of `priors` that `read_priors` needs from its rows."""


def read_priors(connection: duckdb.DuckDBPyConnection, rows: pa.Table) -> list[dict[str, Any]]:
    """Caption and priors of each image in `rows` (the `PRIOR_COLUMNS` of one prior set's
    captions, objects, attributes and relations rows of the wanted images), one dict per image
    with a caption."""
    connection.register("wanted_rows", rows)
    sql = """
    WITH caps AS (
        SELECT image_id, caption FROM wanted_rows WHERE table_name = 'captions'
    ),
    objs AS (
        SELECT image_id,
               list({'name': name, 'span': span, 'count': count} ORDER BY object_index) AS items
        FROM wanted_rows WHERE table_name = 'objects'
        GROUP BY image_id
    ),
    attrs AS (
        SELECT image_id,
               list({'object': object_index, 'value': value, 'kind': kind}
                    ORDER BY attribute_index) AS items
        FROM wanted_rows WHERE table_name = 'attributes'
        GROUP BY image_id
    ),
    rels AS (
        SELECT image_id,
               list({'subject': subject_index, 'predicate': predicate, 'object': object_index}
                    ORDER BY relation_index) AS items
        FROM wanted_rows WHERE table_name IN ('relations', 'rolled_relations')
        GROUP BY image_id
    )
    SELECT caps.image_id, caps.caption,
           coalesce(objs.items, []) AS objects,
           coalesce(attrs.items, []) AS attributes,
           coalesce(rels.items, []) AS relations
    FROM caps
    LEFT JOIN objs USING (image_id)
    LEFT JOIN attrs USING (image_id)
    LEFT JOIN rels USING (image_id)
    """
    try:
        return connection.sql(sql).to_arrow_table().to_pylist()
    finally:
        connection.unregister("wanted_rows")
