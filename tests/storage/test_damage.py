"""Damaged files: found by their framing, left out of every view, quarantined by `repair` with
the rest of their shard so their images are undone; and retried failures replacing old rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage import PriorStore, StoreError
from storage.damage import damage_of
from storage.schema import SHARD_TABLES
from storage.store import QUARANTINE_DIR


def truncate(path: Path, keep: int = 100) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def shard_file(store: PriorStore, table: str, split: str = "train", tag: str = "-s") -> Path:
    (path,) = [
        p
        for p in (store.root / table).glob(f"dataset=demo/split={split}/*.parquet")
        if tag in p.name
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


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "0 bytes, too small to be Parquet"),
        (b"PAR1" + b"x" * 40, "no Parquet footer; truncated?"),
        (b"JUNK" + b"x" * 36 + b"PAR1", "no Parquet header"),
        (
            b"PAR1" + b"x" * 4 + (1000).to_bytes(4, "little") + b"PAR1",
            "footer longer than the file",
        ),
    ],
)
def test_damage_is_found_from_the_framing(tmp_path, content, reason):
    path = tmp_path / "x.parquet"
    path.write_bytes(content)
    assert reason in damage_of(path)


def test_an_intact_file_has_no_damage(three_shards):
    assert three_shards.damaged_files() == []


def test_views_leave_a_damaged_file_out_and_name_it(three_shards):
    damaged = shard_file(three_shards, "captions", "val")
    truncate(damaged)
    connection = three_shards.connect()
    assert [found.path for found in three_shards.damaged] == [damaged]
    assert count(connection, "SELECT count(*) FROM captions") == 3  # a, b, e
    assert count(connection, "SELECT count(*) FROM objects") == 8  # the objects file is intact
    assert count(connection, "SELECT sum(images_with_priors) FROM prior_set_summary") == 3


def test_compaction_refuses_a_damaged_store(three_shards, prior_set):
    truncate(shard_file(three_shards, "objects", "val"))
    with pytest.raises(StoreError, match=r"1 damaged file\(s\).*run: llmformer priors repair"):
        three_shards.compact(prior_set)


def test_done_image_ids_skip_a_damaged_file(three_shards, prior_set):
    truncate(shard_file(three_shards, "failures", "val"))
    assert three_shards.done_image_ids(prior_set) == {"a", "b", "broken", "c", "e", "f"}


def test_repair_quarantines_the_whole_shard_and_undoes_its_images(three_shards, prior_set):
    damaged = shard_file(three_shards, "captions", "val")
    truncate(damaged)
    report = three_shards.repair()
    assert len(report.moved) == len(SHARD_TABLES)
    assert {path.name for path in report.moved} == {damaged.name}
    assert report.images_undone == 2  # c and d, named by the intact images file
    assert report.quarantine.parent == three_shards.root / QUARANTINE_DIR
    assert (report.quarantine / "captions" / "dataset=demo" / "split=val" / damaged.name).exists()
    assert three_shards.damaged_files() == []
    assert three_shards.done_image_ids(prior_set) == {"a", "b", "broken", "e", "f"}
    connection = three_shards.connect()
    assert count(connection, "SELECT count(*) FROM images") == 5
    assert count(connection, "SELECT count(*) FROM objects") == 6


def test_repair_rebuilds_a_damaged_anchor(three_shards):
    anchor = three_shards.root / "eval_results" / "schema.parquet"
    truncate(anchor, keep=10)
    report = three_shards.repair()
    assert report.rebuilt == (anchor,)
    assert report.moved == ()
    assert count(three_shards.connect(), "SELECT count(*) FROM eval_results") == 0


def test_repair_of_compacted_relations_rebuilds_their_rollup(store, prior_set, write_demo_shard):
    for shard, ids in (("s0", ["a", "b", "x"]), ("s1", ["c", "y"])):
        write_demo_shard(shard, ids)
    write_demo_shard("s2", ["d", "z"], split="val")
    write_demo_shard("s3", ["e", "w"], split="val")
    store.compact(prior_set)
    truncate(shard_file(store, "relations", "train", tag="-c"))
    store.repair()
    connection = store.connect()
    assert count(connection, "SELECT sum(mentions) FROM relation_frequency") == 2  # d and e
    assert count(connection, "SELECT sum(mentions) FROM relation_counts") == 2


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
