"""The `extract-priors` flow: parameter validation, transient-only retries, and real runs."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from prefect import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from prefect.states import Completed, Failed
from pydantic import ValidationError

from flows.extract import (
    WORKER_CAPTIONERS,
    ExtractPriorsParameters,
    _is_transient,
    extract_priors,
    partition_command,
)
from storage import PriorStore


def _params(demo: Path, store: Path, **changes) -> ExtractPriorsParameters:
    values = dict(
        store=store, dataset="demo", data_root=demo, captions=demo / "captions.jsonl", shard_size=3
    )
    return ExtractPriorsParameters(**{**values, **changes})


def _run(params: ExtractPriorsParameters) -> str:
    """The flow called as Prefect calls it: one keyword argument per parameter."""
    return extract_priors(**dict(params))


def _rows(store: Path, prior_set_id: str) -> list[tuple]:
    with PriorStore(store).connect() as connection:
        return connection.sql(
            "SELECT image_id, count(*) FROM captions WHERE prior_set_id = $id "
            "GROUP BY image_id ORDER BY image_id",
            params={"id": prior_set_id},
        ).fetchall()


def _shard_flow_parameters() -> list[dict]:
    """The parameters of every `extract-shards` run the server holds."""
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["extract-shards"]))
        )
    return [run.parameters for run in runs]


def test_exactly_one_source_is_required(tmp_path) -> None:
    with pytest.raises(ValidationError, match="exactly one of images, manifest, dataset"):
        ExtractPriorsParameters(images=tmp_path, dataset="demo")


def test_shard_size_must_be_positive(tmp_path) -> None:
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        ExtractPriorsParameters(shard_size=0)


def test_only_transient_errors_are_retried() -> None:
    assert _is_transient(None, None, Failed(data=OSError("disk hiccup")))
    assert _is_transient(None, None, Failed(data=TimeoutError("slow")))
    assert not _is_transient(None, None, Failed(data=ValueError("bad data")))
    assert not _is_transient(None, None, Completed(data=1))


def test_flow_writes_every_image_once_and_resumes(prefect_api, small_demo, tmp_path) -> None:
    store = tmp_path / "store"
    prior_set_id = _run(_params(small_demo, store))
    rows = _rows(store, prior_set_id)
    assert len(rows) == 8
    assert {count for _, count in rows} == {1}
    actions = pa.table(DeltaTable(str(store / "priors")).get_add_actions(flatten=True))
    relation_files = [
        row for row in actions.to_pylist() if row["partition.table_name"] == "rolled_relations"
    ]
    assert len(relation_files) == 1, "the prior set was not compacted"
    shard_runs = _shard_flow_parameters()
    assert all(set(run) == {"params_json", "plan", "progress_id"} for run in shard_runs)
    assert [0, 1, 2] in [run["plan"]["shards"] for run in shard_runs], "8 images, shards of 3"
    assert not any(image_id in json.dumps(shard_runs) for image_id, _ in rows)
    assert _run(_params(small_demo, store)) == prior_set_id
    assert _rows(store, prior_set_id) == rows
    with PriorStore(store).connect() as connection:
        [(classes, covered)] = connection.sql(
            "SELECT classes, covered FROM class_coverage_summary"
        ).fetchall()
    assert classes == 9
    assert 0 < covered < classes
    charts = sorted(path.name for path in (store / "plots" / prior_set_id).glob("*.png"))
    assert charts == [
        "attributes_by_kind.png",
        "objects_per_image.png",
        "relation_predicates.png",
        "top_objects.png",
    ]


@pytest.mark.slow
def test_shards_run_in_parallel_on_a_local_dask_cluster(prefect_api, small_demo, tmp_path) -> None:
    pytest.importorskip("prefect_dask")
    store = tmp_path / "store"
    params = _params(small_demo, store, task_runner="dask", dask_workers=2)
    WORKER_CAPTIONERS.clear()
    prior_set_id = _run(params)
    assert len(WORKER_CAPTIONERS) == 0, "the flow process built a captioner"
    assert prior_set_id == _run(_params(small_demo, tmp_path / "threads"))
    assert _rows(store, prior_set_id) == _rows(tmp_path / "threads", prior_set_id)
    assert len(_rows(store, prior_set_id)) == 8


@pytest.mark.slow
def test_gpus_run_one_partition_process_each(prefect_api, small_demo, tmp_path) -> None:
    store = tmp_path / "store"
    WORKER_CAPTIONERS.clear()
    prior_set_id = _run(_params(small_demo, store, gpus=2, devices="0,1"))
    assert len(WORKER_CAPTIONERS) == 0, "the flow process built a captioner"
    rows = _rows(store, prior_set_id)
    assert len(rows) == 8
    assert {count for _, count in rows} == {1}


def test_partition_commands_split_the_work_between_gpus(tmp_path) -> None:
    params = ExtractPriorsParameters(store=tmp_path, gpus=2, limit=5)
    first, second = (partition_command(params, index, 2) for index in range(2))
    assert first[first.index("--partition") + 1] == "0/2"
    assert second[second.index("--partition") + 1] == "1/2"
    assert first[first.index("--limit") + 1] == "5"
    assert "--images" not in first
    assert "--retry-failed" not in first
    assert "--tensor-parallel-size" not in first
    retrying = ExtractPriorsParameters(store=tmp_path, gpus=2, retry_failed=True)
    assert partition_command(retrying, 0, 2)[-1] == "--retry-failed"
