"""Real processes against a local and an S3 store: SIGKILL mid-write then resume, writers at
once, and a query while a compaction commits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import storage
from storage import PriorStore

REPO_ROOT = Path(storage.__file__).resolve().parent.parent
SHARD_IMAGES = 20
WAIT_S = 180

# A writer process: `writer.py STORE SHARD[,SHARD...]`, which writes each shard not yet done
# (SHARD_IMAGES images named after it, the 'red car on the road' priors) as a resumed
# extraction does. With DIE_IN_SHARD set it SIGKILLs itself from a thread a few milliseconds into
# the write of that shard; with GO set it waits for that file first, so writers start together.
WRITER = textwrap.dedent(
    f"""
    import os, signal, sys, threading, time
    from storage import ImagePriors, ImageRecord, PriorSetSpec, PriorStore

    root, shards = sys.argv[1], sys.argv[2].split(",")
    go, die_in = os.environ.get("GO"), os.environ.get("DIE_IN_SHARD")
    while go and not os.path.exists(go):
        time.sleep(0.01)
    store = PriorStore(root)
    spec = PriorSetSpec("file", "m", "Describe the image.", {{}}, "llmformer-spacy-rules", "1")
    prior_set = store.register_prior_set(spec)
    done = store.done_image_ids(prior_set)
    for shard in shards:
        ids = [f"{{shard}}-{{index:03d}}" for index in range({SHARD_IMAGES})]
        if set(ids) <= done:
            continue
        priors = [
            ImagePriors(
                image_id,
                "A red car on the road.",
                [{{"name": "car", "span": "A red car", "count": 1}},
                 {{"name": "road", "span": "the road", "count": 1}}],
                [{{"object": 0, "value": "red", "kind": "color"}}],
                [{{"subject": 0, "predicate": "on", "object": 1}}],
            )
            for image_id in ids
        ]
        images = [ImageRecord(i, i + ".jpg", 8, 8, None, "ok") for i in ids]
        if shard == die_in:
            delay = float(os.environ.get("DIE_AFTER_S", "0.005"))
            kill = lambda: (time.sleep(delay), os.kill(os.getpid(), signal.SIGKILL))
            threading.Thread(target=kill, daemon=True).start()
        store.write_shard(prior_set, "demo", "train", shard, images, priors, [])
    print(prior_set)
    """
)


def start_writer(tmp_path: Path, root: str, shards: list[str], **env: str) -> subprocess.Popen:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    return subprocess.Popen(
        [sys.executable, str(script), root, ",".join(shards)],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def image_counts(store: PriorStore) -> tuple[int, int, int]:
    """Rows of images and objects, and images counted more than once."""
    connection = store.connect()
    images, distinct = connection.execute(
        "SELECT count(*), count(DISTINCT image_id) FROM images"
    ).fetchone()
    (objects,) = connection.execute("SELECT count(*) FROM objects").fetchone()
    return images, objects, images - distinct


@pytest.mark.parametrize("die_after_s", [0.0, 0.005, 0.05])
def test_sigkill_mid_write_then_resume_does_each_image_once(
    finish, tmp_path, store_root, die_after_s
):
    shards = [f"shard-{index}" for index in range(4)]
    killed = start_writer(
        tmp_path, store_root, shards, DIE_IN_SHARD="shard-2", DIE_AFTER_S=str(die_after_s)
    )
    assert finish(killed, WAIT_S)[0] == -signal.SIGKILL
    images, objects, repeated = image_counts(PriorStore(store_root))
    assert images in (2 * SHARD_IMAGES, 3 * SHARD_IMAGES)  # shard-2 whole or not at all
    assert (objects, repeated) == (2 * images, 0)

    returncode, stderr = finish(start_writer(tmp_path, store_root, shards), WAIT_S)
    assert returncode == 0, stderr
    assert image_counts(PriorStore(store_root)) == (4 * SHARD_IMAGES, 8 * SHARD_IMAGES, 0)


def test_two_writer_processes_at_once_both_complete_each_image_once(finish, tmp_path, store_root):
    go = tmp_path / "go"
    writers = [
        start_writer(tmp_path, store_root, [f"{name}-{i}" for i in range(4)], GO=str(go))
        for name in ("left", "right")
    ]
    go.touch()
    for writer in writers:
        returncode, stderr = finish(writer, WAIT_S)
        assert returncode == 0, stderr
    store = PriorStore(store_root)
    assert image_counts(store) == (8 * SHARD_IMAGES, 16 * SHARD_IMAGES, 0)
    assert store.connect().execute("SELECT count(*) FROM prior_sets").fetchone() == (1,)


COMPACTOR = textwrap.dedent(
    """
    import sys
    from storage import PriorStore
    print(PriorStore(sys.argv[1]).compact())
    """
)


def test_a_query_during_compaction_sees_one_version(finish, tmp_path, store_root):
    shards = [f"shard-{index}" for index in range(12)]
    returncode, stderr = finish(start_writer(tmp_path, store_root, shards), WAIT_S)
    assert returncode == 0, stderr
    store = PriorStore(store_root)
    expected = (12 * SHARD_IMAGES, 24 * SHARD_IMAGES, 0)
    before = store.version()
    script = tmp_path / "compactor.py"
    script.write_text(COMPACTOR)
    compactor = subprocess.Popen(
        [sys.executable, str(script), store_root],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen, deadline = [], time.monotonic() + WAIT_S
    while compactor.poll() is None and time.monotonic() < deadline:
        seen.append(image_counts(store))
    returncode, stderr = finish(compactor, WAIT_S)
    assert returncode == 0, stderr
    seen.append(image_counts(store))
    assert store.version() > before
    assert len(seen) > 2, "no query ran while the compaction did"
    assert set(seen) == {expected}, "a query saw files of two versions at once"
