"""The `extract-priors` plan: subflow and tasks get shard indices into the source's listing,
never image lists, so a run's parameters stay small at any dataset size."""

from __future__ import annotations

import json
from pathlib import Path
from uuid import uuid4

import pytest
from pydantic import ValidationError

from flows.extract import (
    ExtractPriorsParameters,
    SourceChangedError,
    extract_shards,
    list_source,
    plan_extraction,
    planned_shard,
)

LARGE_DATASET = 200_000
PARAMETERS_LIMIT = 8 * 1024
"""Bytes the `extract-shards` parameters may take at 200k images (the image ids take ~10 MB)."""


def _manifest(folder: Path, count: int) -> Path:
    """A manifest of `count` images (the files need not exist: nothing here opens them)."""
    path = folder / "large.jsonl"
    with path.open("w") as lines:
        for index in range(count):
            lines.write(json.dumps({"id": f"{index:07d}.jpg", "path": f"img/{index:07d}.jpg"}))
            lines.write("\n")
    return path


def _params(tmp_path: Path, manifest: Path, **changes) -> ExtractPriorsParameters:
    captions = tmp_path / "captions.jsonl"
    captions.touch()
    values = dict(store=tmp_path / "store", manifest=manifest, dataset=None, captions=captions)
    return ExtractPriorsParameters(**{**values, **changes})


@pytest.mark.slow
def test_the_shard_subflow_parameters_stay_small_at_200k_images(tmp_path) -> None:
    params = _params(tmp_path, _manifest(tmp_path, LARGE_DATASET), shard_size=256)
    listing = list_source(params)
    plan = plan_extraction(listing, pending=listing.items)
    assert plan.shard_count == len(plan.shards) == -(-LARGE_DATASET // 256)
    parameters = {"params_json": params.model_dump_json(), "plan": plan, "progress_id": uuid4()}
    size = _serialized_size(parameters)
    assert size < PARAMETERS_LIMIT
    assert _serialized_size({"ids": [item.image_id for item in listing.items]}) > 500 * size


def _serialized_size(parameters: dict) -> int:
    """Bytes of the parameters Prefect sends when it creates the `extract-shards` run."""
    return len(json.dumps(extract_shards.serialize_parameters(parameters)))


def test_a_plan_holds_only_the_shards_with_pending_images(tmp_path) -> None:
    params = _params(tmp_path, _manifest(tmp_path, 10), shard_size=4)
    listing = list_source(params)
    plan = plan_extraction(listing, pending=[listing.items[1], listing.items[9]])
    assert (plan.shard_count, plan.shards) == (3, [0, 2])
    assert [item.image_id for item in planned_shard(params.model_dump_json(), plan, 2).items] == [
        "0000008.jpg",
        "0000009.jpg",
    ]


def test_a_task_refuses_a_plan_made_for_another_listing(tmp_path) -> None:
    manifest = _manifest(tmp_path, 10)
    params = _params(tmp_path, manifest, shard_size=4)
    plan = plan_extraction(list_source(params), pending=[])
    with manifest.open("a") as lines:
        lines.write(json.dumps({"id": "new.jpg", "path": "img/new.jpg"}) + "\n")
    with pytest.raises(SourceChangedError, match="the source lists other images"):
        planned_shard(params.model_dump_json(), plan, 0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tensor_parallel_size": 2, "gpus": 2}, "tensor_parallel_size > 1 needs captioner=vllm"),
        (
            {"captioner": "vllm", "tensor_parallel_size": 2, "gpus": 3},
            "gpus=3 do not split into engines of tensor_parallel_size=2",
        ),
        ({"gpus": 3, "devices": "3,5"}, "3 GPUs asked for, but devices='3,5' lists 2"),
        ({"dask_address": "tcp://127.0.0.1:8786"}, "dask_address needs task_runner=dask"),
        (
            {"captioner": "vllm", "task_runner": "dask", "dask_workers": 2},
            "the workers of a local Dask cluster would share one GPU",
        ),
    ],
)
def test_scale_out_settings_that_cannot_work_are_refused(tmp_path, changes, message) -> None:
    with pytest.raises(ValidationError, match=message):
        ExtractPriorsParameters(store=tmp_path, **changes)
