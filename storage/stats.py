"""Prior statistics over the store's views, filtered by dataset and prior set, top-N limited."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa


@dataclass(frozen=True)
class StatisticsFilter:
    """Which rows the statistics cover (None = all) and how many top rows each keeps."""

    dataset: str | None = None
    prior_set_id: str | None = None
    top: int = 20


_WHERE = (
    "($dataset IS NULL OR dataset = $dataset) AND ($prior_set IS NULL OR prior_set_id = $prior_set)"
)

# Each statistic as one query over the store's tables and views, grouped by only the keys it
# reports (the filter goes into WHERE and down to the scan). Frequencies sum the per-shard
# *_counts tables; relation triples are counted from the relations.
STATISTICS_SQL: dict[str, str] = {
    "top_objects": f"""
        SELECT name, sum(mentions) AS mentions, sum(instances) AS instances
        FROM object_counts WHERE {_WHERE}
        GROUP BY name ORDER BY mentions DESC, name LIMIT $top""",
    "attributes_by_kind": f"""
        SELECT kind, value, sum(mentions) AS mentions
        FROM attribute_counts WHERE {_WHERE}
        GROUP BY kind, value
        QUALIFY row_number() OVER (PARTITION BY kind ORDER BY sum(mentions) DESC, value) <= $top
        ORDER BY kind, mentions DESC, value""",
    "top_relations": f"""
        SELECT subject_name AS subject, predicate, object_name AS object, count(*) AS mentions
        FROM relations WHERE {_WHERE}
        GROUP BY subject_name, predicate, object_name
        ORDER BY mentions DESC, subject, predicate, object LIMIT $top""",
    "relation_predicates": f"""
        SELECT predicate, sum(mentions) AS mentions
        FROM predicate_counts WHERE {_WHERE}
        GROUP BY predicate ORDER BY mentions DESC, predicate LIMIT $top""",
    "objects_per_image": f"""
        SELECT num_objects AS objects, count(*) AS images
        FROM captions WHERE {_WHERE}
        GROUP BY num_objects ORDER BY objects""",
    "class_coverage": f"""
        SELECT prior_set_id, dataset, classes, covered, coverage
        FROM class_coverage_summary WHERE {_WHERE}
        ORDER BY dataset, prior_set_id""",
}


def statistic(
    connection: duckdb.DuckDBPyConnection, name: str, where: StatisticsFilter
) -> pa.Table:
    """One statistic of `STATISTICS_SQL` as an Arrow table."""
    sql = STATISTICS_SQL[name]
    values = {"dataset": where.dataset, "prior_set": where.prior_set_id, "top": where.top}
    parameters = {key: value for key, value in values.items() if f"${key}" in sql}
    return connection.sql(sql, params=parameters).to_arrow_table()


def statistics(
    connection: duckdb.DuckDBPyConnection, where: StatisticsFilter
) -> dict[str, pa.Table]:
    """Every statistic, in the order of `STATISTICS_SQL`."""
    return {name: statistic(connection, name, where) for name in STATISTICS_SQL}


def prior_set_overview(connection: duckdb.DuckDBPyConnection) -> pa.Table:
    """One row per prior set: what it is, and its images, failures and priors."""
    return connection.sql(
        "SELECT prior_set_id, name, captioner, model, images_with_priors AS images,"
        " failed_images AS failed, objects, attributes, relations FROM prior_set_summary"
    ).to_arrow_table()
