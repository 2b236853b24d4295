"""`llmformer priors query|stats|plot|compact|sets` over a small store; user errors exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from flows.cli import app
from storage import SCHEMA_VERSION, ImagePriors, PriorSetSpec, PriorStore
from storage.rows import ShardKey, shard_tables
from storage.schema import schema_of

runner = CliRunner()
SPEC = PriorSetSpec("file", "llava", "Describe the image.", {}, "llmformer-spacy-rules", "1", "t")


def priors(image_id: str) -> ImagePriors:
    return ImagePriors(
        image_id,
        "A red car on the road.",
        [
            {"name": "car", "span": "A red car", "count": 1},
            {"name": "road", "span": "the road", "count": 1},
        ],
        [{"object": 0, "value": "red", "kind": "color"}],
        [{"subject": 0, "predicate": "on", "object": 1}],
    )


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    store = PriorStore(tmp_path / "store")
    prior_set = store.register_prior_set(SPEC)
    for shard, ids in (("s0", ["a", "b"]), ("s1", ["c"])):
        store.write_shard(prior_set, "demo", "train", shard, [], [priors(i) for i in ids], [])
    return store.root


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under the store with its size and modification time."""
    return {
        str(path.relative_to(root)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in root.rglob("*")
        if path.is_file()
    }


def priors_cli(*args: str):
    return runner.invoke(app, ["priors", *args])


def test_query_prints_csv_and_json(store_dir):
    sql = "SELECT name, count(*) AS n FROM objects GROUP BY name ORDER BY name"
    as_csv = priors_cli("query", "--store", str(store_dir), sql, "--format", "csv")
    assert as_csv.exit_code == 0, as_csv.output
    assert as_csv.stdout.splitlines() == ['"name","n"', '"car",3', '"road",3']
    as_json = priors_cli("query", "--store", str(store_dir), sql, "--format", "json")
    assert [json.loads(line) for line in as_json.stdout.splitlines()] == [
        {"name": "car", "n": 3},
        {"name": "road", "n": 3},
    ]


def test_query_prints_a_table_by_default(store_dir):
    result = priors_cli(
        "query", "--store", str(store_dir), "SELECT count(*) AS images FROM captions"
    )
    assert result.exit_code == 0
    assert "images" in result.stdout
    assert "3" in result.stdout


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELEC * FROM objects", "error: Parser Error: syntax error at or near"),
        (
            "COPY objects TO 'objects/extra.parquet'",
            "error: only read queries (SELECT) are allowed",
        ),
        ("DELETE FROM objects", "error: only read queries (SELECT) are allowed, got DELETE"),
        ("CREATE TABLE t AS SELECT 1", "error: only read queries (SELECT) are allowed, got CREATE"),
    ],
)
def test_bad_or_writing_sql_is_one_line_exit_2_and_the_store_is_unchanged(store_dir, sql, message):
    before = snapshot(store_dir)
    result = priors_cli("query", "--store", str(store_dir), sql)
    assert result.exit_code == 2
    assert result.stderr.startswith(message)
    assert len(result.stderr.strip().splitlines()) == 1
    assert snapshot(store_dir) == before


def test_a_missing_store_is_an_error_and_is_not_created(tmp_path):
    result = priors_cli("stats", "--store", str(tmp_path / "nowhere"))
    assert result.exit_code == 2
    assert (
        result.stderr.strip()
        == f"error: no prior store at {tmp_path / 'nowhere'} (it has no priors table)"
    )
    assert not (tmp_path / "nowhere").exists()


def test_an_older_schema_version_names_both_versions(store_dir):
    (store_dir / "store.json").write_text(json.dumps({"schema_version": 0}))
    result = priors_cli("sets", "--store", str(store_dir))
    assert result.exit_code == 2
    expected = f"has schema version 0, but this llmformer reads schema version {SCHEMA_VERSION}"
    assert expected in result.stderr


def test_stats_prints_each_statistic(store_dir):
    result = priors_cli("stats", "--store", str(store_dir), "--dataset", "demo", "--top", "1")
    assert result.exit_code == 0, result.output
    for title in ("top objects", "attributes by kind", "top relations", "objects per image"):
        assert title in result.stdout
    assert "car" in result.stdout
    assert "road" not in result.stdout.split("attributes by kind")[0]


def test_plot_writes_four_pngs(store_dir, tmp_path):
    result = priors_cli("plot", "--store", str(store_dir), "--out", str(tmp_path / "plots"))
    assert result.exit_code == 0, result.output
    names = sorted(path.name for path in (tmp_path / "plots").iterdir())
    assert names == [
        "attributes_by_kind.png",
        "objects_per_image.png",
        "relation_predicates.png",
        "top_objects.png",
    ]
    for name in names:
        assert (tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compact_then_sets(store_dir):
    compacted = priors_cli("compact", "--store", str(store_dir))
    assert compacted.exit_code == 0
    # 7 tables of 2 shards and the prior set's file; the relations become their rows, triple
    # counts and shards counted
    assert compacted.stdout.strip() == "compacted 15 files into 10"
    listed = priors_cli("sets", "--store", str(store_dir))
    assert listed.exit_code == 0
    assert SPEC.prior_set_id in listed.stdout


def test_nested_columns_in_csv_are_refused_with_a_hint(store_dir):
    sql = "SELECT image_id, list(name) AS names FROM objects GROUP BY image_id"
    result = priors_cli("query", "--store", str(store_dir), sql, "--format", "csv")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: CSV cannot hold this result")
    assert result.stderr.strip().endswith("use --format json")


def write_version_1_store(root: Path) -> None:
    """A store as llmformer's schema version 1 laid it out: Parquet files per table and shard."""
    key = ShardKey(SPEC.prior_set_id, "demo", "train", "s0")
    shard = shard_tables(key, [], [priors(i) for i in ("a", "b", "c")], [])
    prior_set = {name: [None] for name in schema_of("prior_sets").names}
    prior_set |= {"prior_set_id": [SPEC.prior_set_id], "captioner": ["file"], "sampling": ["{}"]}
    tables = {"prior_sets": pa.table(prior_set, schema=schema_of("prior_sets")), **shard}
    for name, rows in tables.items():
        folder = root / name if name == "prior_sets" else root / name / "dataset=demo/split=train"
        folder.mkdir(parents=True)
        pq.write_table(rows, folder / f"{SPEC.prior_set_id}-s0.parquet")
    (root / "store.json").write_text(json.dumps({"schema_version": 1}))


def test_upgrade_brings_a_version_1_store_to_the_current_version(tmp_path):
    store_dir = tmp_path / "old"
    write_version_1_store(store_dir)
    refused = priors_cli("sets", "--store", str(store_dir))
    assert refused.exit_code == 2
    assert refused.stderr.endswith(f"run: llmformer priors upgrade --store {store_dir}\n")

    result = priors_cli("upgrade", "--store", str(store_dir))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"the store at {store_dir} is at schema version {SCHEMA_VERSION}\n"
    query = "SELECT subject, predicate, object, mentions FROM relation_frequency"
    rows = priors_cli("query", "--store", str(store_dir), query, "--format", "json")
    assert [json.loads(line) for line in rows.stdout.splitlines()] == [
        {"subject": "car", "predicate": "on", "object": "road", "mentions": 3}
    ]


def test_upgrade_of_a_missing_store_is_an_error(tmp_path):
    result = priors_cli("upgrade", "--store", str(tmp_path / "nowhere"))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: no prior store at")
