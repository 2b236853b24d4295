"""Stores of the layout before Delta Lake (Parquet folders, schema versions 1-3): refused with the
command that converts them, converted by `PriorStore.upgrade` with every view answering as before,
a conversion cut short starting over."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import storage.upgrade
from storage import (
    SCHEMA_VERSION,
    EvalImageClass,
    EvalRun,
    PriorStore,
    SchemaVersionError,
    StoreError,
)
from storage.query import VIEWS_SQL
from storage.schema import ROLLUP_TABLES, SHARD_TABLES, TABLES, schema_of

VIEWS = [*TABLES, *re.findall(r"CREATE OR REPLACE VIEW (\w+)", VIEWS_SQL.read_text())]


def write_legacy_layout(store: PriorStore, root: Path, version: int) -> None:
    """`store`'s rows as an llmformer of schema `version` laid them out: a Parquet file per shard
    under `<table>/dataset=<d>/split=<s>/`, one per other table, zero-row anchors, store.json."""
    connection = store.connect()
    later = {1: ("eval_images",), 2: ("eval_images",), 3: ()}[version]
    for table in TABLES:
        if table in later or table in ROLLUP_TABLES:  # rollups are rebuilt by compaction
            continue
        if table == "image_counts":  # not kept by the Parquet layout: the upgrade counts them
            continue
        folder = root / table
        folder.mkdir(parents=True)
        pq.write_table(schema_of(table).empty_table(), folder / "schema.parquet")
        rows = connection.sql(f"SELECT * FROM {table}").to_arrow_table()
        if table not in SHARD_TABLES:
            if rows.num_rows:
                pq.write_table(rows, folder / "rows.parquet")
            continue
        keys = connection.execute(
            f"SELECT DISTINCT prior_set_id, dataset, split, shard FROM {table}"
        ).fetchall()
        for prior_set_id, dataset, split, shard in keys:
            part = connection.sql(
                f"SELECT * FROM {table} WHERE prior_set_id = $1 AND dataset = $2 AND split = $3"
                " AND shard = $4",
                params=[prior_set_id, dataset, split, shard],
            ).to_arrow_table()
            target = folder / f"dataset={dataset}" / f"split={split}"
            target.mkdir(parents=True, exist_ok=True)
            pq.write_table(part, target / f"{prior_set_id}-s{shard}.parquet")
    if version > 1:
        (root / "relation_counts").mkdir()
    (root / "views.sql").write_text("-- the views of an older release")
    (root / "store.json").write_text(json.dumps({"schema_version": version}))


def answers(store: PriorStore) -> dict[str, list[tuple]]:
    connection = store.connect()
    return {
        view: connection.execute(f"SELECT * FROM {view} ORDER BY ALL").fetchall() for view in VIEWS
    }


def fill(store: PriorStore, prior_set: str, write_demo_shard, eval_images: bool) -> PriorStore:
    """Every table of `store` given rows (`eval_images` only if asked: versions 1-2 lack it)."""
    write_demo_shard("shard-0", ["a", "b", "broken"])
    write_demo_shard("shard-1", ["c", "d"], split="val")
    store.write_class_names("demo", [["car", "automobile"], ["road"], ["person"]])
    store.write_text_embeddings("minilm", {"car": [1.0, 2.0]})
    store.write_eval_results([{"run": "r", "dataset": "demo", "miou": 50.0, "open_miou": None}])
    if eval_images:
        evaluation = EvalRun("r", "demo", "demo", prior_set_id=prior_set)
        store.write_eval_images(evaluation, [EvalImageClass("a", 0, "car", 10, 8, 6)])
    return store


@pytest.fixture
def filled(store, prior_set, write_demo_shard) -> PriorStore:
    return fill(store, prior_set, write_demo_shard, eval_images=True)


@pytest.mark.parametrize("version", [1, 2, 3])
def test_an_old_store_is_refused_with_a_hint_then_converted_with_the_same_answers(
    store, prior_set, write_demo_shard, tmp_path, version
):
    filled = fill(store, prior_set, write_demo_shard, eval_images=version == 3)
    legacy = tmp_path / "legacy"
    write_legacy_layout(filled, legacy, version)
    hint = f"reads schema version {SCHEMA_VERSION}; run: llmformer priors upgrade --store {legacy}"
    with pytest.raises(SchemaVersionError, match=re.escape(hint) + "$"):
        PriorStore(legacy)

    upgraded = PriorStore.upgrade(legacy)

    assert answers(upgraded) == answers(filled)
    assert sorted(path.name for path in legacy.iterdir()) == sorted(
        ["priors", "prior_sets", "text_embeddings", "class_names", "eval_results", "eval_images"]
    )
    assert PriorStore.upgrade(legacy).version() == upgraded.version()  # only opened


def test_a_conversion_cut_short_starts_over(filled, tmp_path, monkeypatch):
    legacy = tmp_path / "legacy"
    write_legacy_layout(filled, legacy, 3)
    write = storage.upgrade.tables.write
    calls = []

    def dying_write(*arguments):
        calls.append(arguments)
        if len(calls) == 3:
            raise KeyboardInterrupt
        write(*arguments)

    monkeypatch.setattr(storage.upgrade.tables, "write", dying_write)
    with pytest.raises(KeyboardInterrupt):
        PriorStore.upgrade(legacy)
    with pytest.raises(SchemaVersionError, match="run: llmformer priors upgrade"):
        PriorStore(legacy)
    monkeypatch.setattr(storage.upgrade.tables, "write", write)
    assert answers(PriorStore.upgrade(legacy)) == answers(filled)


def test_a_store_of_another_version_is_neither_upgraded_nor_given_the_hint(tmp_path):
    (tmp_path / "store.json").write_text(json.dumps({"schema_version": 99}))
    for open_store in (PriorStore, PriorStore.upgrade):
        with pytest.raises(SchemaVersionError, match=r"use a matching llmformer release$"):
            open_store(tmp_path)
    assert json.loads((tmp_path / "store.json").read_text()) == {"schema_version": 99}


@pytest.mark.parametrize(
    ("manifest", "error"),
    [
        ("[1, 2]", r"store\.json is unreadable \(list indices"),
        ('{"schema_version": [3]}', r"names schema version \[3\], not a whole number"),
        ('{"schema_version": "3"}', r"names schema version '3', not a whole number"),
    ],
)
def test_a_manifest_that_is_not_a_version_object_is_one_store_error(tmp_path, manifest, error):
    (tmp_path / "store.json").write_text(manifest)
    for open_store in (PriorStore, PriorStore.upgrade):
        with pytest.raises(StoreError, match=error):
            open_store(tmp_path)


def test_upgrading_a_missing_store_creates_nothing(tmp_path):
    with pytest.raises(StoreError, match="no prior store at"):
        PriorStore.upgrade(tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()


def test_a_store_of_this_version_is_only_opened(store):
    assert PriorStore.upgrade(store.root).version() == store.version()
