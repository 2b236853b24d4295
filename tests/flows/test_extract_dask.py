"""`extract-priors` on an existing Dask cluster: a real `dask scheduler` and two `dask worker`
processes on loopback, started and stopped here; each worker keeps its captioner across shards,
and a worker killed mid-shard loses nothing."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from flows.extract import ExtractPriorsParameters, extract_priors
from storage import PriorStore

INSTRUMENTED = Path(__file__).parent / "instrumented"
WORKTREE = Path(__file__).parents[2]
DASK = str(Path(sys.executable).parent / "dask")
START_TIMEOUT_S = 120.0
STOP_GRACE_S = 10.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class DaskCluster:
    address: str
    workers: list[subprocess.Popen]
    events: Path


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_GRACE_S)


@pytest.fixture
def dask_cluster(prefect_api, tmp_path) -> Iterator[DaskCluster]:
    """A scheduler and two single-threaded workers without nannies (so a killed worker stays
    dead), their captioners recording into `events` and sleeping 1 s per batch."""
    from distributed import Client

    events = tmp_path / "events"
    events.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(map(str, (INSTRUMENTED, WORKTREE))),
        "LLMFORMER_TEST_CAPTION_LOG": str(events),
        "LLMFORMER_TEST_CAPTION_SLEEP": "1.0",
    }
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = (tmp_path / "dask.log").open("w")
    scheduler_command = [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port)]
    processes = [
        subprocess.Popen([*scheduler_command, "--no-dashboard"], env=env, stdout=logs, stderr=logs)
    ]
    try:
        for index in range(2):
            worker = [DASK, "worker", address, "--nthreads", "1", "--no-nanny"]
            worker += ["--no-dashboard", "--name", f"worker-{index}", "--host", "127.0.0.1"]
            processes.append(subprocess.Popen(worker, env=env, stdout=logs, stderr=logs))
        with Client(address, timeout=START_TIMEOUT_S) as client:
            client.wait_for_workers(2, timeout=START_TIMEOUT_S)
        yield DaskCluster(address, processes[1:], events)
    finally:
        for process in reversed(processes):
            _stop(process)
        logs.close()


def _events(folder: Path, kind: str) -> list[dict]:
    lines = (line for path in folder.glob("*.jsonl") for line in path.read_text().splitlines())
    return [event for event in map(json.loads, lines) if event["event"] == kind]


def _kill_the_first_busy_worker(cluster: DaskCluster, killed: list[dict]) -> None:
    """Wait (bounded) until a worker starts captioning, then SIGKILL it mid-shard."""
    by_pid = {worker.pid: worker for worker in cluster.workers}
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        for event in _events(cluster.events, "caption"):
            if event["pid"] in by_pid:
                by_pid[event["pid"]].kill()
                killed.append(event)
                return
        time.sleep(0.05)


@pytest.mark.slow
def test_an_existing_cluster_does_every_image_once_and_survives_a_lost_worker(
    dask_cluster, small_demo, tmp_path
) -> None:
    store = tmp_path / "store"
    params = ExtractPriorsParameters(
        store=store,
        dataset="demo",
        data_root=small_demo,
        captions=small_demo / "captions.jsonl",
        shard_size=1,
        task_runner="dask",
        dask_address=dask_cluster.address,
    )
    killed: list[dict] = []
    killer = threading.Thread(target=_kill_the_first_busy_worker, args=(dask_cluster, killed))
    killer.start()
    prior_set_id = extract_priors(**dict(params))
    killer.join(timeout=START_TIMEOUT_S)

    with PriorStore(store).connect() as connection:
        rows = connection.sql(
            "SELECT image_id, count(*) FROM captions WHERE prior_set_id = $id GROUP BY image_id",
            params={"id": prior_set_id},
        ).fetchall()
    assert len(rows) == 8
    assert {count for _, count in rows} == {1}

    [lost] = killed
    survivor = next(w.pid for w in dask_cluster.workers if w.pid != lost["pid"])
    redone = [e["pid"] for e in _events(dask_cluster.events, "caption") if e["ids"] == lost["ids"]]
    assert sorted(redone) == sorted([lost["pid"], survivor]), "the lost shard was not redone"
    builds = [event["pid"] for event in _events(dask_cluster.events, "build")]
    captions = [event["pid"] for event in _events(dask_cluster.events, "caption")]
    assert builds.count(survivor) == 1, "a worker loaded its captioner more than once"
    assert captions.count(survivor) >= 4
