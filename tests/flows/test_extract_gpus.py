"""`extract-priors` on several GPUs, faked on a CPU: `CUDA_VISIBLE_DEVICES=3,5,7` and real
`priors extract` child processes whose file captioner records its device and sleeps (see
`instrumented/sitecustomize.py`)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.extract import ExtractPriorsParameters, engine_children, extract_priors
from flows.fanout import DeviceListError, FanOutError
from storage import PriorStore

INSTRUMENTED = Path(__file__).parent / "instrumented"
WORKTREE = Path(__file__).parents[2]


@pytest.fixture
def fake_gpus(monkeypatch, tmp_path) -> Path:
    """Three visible GPUs, and children whose captioner records into the returned folder."""
    events = tmp_path / "events"
    events.mkdir()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5,7")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(map(str, (INSTRUMENTED, WORKTREE))))
    monkeypatch.setenv("LLMFORMER_TEST_CAPTION_LOG", str(events))
    monkeypatch.setenv("LLMFORMER_TEST_CAPTION_SLEEP", "1.0")
    monkeypatch.setenv("LLMFORMER_TEST_BUILD_BARRIER", "3")
    return events


@pytest.fixture
def task_log() -> Iterator[list[str]]:
    """The messages the flow's tasks log, in order."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = Collect()
    logger = logging.getLogger("prefect.task_runs")
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


def _params(demo: Path, store: Path) -> ExtractPriorsParameters:
    return ExtractPriorsParameters(
        store=store,
        dataset="demo",
        data_root=demo,
        captions=demo / "captions.jsonl",
        shard_size=2,
        batch_size=1,
        gpus=3,
    )


def _events(folder: Path) -> list[dict]:
    return [json.loads(line) for path in folder.glob("*.jsonl") for line in path.open()]


def test_engines_take_the_visible_gpus_in_tensor_parallel_groups(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    params = ExtractPriorsParameters(
        store=tmp_path, captioner="vllm", gpus=4, tensor_parallel_size=2
    )
    children = engine_children(params)
    assert [child.devices for child in children] == [("4", "5"), ("6", "7")]
    assert [child.name for child in children] == [
        "partition 0/2 on GPU 4,5",
        "partition 1/2 on GPU 6,7",
    ]
    command = children[1].command
    assert command[command.index("--partition") + 1] == "1/2"
    assert command[command.index("--tensor-parallel-size") + 1] == "2"


@pytest.mark.parametrize(
    ("captioner", "devices", "message"),
    [
        ("file", "0,1", "error: --tensor-parallel-size needs --captioner vllm"),
        (
            "vllm",
            "4",
            "error: tensor_parallel_size=2 needs as many GPUs, but CUDA_VISIBLE_DEVICES='4' "
            "shows 1",
        ),
    ],
)
def test_the_cli_refuses_a_tensor_parallel_size_it_cannot_use(
    monkeypatch, tmp_path, captioner, devices, message
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", devices)
    arguments = ["priors", "extract", "--store", str(tmp_path / "store"), "--images", "."]
    arguments += ["--captioner", captioner, "--tensor-parallel-size", "2"]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 2
    assert result.output.strip() == message


def test_more_gpus_than_visible_is_refused_before_any_child(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    with pytest.raises(DeviceListError, match="3 GPUs asked for, but CUDA_VISIBLE_DEVICES='3,5'"):
        engine_children(ExtractPriorsParameters(store=tmp_path, gpus=3))


@pytest.mark.slow
def test_each_child_runs_on_its_own_gpu_and_streams_its_output(
    prefect_api, small_demo, tmp_path, fake_gpus, task_log
) -> None:
    store = tmp_path / "store"
    prior_set_id = extract_priors(**dict(_params(small_demo, store)))

    events = _events(fake_gpus)
    builds = {event["pid"]: event["device"] for event in events if event["event"] == "build"}
    assert sorted(builds.values()) == ["3", "5", "7"], "one child per GPU"
    captioned = [
        (event["device"], image_id)
        for event in events
        if event["event"] == "caption"
        for image_id in event["ids"]
    ]
    assert all(builds[event["pid"]] == event["device"] for event in events)
    assert len({image_id for _, image_id in captioned}) == len(captioned) == 8
    with PriorStore(store).connect() as connection:
        [(rows, images)] = connection.sql(
            "SELECT count(*), count(DISTINCT image_id) FROM captions WHERE prior_set_id = $id",
            params={"id": prior_set_id},
        ).fetchall()
    assert rows == images == 8

    child_lines = [line for line in task_log if line.startswith("[partition ")]
    for device in "357":
        assert any(line.endswith(f"captioner ready on device {device}") for line in child_lines)
    ready = [i for i, line in enumerate(child_lines) if "captioner ready" in line]
    done = [i for i, line in enumerate(child_lines) if "images in source" in line]
    assert len(done) == 3, "every child's summary is forwarded"
    assert max(ready) < min(done), "a child's output waited for another child to finish"


@pytest.mark.slow
def test_a_failing_child_stops_the_others_and_fails_the_run_naming_it(
    prefect_api, small_demo, tmp_path, fake_gpus, monkeypatch
) -> None:
    monkeypatch.setenv("LLMFORMER_TEST_FAIL_DEVICE", "5")
    with pytest.raises(FanOutError) as raised:
        extract_priors(**dict(_params(small_demo, tmp_path / "store")))
    assert str(raised.value) == "partition 1/3 on GPU 5 exited with 1; stopped the other 2"
    pids = {event["pid"] for event in _events(fake_gpus)}
    assert len(pids) == 3
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
