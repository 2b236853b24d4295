"""Relation statistics stay exact through compaction, rewritten shards and several prior sets."""

from __future__ import annotations

import dataclasses

import duckdb
import pytest

from storage import ImagePriors, PriorStore
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
    connection = store.connect()
    assert connection.execute("SELECT count(*) FROM uncompacted_relations").fetchone() == (0,)
    assert connection.execute("SELECT sum(mentions) FROM relation_counts").fetchone() == (29,)
    assert top_relations(store, StatisticsFilter(top=2)) == [(*CAR, 10), (*DOG, 9)]
    assert_exact(store, [prior_set])

    # CAT's rolled-up 2 is exactly the floor (9 - 7): it must be read to tie DOG at 9.
    write_relations(store, prior_set, "shard-2", {CAT: 7, SUN: 1})
    assert store.connect().execute("SELECT count(*) FROM uncompacted_relations").fetchone() == (8,)
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
    assert_exact(store, [prior_set])


def test_rewriting_every_compacted_shard_replaces_its_relations(store, prior_set):
    write_relations(store, prior_set, "shard-0", {CAR: 2})
    write_relations(store, prior_set, "shard-1", {DOG: 1})
    store.compact()
    write_relations(store, prior_set, "shard-0", {})
    write_relations(store, prior_set, "shard-1", {MAN: 1})
    assert top_relations(store, StatisticsFilter()) == [(*MAN, 1)]
    assert_exact(store, [prior_set])


@pytest.mark.parametrize("top", [1, 5])
def test_an_empty_store_has_no_top_relations(store, top):
    assert top_relations(store, StatisticsFilter(top=top)) == []


def test_a_triple_below_the_rolled_up_head_that_recent_shards_lift_into_the_top(store, prior_set):
    ranked = [(f"s{i}", "near", f"o{i}") for i in range(6)]
    write_relations(store, prior_set, "old", dict(zip(ranked, (10, 9, 8, 5, 4, 1), strict=True)))
    store.compact(prior_set)
    write_relations(store, prior_set, "new", {ranked[3]: 5, ranked[4]: 1, CAT: 7})
    connection = store.connect()
    for top in (1, 2, 3, 4, 5):
        where = StatisticsFilter(prior_set_id=prior_set, dataset="demo", top=top)
        assert top_relations_of(connection, where) == grouped_top(connection, where), top
    two = StatisticsFilter(prior_set_id=prior_set, dataset="demo", top=2)
    assert top_relations_of(connection, two) == [(*ranked[0], 10), (*ranked[3], 10)]
