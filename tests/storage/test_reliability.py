"""The store survives SIGKILL mid-shard and concurrent writers; each test runs real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

import storage
from storage import PriorStore

REPO_ROOT = Path(storage.__file__).resolve().parent.parent

# A writer process: `writer.py STORE NAME KILL_AT SHARD[,SHARD...]`. Each shard holds 50 images
# named after the shard with the 'red car on the road' priors; KILL_AT names where the process
# SIGKILLs itself: "staging" (after two of six tables are written to staging), "publishing"
# (after the journal and some renames), "initialising" (likewise, while creating the store),
# or "never". With a `GO` file path in the environment it
# waits for that file first, so two writers start together.
WRITER = textwrap.dedent(
    """
    import os, signal, sys, time
    import storage.store
    from storage import ImagePriors, ImageRecord, PriorSetSpec, PriorStore

    root, name, kill_at, shards = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(",")
    go = os.environ.get("GO")
    while go and not os.path.exists(go):
        time.sleep(0.01)

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    if kill_at == "staging":
        write_parquet, calls = storage.store.write_parquet, []
        def dying_write(table, path):
            calls.append(path)
            if len(calls) == 3:
                die()
            write_parquet(table, path)
        storage.store.write_parquet = dying_write
    elif kill_at in ("publishing", "initialising"):
        marker = "/relations/dataset=" if kill_at == "publishing" else "/relations/schema.parquet"
        replace = os.replace
        def dying_replace(source, destination):
            if marker in str(destination):
                die()
            replace(source, destination)
        os.replace = dying_replace

    store = PriorStore(root)
    spec = PriorSetSpec("file", "m", "Describe the image.", {}, "llmformer-spacy-rules", "1")
    prior_set = store.register_prior_set(spec)
    for shard in shards:
        ids = [f"{shard}-{index:03d}" for index in range(50)]
        priors = [
            ImagePriors(
                image_id,
                "A red car on the road.",
                [{"name": "car", "span": "A red car", "count": 1},
                 {"name": "road", "span": "the road", "count": 1}],
                [{"object": 0, "value": "red", "kind": "color"}],
                [{"subject": 0, "predicate": "on", "object": 1}],
            )
            for image_id in ids
        ]
        images = [ImageRecord(i, i + ".jpg", 8, 8, None, "ok") for i in ids]
        store.write_shard(prior_set, "demo", "train", shard, images, priors, [])
    print(prior_set)
    """
)


def start_writer(
    tmp_path: Path, root: Path, kill_at: str, shards: list[str], go: Path | None = None
):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    if go is not None:
        env["GO"] = str(go)
    return subprocess.Popen(
        [sys.executable, str(script), str(root), "w", kill_at, ",".join(shards)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_writer(tmp_path: Path, root: Path, kill_at: str, shards: list[str]) -> int:
    process = start_writer(tmp_path, root, kill_at, shards)
    process.communicate(timeout=120)
    return process.returncode


def table_counts(connection: duckdb.DuckDBPyConnection) -> dict[str, int]:
    tables = ("images", "captions", "objects", "attributes", "relations")
    return {t: connection.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


def full_counts(images: int) -> dict[str, int]:
    return {
        "images": images,
        "captions": images,
        "objects": 2 * images,
        "attributes": images,
        "relations": images,
    }


def plain_duckdb(root: Path) -> duckdb.DuckDBPyConnection:
    """The store as the plain `duckdb` CLI sees it: views.sql, no PriorStore, no recovery."""
    connection = duckdb.connect()
    connection.execute("SET file_search_path = ?", [str(root)])
    connection.execute((root / "views.sql").read_text())
    return connection


def test_sigkill_while_staging_leaves_no_rows_and_the_rerun_finishes(tmp_path):
    root = tmp_path / "store"
    assert run_writer(tmp_path, root, "never", ["first"]) == 0
    assert run_writer(tmp_path, root, "staging", ["second"]) == -signal.SIGKILL

    assert table_counts(plain_duckdb(root)) == full_counts(50)
    store = PriorStore(root)
    assert not list((root / "_staging").glob("txn-*"))
    assert table_counts(store.connect()) == full_counts(50)

    assert run_writer(tmp_path, root, "never", ["second"]) == 0
    assert table_counts(store.connect()) == full_counts(100)


def test_sigkill_while_publishing_is_rolled_forward_by_the_next_open(tmp_path):
    root = tmp_path / "store"
    assert run_writer(tmp_path, root, "publishing", ["first"]) == -signal.SIGKILL
    assert list((root / "_staging").glob("txn-*/journal.json"))

    store = PriorStore(root)
    assert not list((root / "_staging").glob("txn-*"))
    assert table_counts(store.connect()) == full_counts(50)

    assert run_writer(tmp_path, root, "never", ["first"]) == 0
    assert table_counts(store.connect()) == full_counts(50)


def test_sigkill_while_creating_the_store_is_finished_by_the_next_open(tmp_path):
    root = tmp_path / "store"
    assert run_writer(tmp_path, root, "initialising", ["first"]) == -signal.SIGKILL
    assert not (root / "store.json").exists()
    assert table_counts(PriorStore(root).connect()) == full_counts(0)


def test_two_writer_processes_at_once_both_land_and_a_shared_shard_lands_once(tmp_path):
    root, go = tmp_path / "store", tmp_path / "go"
    PriorStore(root)
    writers = [
        start_writer(tmp_path, root, "never", [f"{name}-{i}" for i in range(4)] + ["shared"], go)
        for name in ("left", "right")
    ]
    go.touch()
    for writer in writers:
        _, stderr = writer.communicate(timeout=120)
        assert writer.returncode == 0, stderr

    store = PriorStore(root)
    assert table_counts(store.connect()) == full_counts(50 * 9)
    assert not list((root / "_staging").glob("txn-*"))
    objects = list((root / "objects").rglob("*-s*.parquet"))
    assert len(objects) == 9


@pytest.mark.parametrize("stale", ["txn-dead.lock", "tmp-dead"])
def test_leftovers_of_dead_writers_are_cleared_on_open(store, stale):
    (store.root / "_staging" / stale).write_text("")
    (store.root / "_staging" / "txn-dead").mkdir()
    (store.root / "_staging" / "txn-dead" / "0-x.parquet").write_text("half")
    PriorStore(store.root)
    assert not (store.root / "_staging" / stale).exists()
