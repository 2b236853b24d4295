"""`llmformer priors extract|sets|stats|query|report` on the demo set into a local and an S3
store (a moto server): the whole round, a SIGKILL mid-extraction then a resume, and two
extraction processes writing halves of the set at once; each image lands once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import storage
from flows.cli import app
from storage import EvalImageClass, EvalRun, PriorStore

REPO_ROOT = Path(storage.__file__).resolve().parent.parent
DEMO_IMAGES = 8
WAIT_S = 240
runner = CliRunner()


@pytest.fixture(scope="session")
def demo(tmp_path_factory) -> Path:
    """The procedural demo set (eight images) with its captions file."""
    from segmentation.demo import DemoSpec, write_demo

    root = tmp_path_factory.mktemp("demo") / "demo"
    write_demo(DemoSpec(seed=3, num_train=6, num_val=2), root, progress=False)
    return root


def extract_args(demo: Path, store: str, *extra: str) -> list[str]:
    return [
        "priors",
        "extract",
        "--store",
        store,
        "--dataset",
        "demo",
        "--data-root",
        str(demo),
        "--captioner",
        "file",
        "--captions",
        str(demo / "captions.jsonl"),
        "--shard-size",
        "2",
        "--no-progress",
        *extra,
    ]


def cli(*args: str):
    return runner.invoke(app, list(args))


def each_image_once(store: str) -> tuple[int, int]:
    """Rows and distinct images of `images`."""
    connection = PriorStore(store, create=False).connect()
    return connection.execute("SELECT count(*), count(DISTINCT image_id) FROM images").fetchone()


def query_json(store: str, sql: str, *extra: str) -> list[dict]:
    result = cli("priors", "query", "--store", store, sql, "--format", "json", *extra)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_extract_then_sets_stats_query_and_report(demo, store_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    extracted = cli(*extract_args(demo, store_root))
    assert extracted.exit_code == 0, extracted.output
    assert not (tmp_path / "s3:").exists(), "an s3:// store was written to a local folder"
    assert each_image_once(store_root) == (DEMO_IMAGES, DEMO_IMAGES)
    store = PriorStore(store_root, create=False)
    (prior_set,) = store.prior_set_ids()

    listed = cli("priors", "sets", "--store", store_root)
    assert listed.exit_code == 0, listed.output
    assert prior_set in listed.stdout
    stats = cli("priors", "stats", "--store", store_root, "--top", "3")
    assert stats.exit_code == 0, stats.output
    assert "top objects" in stats.stdout and "top relations" in stats.stdout

    count = "SELECT count(*) AS n FROM captions"
    assert query_json(store_root, count) == [{"n": DEMO_IMAGES}]
    assert query_json(store_root, count, "--as-of", "1") == [{"n": 2}]  # the first shard
    frequency = query_json(store_root, "SELECT sum(mentions)::BIGINT AS n FROM relation_frequency")
    assert frequency == query_json(store_root, "SELECT count(*) AS n FROM relations")

    image_id = query_json(store_root, "SELECT min(image_id) AS id FROM images")[0]["id"]
    evaluation = EvalRun("run-1", "demo", "demo", checkpoint="ck.pth", prior_set_id=prior_set)
    store.write_eval_images(evaluation, [EvalImageClass(image_id, 0, "circle", 10, 8, 6)])
    report = cli("priors", "report", "--store", store_root, "--out", str(tmp_path / "report"))
    assert report.exit_code == 0, report.output
    assert "# Priors report: run-1" in (tmp_path / "report" / "report.md").read_text()


def start_extraction(demo: Path, store: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "flows.cli", *extract_args(demo, store, *extra)],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigkill_mid_extraction_then_resume_does_each_image_once(finish, demo, store_root):
    extraction = start_extraction(demo, store_root, "--no-compact")
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and extraction.poll() is None:
        if PriorStore.exists(store_root) and PriorStore(store_root).version() >= 2:
            break
        time.sleep(0.05)
    extraction.send_signal(signal.SIGKILL)
    assert finish(extraction, WAIT_S)[0] == -signal.SIGKILL
    images, distinct = each_image_once(store_root)
    assert images == distinct and images < DEMO_IMAGES

    resumed = cli(*extract_args(demo, store_root))
    assert resumed.exit_code == 0, resumed.output
    assert each_image_once(store_root) == (DEMO_IMAGES, DEMO_IMAGES)


def test_two_extraction_processes_at_once_both_complete(finish, demo, store_root):
    halves = [start_extraction(demo, store_root, "--partition", f"{i}/2") for i in range(2)]
    for half in halves:
        returncode, stderr = finish(half, WAIT_S)
        assert returncode == 0, stderr
    assert each_image_once(store_root) == (DEMO_IMAGES, DEMO_IMAGES)
