"""The query connection's sandbox: the store's data through its views and no file outside the
store, no extensions, locked settings, a memory and a time limit; and every view answering from one
version of the store."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import duckdb
import pytest

from storage import StoreError
from storage.query import VIEWS_SQL, QueryError, QueryTimeoutError, run_read_query
from storage.schema import TABLES

VIEW_NAMES = [*TABLES, *re.findall(r"CREATE OR REPLACE VIEW (\w+)", VIEWS_SQL.read_text())]


@pytest.fixture
def filled(store, prior_set, write_demo_shard):
    write_demo_shard("shard-0", ["a", "b", "broken"])
    write_demo_shard("shard-1", ["c", "d"])
    write_demo_shard("shard-3", ["g", "h"], split="val")
    store.write_class_names("demo", [["car", "automobile"], ["road"], ["person"]])
    store.compact(prior_set)
    write_demo_shard("shard-2", ["e", "f"])
    return store


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_blob('/etc/hostname')",
        "SELECT * FROM glob('/etc/*')",
        "SELECT * FROM read_parquet('https://example.com/x.parquet')",
        "SELECT * FROM read_text('objects/../../../etc/hostname')",
    ],
)
def test_nothing_outside_the_store_is_readable(store, sql, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(QueryError, match="Permission Error") as caught:
        run_read_query(store.connect(), sql)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "home").exists()  # no extension was downloaded or installed


def test_a_sibling_folder_sharing_the_roots_prefix_is_outside(store):
    sibling = store.root.with_name(store.root.name + "2")
    sibling.mkdir()
    (sibling / "secret.txt").write_text("not yours")
    with pytest.raises(QueryError, match="Permission Error"):
        run_read_query(store.connect(), f"SELECT * FROM read_text('{sibling}/secret.txt')")


def test_the_views_and_the_stores_own_files_are_readable(filled):
    connection = filled.connect()
    assert run_read_query(connection, "SELECT count(*) FROM objects")[0][0].as_py() == 10
    log = f"SELECT count(*) FROM read_text('{filled.root}/priors/_delta_log/*.json')"
    assert run_read_query(connection, log)[0][0].as_py() == filled.version() + 1


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("INSTALL httpfs", "only read queries (SELECT) are allowed, got INSTALL"),
        ("LOAD httpfs", "only read queries (SELECT) are allowed, got LOAD"),
        ("SET enable_external_access = true", "only read queries (SELECT) are allowed, got SET"),
    ],
)
def test_extensions_and_settings_are_refused_with_their_own_keyword(store, sql, message):
    with pytest.raises(QueryError) as caught:
        run_read_query(store.connect(), sql)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    "statement",
    [
        "SET enable_external_access = true",
        "SET allowed_directories = ['/']",
        "SET autoinstall_known_extensions = true",
        "SET memory_limit = '100GB'",
        "RESET lock_configuration",
    ],
)
def test_the_configuration_is_locked_even_on_the_raw_connection(store, statement):
    connection = store.connect()
    with pytest.raises(duckdb.Error, match="locked"):
        connection.execute(statement)


def test_loading_an_extension_is_refused_on_the_raw_connection(store):
    with pytest.raises(duckdb.Error, match="disabled"):
        store.connect().execute("LOAD httpfs")


def test_memory_limit_applies(store):
    connection = store.connect(memory_limit="256MB")
    [(limit,)] = connection.execute("SELECT current_setting('memory_limit')").fetchall()
    assert limit == "244.1 MiB"
    with pytest.raises(QueryError, match="Out of Memory"):
        run_read_query(connection, "SELECT list(range) FROM range(200000000)")


def test_a_query_past_its_time_limit_is_stopped(store):
    started = time.monotonic()
    with pytest.raises(QueryTimeoutError, match=r"ran longer than 1 s and was stopped"):
        run_read_query(store.connect(), "SELECT count(*) FROM range(1e12::BIGINT)", timeout_s=1)
    assert time.monotonic() - started < 5


def test_every_view_answers_from_the_version_it_was_opened_at(filled, write_demo_shard):
    version = filled.version()
    opened = filled.connect()
    assert len(VIEW_NAMES) >= 20
    answers = {
        view: opened.execute(f"SELECT * FROM {view} ORDER BY ALL").fetchall() for view in VIEW_NAMES
    }
    write_demo_shard("shard-9", ["late", "later"])
    for connection in (opened, filled.connect(as_of=version)):
        for view in VIEW_NAMES:
            ordered = f"SELECT * FROM {view} ORDER BY ALL"
            assert connection.execute(ordered).fetchall() == answers[view], view
    assert opened.execute("SELECT count(*) FROM objects").fetchall() == [(10,)]
    assert filled.connect().execute("SELECT count(*) FROM objects").fetchall() == [(12,)]


def test_as_of_a_time_reads_the_version_of_that_time(filled, write_demo_shard):
    version = filled.version()
    time.sleep(0.01)
    moment = datetime.now(UTC)
    time.sleep(0.01)
    write_demo_shard("shard-9", ["late", "later"])
    at_time = filled.connect(as_of=moment).execute("SELECT count(*) FROM objects").fetchall()
    assert (
        at_time == filled.connect(as_of=version).execute("SELECT count(*) FROM objects").fetchall()
    )
    assert at_time == [(10,)]
    with pytest.raises(StoreError, match=f"the store has no version {version + 5}"):
        filled.connect(as_of=version + 5)
