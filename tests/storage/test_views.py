"""DuckDB views: raw tables, statistics with exact counts, store folders with glob characters,
guards."""

from __future__ import annotations

import dataclasses

import pytest

from storage import ImagePriors, PriorStore, StoreError
from storage.query import QueryError, run_read_query
from storage.stats import StatisticsFilter, statistic, statistics


@pytest.fixture
def filled(store, prior_set, spec, write_demo_shard):
    """Two red-car images and a failure in demo; a second prior set (returned): a bus in coco."""
    write_demo_shard("shard-0", ["a", "b", "broken"])
    other = store.register_prior_set(dataclasses.replace(spec, prompt="Describe all objects."))
    bus = ImagePriors(
        "x",
        "Two yellow buses.",
        [{"name": "bus", "span": "Two yellow buses", "count": 2}],
        [
            {"object": 0, "value": "yellow", "kind": "color"},
            {"object": 0, "value": "two", "kind": "count"},
        ],
    )
    store.write_shard(other, "coco", "val", "shard-0", [], [bus], [])
    store.write_class_names("demo", [["car", "automobile"], ["road"], ["person"]])
    return other


def rows(table) -> list[tuple]:
    return [tuple(row.values()) for row in table.to_pylist()]


def test_statistics_count_every_prior(store, prior_set, filled):
    result = statistics(store.connect(), StatisticsFilter(top=10))
    assert rows(result["top_objects"]) == [("car", 2, 2), ("road", 2, 2), ("bus", 1, 2)]
    assert rows(result["attributes_by_kind"]) == [
        ("color", "red", 2),
        ("color", "yellow", 1),
        ("count", "two", 1),
    ]
    assert rows(result["top_relations"]) == [("car", "on", "road", 2)]
    assert rows(result["relation_predicates"]) == [("on", 2)]
    assert rows(result["objects_per_image"]) == [(1, 1), (2, 2)]
    assert rows(result["class_coverage"]) == [(prior_set, "demo", 3, 2, 0.6667)]


def test_statistics_filter_by_dataset_prior_set_and_top(store, prior_set, filled):
    connection = store.connect()
    only_coco = StatisticsFilter(dataset="coco")
    assert rows(statistic(connection, "top_objects", only_coco)) == [("bus", 1, 2)]
    only_demo_set = StatisticsFilter(prior_set_id=prior_set, top=1)
    assert rows(statistic(connection, "top_objects", only_demo_set)) == [("car", 2, 2)]
    by_kind = rows(statistic(connection, "attributes_by_kind", StatisticsFilter(top=1)))
    assert by_kind == [("color", "red", 2), ("count", "two", 1)]


def test_class_coverage_lists_every_class(store, filled):
    coverage = store.connect().execute(
        "SELECT class_name, mentions, covered FROM class_coverage ORDER BY class_index"
    )
    assert coverage.fetchall() == [("car", 2, True), ("road", 2, True), ("person", 0, False)]


def test_prior_set_summary_counts(store, prior_set, filled):
    summary = store.connect().execute(
        "SELECT prior_set_id, images_with_priors, failed_images, objects, attributes, relations"
        " FROM prior_set_summary ORDER BY images_with_priors DESC"
    )
    assert summary.fetchall() == [(prior_set, 2, 1, 4, 2, 2), (filled, 1, 0, 1, 2, 0)]


@pytest.mark.parametrize("folder", ["store*", "st?re", "a b#%"])
def test_a_store_folder_with_glob_characters_works(tmp_path, spec, folder, make_priors):
    store = PriorStore(tmp_path / folder / "store")
    prior_set = store.register_prior_set(spec)
    store.write_shard(prior_set, "demo", "train", "s", [], [make_priors("a")], [])
    (tmp_path / "store").mkdir()  # what a glob of the folder's name would also match
    connection = store.connect()
    assert connection.execute("SELECT count(*) FROM objects").fetchone() == (2,)
    assert connection.execute("SELECT count(*) FROM object_frequency").fetchone() == (2,)
    assert store.done_image_ids(prior_set) == {"a"}
    assert store.read_priors(prior_set, ["a"]) == {"a": make_priors("a")}


def test_a_store_folder_with_square_brackets_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(StoreError, match=r"holds \[ and \], which delta-rs cannot write under"):
        PriorStore(tmp_path / "runs[1]" / "store")
    assert not (tmp_path / "runs[1]").exists()


def test_an_empty_store_has_empty_views(store):
    connection = store.connect()
    for view in ("objects", "object_frequency", "class_coverage", "prior_set_summary"):
        assert connection.execute(f"SELECT count(*) FROM {view}").fetchone() == (0,)


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELEC name FROM objects", 'Parser Error: syntax error at or near "SELEC"'),
        ("SELECT nope FROM objects", 'Binder Error: Referenced column "nope" not found'),
        (
            "COPY (SELECT 1) TO 'objects/x.parquet'",
            "only read queries (SELECT) are allowed, got COPY",
        ),
        ("DROP VIEW objects", "only read queries (SELECT) are allowed, got DROP"),
        ("SELECT 1; SELECT 2", "expected one SQL statement, got 2"),
    ],
)
def test_run_read_query_refuses_with_one_line(store, sql, message):
    with pytest.raises(QueryError) as caught:
        run_read_query(store.connect(), sql)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_count_tables_agree_with_prior_rows_after_rewrites_and_compaction(
    store, prior_set, write_demo_shard
):
    write_demo_shard("shard-0", ["a", "b", "c"])
    write_demo_shard("shard-1", ["d", "e"])
    store.compact()
    write_demo_shard("shard-0", ["x", "y"])
    connection = store.connect()
    from_counts = connection.execute(
        "SELECT name, mentions FROM object_frequency ORDER BY name"
    ).fetchall()
    from_rows = connection.execute(
        "SELECT name, count(*) FROM objects GROUP BY name ORDER BY name"
    ).fetchall()
    assert from_counts == from_rows == [("car", 2), ("road", 2)]
    predicates = connection.execute("SELECT predicate, mentions FROM predicate_frequency")
    assert predicates.fetchall() == [("on", 2)]
