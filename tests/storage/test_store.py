"""PriorStore: prior sets, shards, resumability, batched reads, embeddings, compaction, deletion."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from storage import (
    SCHEMA_VERSION,
    ImagePriors,
    InvalidRecordError,
    PriorStore,
    SchemaVersionError,
    StoreError,
)
from storage.tables import StoreLocation


def count(store: PriorStore, table: str) -> int:
    return store.connect().execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_prior_set_id_is_stable_and_ignores_the_name(store, spec):
    renamed = dataclasses.replace(spec, name="another label")
    resampled = dataclasses.replace(spec, sampling={"max_tokens": 128, "temperature": 0.0})
    reprompted = dataclasses.replace(spec, prompt="Describe every object.")
    first = store.register_prior_set(spec)
    assert store.register_prior_set(renamed) == first
    assert store.register_prior_set(resampled) == first
    assert store.register_prior_set(reprompted) != first
    assert len(first) == 16
    assert count(store, "prior_sets") == 2


def test_sampling_must_be_json(store, spec):
    with pytest.raises(StoreError, match="JSON"):
        store.register_prior_set(dataclasses.replace(spec, sampling={"stop": {1, 2}}))


def test_done_image_ids_counts_priors_and_failures(store, prior_set, write_demo_shard):
    write_demo_shard("shard-0", ["a", "b", "c"])
    write_demo_shard("shard-1", ["d", "e"], split="val")
    assert store.done_image_ids(prior_set) == {"a", "b", "c", "d", "e"}
    assert store.done_image_ids(prior_set, split="val") == {"d", "e"}
    assert store.done_image_ids(prior_set, dataset="other") == set()
    assert store.done_image_ids("0" * 16) == set()


def test_read_priors_round_trips_in_one_batch(store, prior_set, write_demo_shard, make_priors):
    write_demo_shard("shard-0", ["a", "b", "failed"])
    store.write_shard(prior_set, "demo", "val", "shard-1", [], [ImagePriors("bare", "nothing")], [])
    priors = store.read_priors(prior_set, ["a", "bare", "failed", "unknown", "a"])
    assert set(priors) == {"a", "bare"}
    assert priors["a"] == make_priors("a")
    assert priors["bare"] == ImagePriors("bare", "nothing", [], [], [])


def test_same_shard_written_twice_is_stored_once(store, prior_set, write_demo_shard):
    write_demo_shard("shard-0", ["a", "b", "c"])
    write_demo_shard("shard-0", ["a", "b", "c"])
    assert count(store, "captions") == 2
    assert count(store, "objects") == 4
    assert count(store, "failures") == 1


def test_rewriting_a_shard_replaces_all_its_rows(store, prior_set, write_demo_shard):
    write_demo_shard("shard-0", ["a", "b", "c"])
    write_demo_shard("shard-0", ["x", "y"])
    assert store.done_image_ids(prior_set) == {"x", "y"}
    assert count(store, "images") == 2


@pytest.mark.parametrize(
    ("priors", "message"),
    [
        (
            ImagePriors(
                "a",
                "c",
                [{"name": "car", "span": "car", "count": 1}],
                [{"object": 3, "value": "red", "kind": "color"}],
            ),
            "image 'a': an attribute points at object 3, but the image has 1 objects",
        ),
        (
            ImagePriors("a", "c", [{"name": "car", "span": "car"}]),
            "image 'a': malformed priors",
        ),
    ],
)
def test_malformed_priors_are_refused_and_nothing_is_written(store, prior_set, priors, message):
    with pytest.raises(InvalidRecordError, match=message):
        store.write_shard(prior_set, "demo", "train", "s", [], [priors], [])
    assert store.done_image_ids(prior_set) == set()
    assert not any((store.root / "_staging").glob("txn-*"))


def test_duplicate_image_in_a_shard_is_refused(store, prior_set, make_priors):
    with pytest.raises(InvalidRecordError, match="image 'a' appears twice in the shard's priors"):
        store.write_shard(prior_set, "d", "s", "k", [], [make_priors("a"), make_priors("a")], [])


def test_unknown_prior_set_and_unsafe_names_are_refused(store, prior_set):
    with pytest.raises(StoreError, match=r"unknown prior set 'nope'; register it first"):
        store.write_shard("nope", "demo", "train", "k", [], [], [])
    with pytest.raises(StoreError, match=r"dataset '\.\./etc' must match"):
        store.write_shard(prior_set, "../etc", "train", "k", [], [], [])


def test_text_embedding_cache_keeps_first_vector_per_text(store):
    store.write_text_embeddings("minilm", {"cat": np.arange(4), "dog": np.ones(4)})
    store.write_text_embeddings("minilm", {"cat": np.zeros(4), "bird": np.full(4, 2.0)})
    store.write_text_embeddings("clip", {"cat": np.full(2, 7.0)})
    cached = store.read_text_embeddings("minilm", ["cat", "bird", "fish"])
    assert set(cached) == {"cat", "bird"}
    assert cached["cat"].dtype == np.float32
    np.testing.assert_array_equal(cached["cat"], [0, 1, 2, 3])
    np.testing.assert_array_equal(store.read_text_embeddings("clip", ["cat"])["cat"], [7, 7])
    assert store.read_text_embeddings("unknown", ["cat"]) == {}


def test_compaction_merges_files_and_keeps_every_row(store, prior_set, write_demo_shard):
    for index in range(4):
        write_demo_shard(f"shard-{index}", [f"{index}-a", f"{index}-b"])
    store.write_text_embeddings("minilm", {"cat": np.ones(2)})
    store.write_text_embeddings("minilm", {"dog": np.ones(2)})
    before = store.read_priors(prior_set, [f"{i}-a" for i in range(4)])

    report = store.compact()

    # 9 shard tables x 4 shards, 2 embedding files and the prior set's. The rollup turns the 4
    # relations files into 3 (the moved relations, their triple counts, the shards counted); the
    # 5 other per-image partitions are Z-ordered into a file each, and the 3 partitions of
    # per-shard counts and the embeddings are merged into a file each.
    files_before, files_after = 4 + 5 * 4 + 3 * 4 + 2 + 1, 3 + 5 + 3 + 1 + 1
    assert (report.files_before, report.files_after) == (files_before, files_after)
    assert store.read_priors(prior_set, [f"{i}-a" for i in range(4)]) == before
    files = pa.table(DeltaTable(str(store.root / "priors")).get_add_actions(flatten=True))
    files = files.to_pylist()
    assert [
        f["partition.prior_set_id"] for f in files if f["partition.table_name"] == "objects"
    ] == [prior_set]
    assert set(store.read_text_embeddings("minilm", ["cat", "dog"])) == {"cat", "dog"}
    assert store.compact() == type(report)(files_after, files_after)


def test_rewriting_a_compacted_shard_replaces_it(store, prior_set, write_demo_shard):
    write_demo_shard("shard-0", ["a", "b"])
    write_demo_shard("shard-1", ["c", "d"])
    store.compact()
    write_demo_shard("shard-0", ["x", "y"])
    assert store.done_image_ids(prior_set) == {"c", "d", "x", "y"}
    assert count(store, "objects") == 4


def test_delete_prior_set_removes_only_its_rows(store, prior_set, spec, write_demo_shard):
    other = store.register_prior_set(dataclasses.replace(spec, model="llava-next"))
    write_demo_shard("shard-0", ["a", "b"])
    store.write_shard(other, "demo", "train", "shard-0", [], [ImagePriors("z", "z")], [])
    assert store.delete_prior_set(prior_set) == 9 + 1  # a file per shard table, and one more
    assert store.done_image_ids(prior_set) == set()
    assert store.done_image_ids(other) == {"z"}
    assert count(store, "prior_sets") == 1
    with pytest.raises(StoreError, match="unknown prior set"):
        store.delete_prior_set(prior_set)


def test_older_schema_version_is_named_with_the_current_one(store):
    manifest = store.root / "store.json"
    manifest.write_text(json.dumps({"schema_version": 1}))
    with pytest.raises(
        SchemaVersionError,
        match=f"has schema version 1, but this llmformer reads schema version {SCHEMA_VERSION}",
    ):
        PriorStore(store.root)


def test_a_folder_with_other_files_is_not_taken_for_a_store(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="is not empty and holds no prior store"):
        PriorStore(tmp_path)
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]


def test_eval_results_and_class_names_are_tables(store):
    store.write_eval_results([{"run": "r1", "dataset": "a150", "miou": 0.3, "open_miou": 0.4}])
    store.write_class_names("demo", [["car", "automobile"], ["person", "Person"]])
    connection = store.connect()
    assert connection.execute("SELECT run, dataset, miou FROM eval_results").fetchall() == [
        ("r1", "a150", 0.3)
    ]
    assert connection.execute("SELECT * FROM class_names ORDER BY synonym").fetchall() == [
        ("demo", 0, "car", "automobile"),
        ("demo", 0, "car", "car"),
        ("demo", 1, "person", "person"),
    ]
    with pytest.raises(StoreError, match="bad evaluation row"):
        store.write_eval_results([{"run": "r1"}])


def test_wrongly_typed_values_are_refused(store, prior_set):
    bad = ImagePriors("a", "c", [{"name": "car", "span": "car", "count": "two"}])
    with pytest.raises(InvalidRecordError, match="objects: a value has the wrong type"):
        store.write_shard(prior_set, "demo", "train", "s", [], [bad], [])


def test_glob_characters_never_reach_the_filesystem(store, prior_set, write_demo_shard):
    write_demo_shard("shard-0", ["a", "b"])
    with pytest.raises(StoreError, match=r"prior set '\*' must match"):
        store.done_image_ids("*")
    with pytest.raises(StoreError, match=r"split 'tr\*' must match"):
        store.done_image_ids(prior_set, split="tr*")


def test_cached_vectors_are_writable_arrays(store):
    store.write_text_embeddings("minilm", {"cat": np.ones(3)})
    vector = store.read_text_embeddings("minilm", ["cat"])["cat"]
    vector *= 2
    np.testing.assert_array_equal(store.read_text_embeddings("minilm", ["cat"])["cat"], [1, 1, 1])


@pytest.mark.parametrize("root", ["s3://bucket/prefix/", Path("s3://bucket/prefix")])
def test_an_s3_url_stays_a_url_even_once_a_path_collapsed_its_slashes(root) -> None:
    assert StoreLocation.parse(root) == StoreLocation("s3://bucket/prefix")
    assert StoreLocation.parse(root).local is None
