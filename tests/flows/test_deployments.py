"""Both deployments run as users type it, `prefect deployment run NAME -p key=value --watch`,
against a real server, from a folder laid out as the project's `data/`; bad parameters are
refused when the run is created; the runs leave pictures in their artifacts, TensorBoard event
files with loss and mIoU, per-image evaluation rows and the priors report."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DATA_URI = re.compile(r"!\[[^\]]*\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _prefect(arguments: list[str], cwd: Path, env: dict, timeout: float = 120):
    return subprocess.run(
        [sys.executable, "-m", "prefect", *arguments],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
        check=False,
    )


def _project(tmp_path: Path, small_demo: Path) -> Path:
    """A working folder with the demo set where the flows' defaults look for it."""
    project = tmp_path / "project"
    shutil.copytree(small_demo, project / "data/datasets/demo")
    (project / "segmentation").mkdir()
    (project / "segmentation/configs").symlink_to(REPO / "segmentation/configs")
    return project


def _pictures(markdown: str) -> list[bytes]:
    return [base64.b64decode(encoded) for encoded in DATA_URI.findall(markdown)]


def _artifact_markdown(key: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])), limit=1
        )
    return artifact.data


def _scalar_tags(work_dir: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for events in work_dir.glob("*/vis_data/events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        tags |= set(accumulator.Tags()["scalars"])
        for tag in ("loss", "mIoU"):
            if tag in accumulator.Tags()["scalars"]:
                values = [event.value for event in accumulator.Scalars(tag)]
                assert all(value == value for value in values), f"{tag} holds NaN"
    return tags


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_deployments_take_prefect_parameters_and_leave_pictures(
    prefect_api, small_demo, untrained_tiny_clip, tmp_path
) -> None:
    project = _project(tmp_path, small_demo)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "flows.serve"], cwd=project, env=env, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 180
        while _prefect(
            ["deployment", "inspect", "train-segmenter/default"], project, env
        ).returncode:
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(2)
        refusals = {
            ("train-segmenter/default", "max_iters=abc"): "Validation failed for field 'max_iters'",
            ("extract-priors/default", "shard_size=0"): "Validation failed for field 'shard_size'",
            ("train-segmenter/default", "nosuch=1"): "parameters were specified but not found on "
            "the deployment: 'nosuch'",
        }
        for (deployment, parameter), message in refusals.items():
            refused = _prefect(["deployment", "run", deployment, "-p", parameter], project, env)
            assert refused.returncode != 0, parameter
            assert message in " ".join((refused.stdout + refused.stderr).split()), refused.stdout

        for deployment, parameter in (
            ("extract-priors/default", "limit=8"),
            ("train-segmenter/default", "max_iters=20"),
        ):
            run = _prefect(
                ["deployment", "run", deployment, "-p", parameter, "--watch"], project, env, 600
            )
            assert run.returncode == 0, (
                run.stdout + run.stderr + (tmp_path / "serve.log").read_text()
            )
    finally:
        server.terminate()
        server.wait(timeout=30)

    work_dir = project / "data/work_dirs/llmformer_tiny_demo"
    assert (work_dir / "iter_20.pth").exists()
    assert {"loss", "lr", "mIoU"} <= _scalar_tags(work_dir)
    assert (work_dir / "report/report.md").exists()
    for key, pictures in {
        "extract-priors-plots": 4,
        "train-segmenter-curves": 1,
        "train-segmenter-priors-report": 3,
    }.items():
        found = _pictures(_artifact_markdown(key))
        assert len(found) == pictures, key
        assert all(picture.startswith(PNG_SIGNATURE) for picture in found), key

    from storage import PriorStore

    with PriorStore(project / "data/store").connect() as connection:
        [(images, checkpoint)] = connection.sql(
            "SELECT count(DISTINCT image_id), any_value(checkpoint) FROM eval_images"
        ).fetchall()
    assert images == 2
    assert checkpoint.endswith("data/work_dirs/llmformer_tiny_demo/iter_20.pth")
