"""Damaged files (cut short or gone, found against the sizes their commits recorded), dropped by
`repair` with the rest of their shards so their images are undone; retried failures replacing
old rows in the same commit."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from storage import PriorStore
from storage.store import QUARANTINE_DIR


def data_file(store: PriorStore, table: str, split: str) -> str:
    """The path (under `priors/`) of the one file of `table` that holds `split`'s rows."""
    actions = pa.table(DeltaTable(str(store.root / "priors")).get_add_actions(flatten=True))
    (path,) = [
        row["path"]
        for row in actions.to_pylist()
        if row["partition.table_name"] == table and row["min.split"] == row["max.split"] == split
    ]
    return path


@pytest.fixture
def three_shards(store, prior_set, write_demo_shard):
    write_demo_shard("shard-0", ["a", "b", "broken"])
    write_demo_shard("shard-1", ["c", "d"], split="val")
    write_demo_shard("shard-2", ["e", "f"], split="test")
    return store


def count(connection, sql: str) -> int:
    [(value,)] = connection.execute(sql).fetchall()
    return value


def test_an_intact_store_has_no_damage(three_shards):
    assert three_shards.damaged_files() == []
    assert three_shards.repair().moved == ()


@pytest.mark.parametrize("damage", ["truncated", "missing"])
def test_damage_is_found_against_the_recorded_size(three_shards, damage):
    path = data_file(three_shards, "captions", "val")
    file = three_shards.root / "priors" / path
    if damage == "missing":
        file.unlink()
        reason = "missing"
    else:
        size = file.stat().st_size
        file.write_bytes(file.read_bytes()[:100])
        reason = f"100 bytes, its commit recorded {size}"
    assert [str(found) for found in three_shards.damaged_files()] == [f"priors/{path} ({reason})"]


def test_repair_drops_the_whole_shard_and_undoes_its_images(three_shards, prior_set):
    path = data_file(three_shards, "captions", "val")
    file = three_shards.root / "priors" / path
    file.write_bytes(file.read_bytes()[:100])
    report = three_shards.repair()
    assert report.moved == (f"priors/{path}",)
    assert report.images_undone == 2  # c and d, named by the intact images file
    assert report.quarantine.startswith(f"{three_shards.root}/{QUARANTINE_DIR}/")
    assert (Path(report.quarantine) / "priors" / path).exists()
    assert three_shards.damaged_files() == []
    assert three_shards.done_image_ids(prior_set) == {"a", "b", "broken", "e", "f"}
    connection = three_shards.connect()
    assert count(connection, "SELECT count(*) FROM images") == 5
    assert count(connection, "SELECT count(*) FROM objects") == 6
    assert count(connection, "SELECT count(*) FROM object_counts WHERE split = 'val'") == 0


def test_a_retried_image_keeps_one_record(store, prior_set, write_demo_shard, make_priors):
    write_demo_shard("shard-0", ["a", "broken"])
    store.write_shard(
        prior_set,
        "demo",
        "train",
        "retry",
        images=[],
        priors=[make_priors("broken")],
        failures=[],
        retried=["broken"],
    )
    connection = store.connect()
    assert count(connection, "SELECT count(*) FROM failures") == 0
    assert count(connection, "SELECT count(*) FROM images WHERE image_id = 'broken'") == 0
    assert count(connection, "SELECT count(*) FROM captions") == 2
    assert store.done_image_ids(prior_set) == {"a", "broken"}


def test_repair_after_compaction_keeps_the_relation_statistics_exact(
    store, prior_set, write_demo_shard
):
    for shard, ids in (("s0", ["a", "b", "x"]), ("s1", ["c", "y"])):
        write_demo_shard(shard, ids)
    store.compact(prior_set)
    write_demo_shard("s2", ["d", "z"], split="val")
    path = store.root / "priors" / data_file(store, "captions", "val")
    path.write_bytes(path.read_bytes()[:100])
    assert store.repair().images_undone == 2  # d and z
    connection = store.connect()
    assert count(connection, "SELECT sum(mentions) FROM relation_frequency") == 3  # a, b, c
    assert count(connection, "SELECT count(*) FROM relation_counts") == 0
