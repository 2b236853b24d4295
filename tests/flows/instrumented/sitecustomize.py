"""Imported at start-up by every Python process whose PYTHONPATH starts with this folder (what
`sitecustomize` is for): with $LLMFORMER_TEST_CAPTION_LOG set, the file captioner in that process
records each build and caption call with its pid and `CUDA_VISIBLE_DEVICES`, so a test can see
which child process or Dask worker, on which device, captioned what.

$LLMFORMER_TEST_CAPTION_LOG    folder: one `<pid>.jsonl` of events per process
$LLMFORMER_TEST_CAPTION_SLEEP  seconds each caption call sleeps after recording its start
$LLMFORMER_TEST_BUILD_BARRIER  a build waits (at most 60 s) until that many processes built one
$LLMFORMER_TEST_FAIL_DEVICE    the build on this device raises after the barrier
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

BARRIER_TIMEOUT_S = 60.0


def _device() -> str:
    return os.environ.get("CUDA_VISIBLE_DEVICES", "")


def _record(folder: Path, event: str, **fields) -> None:
    line = json.dumps({"event": event, "pid": os.getpid(), "device": _device(), **fields})
    with (folder / f"{os.getpid()}.jsonl").open("a") as events:
        events.write(line + "\n")


def _wait_for_builds(folder: Path, count: int) -> None:
    deadline = time.monotonic() + BARRIER_TIMEOUT_S
    while len(list(folder.glob("*.jsonl"))) < count and time.monotonic() < deadline:
        time.sleep(0.05)


def _instrument(folder: Path) -> None:
    from prior_extraction.captioners.file import FileCaptioner

    build, caption = FileCaptioner.__init__, FileCaptioner.caption
    sleep_s = float(os.environ.get("LLMFORMER_TEST_CAPTION_SLEEP", "0"))

    def recorded_build(self, *args, **kwargs) -> None:
        build(self, *args, **kwargs)
        _record(folder, "build")
        print(f"captioner ready on device {_device()}", flush=True)
        _wait_for_builds(folder, int(os.environ.get("LLMFORMER_TEST_BUILD_BARRIER", "0")))
        if _device() == os.environ.get("LLMFORMER_TEST_FAIL_DEVICE"):
            raise RuntimeError(f"device {_device()} fails on purpose")

    def recorded_caption(self, batch):
        ids = [request.image_id for request in batch]
        _record(folder, "caption", ids=ids)
        print(f"captioning {len(ids)} images on device {_device()}", flush=True)
        time.sleep(sleep_s)
        return caption(self, batch)

    FileCaptioner.__init__ = recorded_build
    FileCaptioner.caption = recorded_caption


if log_folder := os.environ.get("LLMFORMER_TEST_CAPTION_LOG"):
    _instrument(Path(log_folder))
