"""DuckDB over the store: the views of `views.sql`, read-only queries, batched prior reads."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from storage.schema import schema_of

VIEWS_SQL = Path(__file__).with_name("views.sql")


class QueryError(Exception):
    """A query the store refuses (not a single read statement) or DuckDB cannot run."""


def connect(root: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB whose views read the store's Parquet files; it holds no data itself."""
    connection = duckdb.connect(":memory:")
    connection.execute("SET file_search_path = ?", [str(root)])
    connection.execute(VIEWS_SQL.read_text())
    return connection


def run_read_query(connection: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    """Run one SELECT and return its rows; anything that could write is refused before it runs."""
    try:
        statements = connection.extract_statements(sql)
    except duckdb.Error as error:
        raise QueryError(_one_line(error)) from None
    if len(statements) != 1:
        raise QueryError(f"expected one SQL statement, got {len(statements)}")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise QueryError(f"only read queries (SELECT) are allowed, got {kind.name}")
    try:
        return connection.sql(sql).to_arrow_table()
    except duckdb.Error as error:
        raise QueryError(_one_line(error)) from None


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def _file_list(files: Sequence[Path]) -> str:
    quoted = ", ".join("'" + str(path).replace("'", "''") + "'" for path in files)
    return f"read_parquet([{quoted}])"


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
