"""Prior statistics over the store's views, filtered by dataset and prior set, top-N limited."""

from __future__ import annotations

from dataclasses import dataclass, replace

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

# Each statistic as one query over the tables of views.sql, grouped by only the keys it reports
# (the filter goes into WHERE). Frequencies sum the per-shard *_counts tables; relation triples
# sum relation_mentions (for one prior set and dataset, `statistic` uses the faster
# `_TOP_RELATIONS_OF_ONE_SET`).
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
        SELECT subject, predicate, object, sum(mentions)::BIGINT AS mentions
        FROM relation_mentions WHERE {_WHERE}
        GROUP BY subject, predicate, object
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


# Top relations of one prior set in one dataset, where relation_counts holds each triple once:
# a triple whose rolled-up count is below the N-th largest one minus the largest count of the
# uncompacted shards cannot reach the top N, so only the few triples above that floor are read
# and added to the uncompacted ones (whose rolled-up count, if below it, does not matter).
_TOP_RELATIONS_OF_ONE_SET = f"""
    WITH recent AS (
        SELECT subject_name AS subject, predicate, object_name AS object, count(*) AS mentions
        FROM uncompacted_relations WHERE {_WHERE}
        GROUP BY ALL
    ),
    rolled AS (SELECT subject, predicate, object, mentions FROM relation_counts WHERE {_WHERE}),
    leaders AS (SELECT mentions FROM rolled ORDER BY mentions DESC LIMIT $top),
    floor AS (
        SELECT if(count(*) < $top, 0, min(mentions))
               - (SELECT coalesce(max(mentions), 0) FROM recent) AS mentions
        FROM leaders
    ),
    head AS (SELECT * FROM rolled WHERE mentions >= (SELECT mentions FROM floor))
    SELECT subject, predicate, object,
           coalesce(head.mentions, 0) + coalesce(recent.mentions, 0) AS mentions
    FROM head FULL JOIN recent USING (subject, predicate, object)
    ORDER BY mentions DESC, subject, predicate, object LIMIT $top"""


def statistic(
    connection: duckdb.DuckDBPyConnection, name: str, where: StatisticsFilter
) -> pa.Table:
    """One statistic of `STATISTICS_SQL` as an Arrow table."""
    sql = STATISTICS_SQL[name]
    if name == "top_relations" and (one_set := _one_prior_set_and_dataset(connection, where)):
        sql, where = _TOP_RELATIONS_OF_ONE_SET, one_set
    values = {"dataset": where.dataset, "prior_set": where.prior_set_id, "top": where.top}
    parameters = {key: value for key, value in values.items() if f"${key}" in sql}
    return connection.sql(sql, params=parameters).to_arrow_table()


def _one_prior_set_and_dataset(
    connection: duckdb.DuckDBPyConnection, where: StatisticsFilter
) -> StatisticsFilter | None:
    """`where` naming its prior set and dataset, if its relations come from only one of each."""
    found = connection.sql(
        f"SELECT DISTINCT prior_set_id, dataset FROM predicate_counts WHERE {_WHERE} LIMIT 2",
        params={"dataset": where.dataset, "prior_set": where.prior_set_id},
    ).fetchall()
    if len(found) != 1:
        return None
    ((prior_set_id, dataset),) = found
    return replace(where, prior_set_id=prior_set_id, dataset=dataset)


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
