"""DuckDB over the store: the views of `views.sql`, read-only queries, batched prior reads."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from storage.schema import schema_of

VIEWS_SQL = Path(__file__).with_name("views.sql")
DEFAULT_MEMORY_LIMIT = "4GB"
"""The most memory one store connection's queries may hold (DuckDB's `memory_limit`)."""
# A view's source in views.sql: read_parquet over a glob relative to the store root.
_VIEW_SOURCE = re.compile(r"read_parquet\('([^']+)'")


class QueryError(Exception):
    """A query the store refuses (not a single read statement) or DuckDB cannot run."""


class QueryTimeoutError(QueryError):
    """A query that ran past its time limit and was interrupted."""


def connect(
    root: Path, skip: Collection[Path] = (), memory_limit: str = DEFAULT_MEMORY_LIMIT
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB whose views read the store's Parquet files (except `skip`), sandboxed:
    it reads files under `root` only, installs and loads no extension, holds at most
    `memory_limit`, and its settings are locked so no query can lift any of this."""
    connection = duckdb.connect(
        ":memory:",
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False},
    )
    connection.execute("SET allowed_directories = ?", [[f"{root}/"]])
    connection.execute("SET temp_directory = ''")
    try:
        connection.execute("SET memory_limit = ?", [memory_limit])
    except duckdb.Error as error:
        raise QueryError(
            f"memory limit {memory_limit!r} is not a size such as {DEFAULT_MEMORY_LIMIT} "
            f"({_one_line(error)})"
        ) from None
    connection.execute("SET enable_external_access = false")
    connection.execute("SET lock_configuration = true")
    connection.execute(store_views_sql(root, skip))
    return connection


def store_views_sql(root: Path, skip: Collection[Path] = ()) -> str:
    """views.sql with its relative globs made absolute under `root` (a sandboxed connection has
    no current directory to resolve them against); a glob matching a file of `skip` becomes the
    list of the other files it matches."""

    def absolute(match: re.Match[str]) -> str:
        pattern = match.group(1)
        matched = sorted(root.glob(pattern)) if skip else []
        kept = [path for path in matched if path not in skip]
        if len(kept) < len(matched) and kept:
            return f"read_parquet({_quoted_list(kept)}"
        return f"read_parquet({_quoted(root / pattern)}"

    return _VIEW_SOURCE.sub(absolute, VIEWS_SQL.read_text())


def run_read_query(
    connection: duckdb.DuckDBPyConnection, sql: str, timeout_s: float | None = None
) -> pa.Table:
    """Run one SELECT and return its rows; anything that could write is refused before it runs,
    and a query still running after `timeout_s` seconds is interrupted (QueryTimeoutError)."""
    try:
        statements = connection.extract_statements(sql)
    except duckdb.Error as error:
        raise QueryError(_one_line(error)) from None
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
            raise QueryError(_one_line(error)) from None


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


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def _quoted(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _quoted_list(files: Sequence[Path]) -> str:
    return "[" + ", ".join(map(_quoted, files)) + "]"


def _file_list(files: Sequence[Path]) -> str:
    return f"read_parquet({_quoted_list(files)})"


def relation_rollup(connection: duckdb.DuckDBPyConnection, files: Sequence[Path]) -> pa.Table:
    """`relation_counts` rows of relation files: mentions per triple, most mentioned first."""
    sql = f"""
    SELECT prior_set_id, dataset, subject_name AS subject, predicate, object_name AS object,
           count(*) AS mentions
    FROM {_file_list(files)}
    GROUP BY ALL
    ORDER BY mentions DESC, subject, predicate, object
    """
    with connection.cursor() as cursor:
        return cursor.sql(sql).to_arrow_table().cast(schema_of("relation_counts"))


def read_priors(
    connection: duckdb.DuckDBPyConnection,
    files: dict[str, Sequence[Path]],
    prior_set_id: str,
    image_ids: list[str],
) -> list[dict[str, Any]]:
    """Caption and priors of `image_ids`, one dict per image with priors, in a single query.

    `files` maps captions/objects/attributes/relations to the Parquet files to read.
    """
    sql = f"""
    WITH wanted AS (SELECT DISTINCT unnest($ids::VARCHAR[]) AS image_id),
    caps AS (
        SELECT image_id, caption FROM {_file_list(files["captions"])}
        WHERE prior_set_id = $prior_set AND image_id IN (SELECT image_id FROM wanted)
    ),
    objs AS (
        SELECT image_id,
               list({{'name': name, 'span': span, 'count': count}} ORDER BY object_index) AS items
        FROM {_file_list(files["objects"])}
        WHERE prior_set_id = $prior_set AND image_id IN (SELECT image_id FROM wanted)
        GROUP BY image_id
    ),
    attrs AS (
        SELECT image_id,
               list({{'object': object_index, 'value': value, 'kind': kind}}
                    ORDER BY attribute_index) AS items
        FROM {_file_list(files["attributes"])}
        WHERE prior_set_id = $prior_set AND image_id IN (SELECT image_id FROM wanted)
        GROUP BY image_id
    ),
    rels AS (
        SELECT image_id,
               list({{'subject': subject_index, 'predicate': predicate, 'object': object_index}}
                    ORDER BY relation_index) AS items
        FROM {_file_list(files["relations"])}
        WHERE prior_set_id = $prior_set AND image_id IN (SELECT image_id FROM wanted)
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
    with connection.cursor() as cursor:
        result = cursor.execute(sql, {"ids": image_ids, "prior_set": prior_set_id})
        names = [column[0] for column in result.description]
        return [dict(zip(names, row, strict=True)) for row in result.fetchall()]
