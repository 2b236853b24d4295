"""Relation-triple rollup of compaction: the relation views and statistics stay exact."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import duckdb
import pytest

import storage.query
from storage import (
    SCHEMA_VERSION,
    ConcurrentWriteError,
    ImagePriors,
    PriorStore,
    SchemaVersionError,
    StoreError,
)
from storage.stats import StatisticsFilter, statistic

Triple = tuple[str, str, str]


def relation_priors(image_id: str, triple: Triple) -> ImagePriors:
    """One image whose caption mentions one relation between two objects."""
    subject, predicate, obj = triple
    objects = [{"name": name, "span": f"a {name}", "count": 1} for name in (subject, obj)]
    relation = {"subject": 0, "predicate": predicate, "object": 1}
    return ImagePriors(image_id, f"A {subject} {predicate} a {obj}.", objects, [], [relation])


def write_relations(
    store: PriorStore,
    prior_set: str,
    shard: str,
    counts: dict[Triple, int],
    split: str = "train",
    dataset: str = "demo",
) -> None:
    """A shard with `count` images per triple (image ids unique per prior set and shard)."""
    triples = [triple for triple, count in counts.items() for _ in range(count)]
    priors = [relation_priors(f"{shard}-{i}", triple) for i, triple in enumerate(triples)]
    store.write_shard(prior_set, dataset, split, shard, [], priors, [])


def grouped_relations(connection: duckdb.DuckDBPyConnection) -> list[tuple]:
    return connection.execute(
        "SELECT prior_set_id, dataset, subject_name, predicate, object_name, count(*)"
        " FROM relations GROUP BY ALL ORDER BY ALL"
    ).fetchall()


def grouped_top(connection: duckdb.DuckDBPyConnection, where: StatisticsFilter) -> list[tuple]:
    """The top relations by a plain GROUP BY over every relation row."""
    return connection.execute(
        "SELECT subject_name, predicate, object_name, count(*) AS mentions FROM relations"
        " WHERE ($dataset IS NULL OR dataset = $dataset)"
        " AND ($prior_set IS NULL OR prior_set_id = $prior_set)"
        " GROUP BY ALL ORDER BY mentions DESC, subject_name, predicate, object_name LIMIT $top",
        {"dataset": where.dataset, "prior_set": where.prior_set_id, "top": where.top},
    ).fetchall()


def top_relations(store: PriorStore, where: StatisticsFilter) -> list[tuple]:
    return top_relations_of(store.connect(), where)


def top_relations_of(connection: duckdb.DuckDBPyConnection, where: StatisticsFilter) -> list[tuple]:
    table = statistic(connection, "top_relations", where)
    return [tuple(row.values()) for row in table.to_pylist()]


def assert_exact(store: PriorStore, prior_sets: list[str]) -> None:
    """The view and the statistic agree with GROUP BY over the raw rows, for several filters."""
    connection = store.connect()
    view = connection.execute("SELECT * FROM relation_frequency ORDER BY ALL").fetchall()
    assert view == grouped_relations(connection)
    for prior_set in [None, *prior_sets]:
        for top in (1, 2, 3, 10):
            where = StatisticsFilter(prior_set_id=prior_set, top=top)
            assert top_relations_of(connection, where) == grouped_top(connection, where), where


CAR, DOG, MAN = ("car", "on", "road"), ("dog", "near", "car"), ("man", "rides", "horse")
CAT, SUN = ("cat", "on", "mat"), ("sun", "in", "sky")


def test_relation_counts_stay_exact_through_compaction_and_new_shards(store, prior_set, spec):
    write_relations(store, prior_set, "shard-0", {CAR: 6, DOG: 5, CAT: 1})
    write_relations(store, prior_set, "shard-1", {CAR: 4, DOG: 4, MAN: 8, CAT: 1})
    assert_exact(store, [prior_set])

    store.compact()
    assert sorted(p.name for p in (store.root / "relation_counts").rglob("*.parquet")) == [
        f"{prior_set}.parquet",
        "schema.parquet",
    ]
    assert top_relations(store, StatisticsFilter(top=2)) == [(*CAR, 10), (*DOG, 9)]
    assert_exact(store, [prior_set])

    # CAT's rolled-up 2 is exactly the floor (9 - 7): it must be read to tie DOG at 9.
    write_relations(store, prior_set, "shard-2", {CAT: 7, SUN: 1})
    assert top_relations(store, StatisticsFilter(top=2)) == [(*CAR, 10), (*CAT, 9)]
    assert top_relations(store, StatisticsFilter(top=3)) == [(*CAR, 10), (*CAT, 9), (*DOG, 9)]
    assert_exact(store, [prior_set])

    write_relations(store, prior_set, "shard-0", {SUN: 3})
    assert_exact(store, [prior_set])

    write_relations(store, prior_set, "shard-3", {MAN: 2}, split="val")
    write_relations(store, prior_set, "shard-4", {DOG: 2}, split="val")
    other = store.register_prior_set(dataclasses.replace(spec, prompt="List the relations."))
    write_relations(store, other, "shard-0", {SUN: 20}, dataset="coco")
    write_relations(store, other, "shard-1", {CAT: 1, MAN: 1}, dataset="coco")
    assert_exact(store, [prior_set, other])

    store.compact()
    assert top_relations(store, StatisticsFilter(top=2)) == [(*SUN, 24), (*MAN, 11)]
    assert_exact(store, [prior_set, other])

    store.delete_prior_set(other)
    assert not list((store.root / "relation_counts").glob(f"*/{other}.parquet"))
    assert_exact(store, [prior_set])


def test_rewriting_every_compacted_shard_empties_the_rollup(store, prior_set):
    write_relations(store, prior_set, "shard-0", {CAR: 2})
    write_relations(store, prior_set, "shard-1", {DOG: 1})
    store.compact()
    write_relations(store, prior_set, "shard-0", {})
    write_relations(store, prior_set, "shard-1", {MAN: 1})
    assert not list((store.root / "relation_counts").glob("dataset=*/*.parquet"))
    assert top_relations(store, StatisticsFilter()) == [(*MAN, 1)]
    assert_exact(store, [prior_set])


@pytest.mark.parametrize("top", [1, 5])
def test_an_empty_store_has_no_top_relations(store, top):
    assert top_relations(store, StatisticsFilter(top=top)) == []


def test_views_sql_counts_relations_from_the_store_root(store, prior_set, monkeypatch):
    write_relations(store, prior_set, "shard-0", {CAR: 2, DOG: 1})
    write_relations(store, prior_set, "shard-1", {CAR: 1})
    store.compact()
    write_relations(store, prior_set, "shard-2", {DOG: 3, MAN: 1})
    monkeypatch.chdir(store.root)
    connection = duckdb.connect()
    connection.execute(Path("views.sql").read_text())
    frequency = connection.execute(
        "SELECT subject, predicate, object, mentions FROM relation_frequency ORDER BY ALL"
    )
    assert frequency.fetchall() == [(*CAR, 3), (*DOG, 4), (*MAN, 1)]
    assert connection.execute("SELECT count(*) FROM uncompacted_relations").fetchone() == (4,)


def test_a_failed_rollup_publishes_no_merged_relations(store, prior_set, monkeypatch):
    write_relations(store, prior_set, "shard-0", {CAR: 2})
    write_relations(store, prior_set, "shard-1", {DOG: 1})
    relation_files = sorted((store.root / "relations").rglob("*.parquet"))

    def fail(*_):
        raise OSError("disk full")

    monkeypatch.setattr(storage.query, "relation_rollup", fail)
    with pytest.raises(OSError, match="disk full"):
        store.compact()
    assert sorted((store.root / "relations").rglob("*.parquet")) == relation_files
    assert not list((store.root / "relation_counts").glob("dataset=*/*.parquet"))
    assert top_relations(store, StatisticsFilter()) == [(*CAR, 2), (*DOG, 1)]


def run_first_inside_the_rollup(monkeypatch, other_writer) -> None:
    """Run `other_writer` to its commit while the next rollup is being computed."""
    original = storage.query.relation_rollup
    waiting = [other_writer]

    def rollup(connection, files):
        while waiting:
            waiting.pop()()
        return original(connection, files)

    monkeypatch.setattr(storage.query, "relation_rollup", rollup)


def test_a_rewrite_loses_to_a_compaction_committed_during_its_rollup(store, prior_set, monkeypatch):
    write_relations(store, prior_set, "shard-0", {CAR: 1, MAN: 5})
    write_relations(store, prior_set, "shard-1", {DOG: 1})
    store.compact()
    write_relations(store, prior_set, "shard-2", {SUN: 2}, split="test")
    write_relations(store, prior_set, "shard-3", {SUN: 2}, split="test")
    run_first_inside_the_rollup(monkeypatch, PriorStore(store.root).compact)
    with pytest.raises(ConcurrentWriteError, match=r"relation_counts.*changed while this write"):
        write_relations(store, prior_set, "shard-0", {CAR: 1})
    assert top_relations(store, StatisticsFilter()) == [(*MAN, 5), (*SUN, 4), (*CAR, 1), (*DOG, 1)]
    assert_exact(store, [prior_set])
    write_relations(store, prior_set, "shard-0", {CAR: 1})
    assert top_relations(store, StatisticsFilter()) == [(*SUN, 4), (*CAR, 1), (*DOG, 1)]
    assert_exact(store, [prior_set])


def make_version_1(store: PriorStore) -> None:
    """Rewrite a store to look as schema version 1 left it: no relation_counts (nor the later
    eval_images) at all."""
    shutil.rmtree(store.root / "relation_counts")
    shutil.rmtree(store.root / "eval_images")
    (store.root / "store.json").write_text(json.dumps({"schema_version": 1}))


def test_a_version_1_store_is_refused_with_a_hint_then_upgraded(store, prior_set, spec):
    other = store.register_prior_set(dataclasses.replace(spec, prompt="List the relations."))
    write_relations(store, prior_set, "shard-0", {CAR: 3, DOG: 1})
    write_relations(store, prior_set, "shard-1", {CAR: 1, MAN: 2})
    write_relations(store, prior_set, "shard-2", {SUN: 4}, split="val")
    write_relations(store, other, "shard-0", {CAT: 2}, dataset="coco")
    write_relations(store, other, "shard-1", {CAT: 1}, dataset="coco")
    store.compact()
    write_relations(store, prior_set, "shard-3", {DOG: 5})
    make_version_1(store)

    hint = (
        f"reads schema version {SCHEMA_VERSION}; run: llmformer priors upgrade --store {store.root}"
    )
    with pytest.raises(SchemaVersionError, match=re.escape(hint) + "$"):
        PriorStore(store.root)
    upgraded = PriorStore.upgrade(store.root)

    assert json.loads((store.root / "store.json").read_text()) == {"schema_version": SCHEMA_VERSION}
    assert sorted(p.name for p in (store.root / "relation_counts").rglob("*.parquet")) == sorted(
        [f"{prior_set}.parquet", f"{other}.parquet", "schema.parquet"]
    )
    assert top_relations(upgraded, StatisticsFilter(top=2)) == [(*DOG, 6), (*CAR, 4)]
    assert_exact(upgraded, [prior_set, other])
    assert_exact(PriorStore.upgrade(store.root), [prior_set, other])


def test_a_store_of_another_version_is_neither_upgraded_nor_given_the_hint(store):
    (store.root / "store.json").write_text(json.dumps({"schema_version": 99}))
    for open_store in (PriorStore, PriorStore.upgrade):
        with pytest.raises(SchemaVersionError, match=r"use a matching llmformer release$"):
            open_store(store.root)
    assert json.loads((store.root / "store.json").read_text()) == {"schema_version": 99}


@pytest.mark.parametrize(
    ("manifest", "error"),
    [
        ("[1, 2]", r"store\.json is unreadable \(list indices"),
        ('{"schema_version": [3]}', r"names schema version \[3\], not a whole number"),
        ('{"schema_version": "3"}', r"names schema version '3', not a whole number"),
    ],
)
def test_a_manifest_that_is_not_a_version_object_is_one_store_error(store, manifest, error):
    (store.root / "store.json").write_text(manifest)
    for open_store in (PriorStore, PriorStore.upgrade):
        with pytest.raises(StoreError, match=error):
            open_store(store.root)


def test_upgrading_a_missing_store_creates_nothing(tmp_path):
    with pytest.raises(StoreError, match="no prior store at"):
        PriorStore.upgrade(tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()


def test_relation_statistics_of_several_sets_sum_the_one_merged_view(store):
    connection = store.connect()
    mentions = [("p1", "demo", *CAR, 2), ("p2", "coco", *CAR, 3), ("p2", "coco", *CAR, 4)]
    mentions.append(("p2", "coco", *SUN, 1))
    connection.execute(
        "CREATE OR REPLACE VIEW relation_mentions AS SELECT * FROM (VALUES"
        + ", ".join(f"{row}" for row in mentions)
        + ") AS t(prior_set_id, dataset, subject, predicate, object, mentions)"
    )
    frequency = connection.execute("SELECT * FROM relation_frequency ORDER BY ALL").fetchall()
    assert frequency == [("p1", "demo", *CAR, 2), ("p2", "coco", *CAR, 7), ("p2", "coco", *SUN, 1)]
    assert top_relations_of(connection, StatisticsFilter()) == [(*CAR, 9), (*SUN, 1)]
    assert top_relations_of(connection, StatisticsFilter(dataset="coco", top=1)) == [(*CAR, 7)]
