"""A real Prefect server for the flow tests (one per session), and a small demo set."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows.server import start_server, stop_server


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory) -> Iterator[str]:
    """PREFECT_API_URL of a server started for this session; set in the environment meanwhile."""
    data_dir = tmp_path_factory.mktemp("prefect-data")
    status = start_server(data_dir, port=_free_port(), timeout=240.0, notify=lambda _: None)
    previous = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = status.record.api_url
    try:
        with temporary_settings({PREFECT_API_URL: status.record.api_url}):
            yield status.record.api_url
    finally:
        stop_server(data_dir)
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory) -> Path:
    """Eight generated demo images with their captions."""
    from segmentation.demo import DemoSpec, write_demo

    root = tmp_path_factory.mktemp("demo") / "demo"
    write_demo(DemoSpec(seed=3, num_train=6, num_val=2), root, progress=False)
    return root


@pytest.fixture(scope="session")
def extract_demo_priors():
    """Stage 1 in process on a demo set's captions file: `(data_root, store) -> prior set id`."""

    def extract(data_root: Path, store: Path) -> str:
        from prior_extraction.captioners.file import FileCaptioner
        from prior_extraction.parsing import CaptionParser
        from prior_extraction.run import ExtractionConfig, run_extraction
        from prior_extraction.sources import build_source
        from storage import PriorStore

        source = build_source(dataset="demo", data_root=data_root)
        captioner = FileCaptioner(data_root / "captions.jsonl")
        config = ExtractionConfig(show_progress=False)
        summary = run_extraction(source, captioner, CaptionParser(), PriorStore(store), config)
        return summary.prior_set_id

    return extract
