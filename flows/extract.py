"""Prefect flow `extract-priors`: stage 1 as a DAG of one task per shard over `prior_extraction`.

The flow plans the run (the source's listing cut into shards, and which shards still hold images
the prior set lacks), runs one task per planned shard (caption + parse + write, retried only for
transient errors: bad images never raise, they become `failures` rows), reports progress as an
artifact and ends with a table artifact. Subflow and tasks receive the plan, never image lists:
each process lists the source itself. With `gpus > 1` it starts one `priors extract` process per
engine instead (`flows.fanout`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
import threading
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Literal
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NONE as NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, Field, model_validator

from flows.artifacts import pictures_markdown
from flows.children import cli_command
from flows.fanout import Child, engine_groups, run_children, visible_devices
from flows.parameters import flat_parameters
from prior_extraction.captioners import (
    Captioner,
    CaptionerOptions,
    build_captioner,
    captioner_identity,
    default_batch_size,
)
from prior_extraction.captioners.prompts import resolve_prompt
from prior_extraction.parsing import CaptionParser
from prior_extraction.run import (
    ExtractionConfig,
    ExtractionSummary,
    Shard,
    make_shards,
    pending_items,
    prior_set_spec,
    run_extraction,
    select_items,
)
from prior_extraction.sources import ImageItem, build_source
from segmentation.datasets.benchmarks import ROOT_CLASSES_FILE
from segmentation.datasets.class_names import ClassNames
from storage import PriorStore
from storage.plots import plot_statistics
from storage.stats import StatisticsFilter, statistic, statistics

TRANSIENT_ERRORS = (OSError, TimeoutError, ConnectionError, MemoryError)
"""Errors worth a retry: a flaky filesystem, a lost connection, memory pressure."""


class ExtractPriorsParameters(BaseModel):
    """Everything an `extract-priors` run needs; validated by Prefect when a run is created."""

    store: str | Path = Field("data/store", description="A folder or s3://bucket/prefix.")
    images: Path | None = Field(None, description="A folder of images (recursive).")
    manifest: Path | None = Field(None, description='A JSONL manifest of {"id", "path"} lines.')
    dataset: str | None = Field("demo", description="A dataset name (demo, ade20k_150, ...).")
    data_root: Path | None = Field(
        Path("data/datasets/demo"), description="The dataset's root folder."
    )
    dataset_name: str | None = Field(
        None, description="Store the images or manifest under this dataset name."
    )
    captioner: Literal["vllm", "transformers", "file"] = "file"
    captions: Path | None = Field(
        Path("data/datasets/demo/captions.jsonl"), description="For the file captioner."
    )
    model: str | None = None
    prompt: str = "simple"
    batch_size: int | None = Field(None, ge=1)
    shard_size: int = Field(256, ge=1)
    limit: int | None = Field(None, ge=0, description="Only the first N (per GPU when gpus > 1).")
    prior_set_name: str | None = None
    task_runner: Literal["threads", "dask"] = Field(
        "threads", description="dask: shards run in parallel on a Dask cluster."
    )
    dask_workers: int = Field(2, ge=1, description="Worker processes of the local Dask cluster.")
    dask_address: str | None = Field(
        None, description="An existing Dask scheduler (tcp://host:port) instead of a local one."
    )
    gpus: int = Field(
        0, ge=0, description="More than 1: one captioning process per engine, each on its share."
    )
    devices: str | None = Field(
        None, description="GPU ids to use, e.g. 3,5,7 (default: CUDA_VISIBLE_DEVICES, else 0..)."
    )
    tensor_parallel_size: int = Field(
        1, ge=1, description="GPUs per vLLM engine (tensor parallel); engines = gpus / this."
    )
    compact: bool = Field(
        True, description="Compact the prior set when done, so its statistics read fast."
    )
    retry_failed: bool = Field(False, description="Also redo the images that failed before.")

    @model_validator(mode="after")
    def _one_source(self) -> ExtractPriorsParameters:
        chosen = [self.images, self.manifest, self.dataset]
        if sum(value is not None for value in chosen) != 1:
            raise ValueError("give exactly one of images, manifest, dataset")
        return self

    @model_validator(mode="after")
    def _runnable_scale_out(self) -> ExtractPriorsParameters:
        check_scale_out(self)
        return self


def check_scale_out(params: ExtractPriorsParameters) -> None:
    """Refuse, in one line each, scale-out settings that cannot work, before anything runs."""
    tensor_parallel = params.tensor_parallel_size
    if tensor_parallel > 1 and params.captioner != "vllm":
        raise ValueError("tensor_parallel_size > 1 needs captioner=vllm")
    if tensor_parallel > 1 and params.gpus % tensor_parallel:
        raise ValueError(
            f"gpus={params.gpus} do not split into engines of tensor_parallel_size="
            f"{tensor_parallel}"
        )
    if params.devices is not None and params.gpus > 1:
        visible_devices(params.devices, params.gpus)
    if params.dask_address is not None and params.task_runner != "dask":
        raise ValueError("dask_address needs task_runner=dask")
    local_cluster = params.task_runner == "dask" and params.dask_address is None
    if local_cluster and params.captioner == "vllm" and params.dask_workers > 1:
        raise ValueError(
            "the workers of a local Dask cluster would share one GPU: with captioner=vllm use "
            "gpus=N, or dask_address of a cluster with one worker per GPU"
        )


class SourceChangedError(RuntimeError):
    """The source lists other images than when the run was planned: shard indices are void."""


class ExtractionPlan(BaseModel):
    """What the shard tasks need to find their images themselves: the listing of the source
    (named by the run's parameters) is cut into shards of `shard_size`, and `shards` are the
    indices of those that still hold pending images; `listing_digest` notices a changed source.
    """

    listing_digest: str
    shard_count: int = Field(ge=0)
    shards: list[int]


@dataclass(frozen=True)
class SourceListing:
    """A source's images in order (the flow's `limit` applied), cut into shards."""

    shards: tuple[Shard, ...]
    digest: str

    @property
    def items(self) -> list[ImageItem]:
        return [item for shard in self.shards for item in shard.items]


def list_source(params: ExtractPriorsParameters) -> SourceListing:
    """The source's images in order (the run's `limit` applied), cut into shards, with a digest
    of the listing."""
    items = select_items(_source(params).items(), (0, 1), params.limit)
    digest = hashlib.sha256()
    for item in items:
        digest.update(f"{item.dataset}/{item.split}/{item.image_id}\n".encode())
    shards = tuple(make_shards(items, params.shard_size))
    return SourceListing(shards, digest.hexdigest()[:16])


def plan_extraction(listing: SourceListing, pending: list[ImageItem]) -> ExtractionPlan:
    """The shards of `listing` that hold at least one `pending` image."""
    pending_keys = {(item.dataset, item.split, item.image_id) for item in pending}
    todo = [
        index
        for index, shard in enumerate(listing.shards)
        if any((item.dataset, item.split, item.image_id) in pending_keys for item in shard.items)
    ]
    return ExtractionPlan(
        listing_digest=listing.digest, shard_count=len(listing.shards), shards=todo
    )


def planned_shard(params_json: str, plan: ExtractionPlan, index: int) -> Shard:
    """Shard `index` of the plan, looked up in this process's listing of the source."""
    return _planned_listing(params_json, plan.listing_digest, plan.shard_count).shards[index]


@lru_cache(maxsize=1)
def _planned_listing(params_json: str, digest: str, shard_count: int) -> SourceListing:
    """The listing a plan was made from, listed once per process (each Dask worker lists the
    source once per run, not once per shard)."""
    listing = list_source(ExtractPriorsParameters.model_validate_json(params_json))
    if listing.digest != digest or len(listing.shards) != shard_count:
        raise SourceChangedError(
            "the source lists other images than when this run was planned; start a new run"
        )
    return listing


@dataclass
class ShardSource:
    """The images of one shard, as an image source for `run_extraction`."""

    shard_items: list[ImageItem]
    label: str

    def items(self) -> list[ImageItem]:
        return self.shard_items

    def describe(self) -> str:
        return self.label


def _source(params: ExtractPriorsParameters):
    return build_source(
        params.images, params.manifest, params.dataset, params.data_root, params.dataset_name
    )


def _captioner_options(params: ExtractPriorsParameters) -> CaptionerOptions:
    return CaptionerOptions(
        model=params.model, prompt=resolve_prompt(params.prompt), captions=params.captions
    )


class CaptionerCache:
    """The captioners this process built, one per (name, options): a Dask worker or the flow's
    thread keeps its engine (a vLLM engine, a LLaVA model) across shards instead of loading it
    per task, and two threads of one worker never load it twice."""

    def __init__(self) -> None:
        self._built: dict[str, Captioner] = {}
        self._lock = threading.Lock()

    def get(self, name: str, options: CaptionerOptions) -> Captioner:
        key = json.dumps([name, dataclasses.asdict(options)], default=str, sort_keys=True)
        with self._lock:
            if key not in self._built:
                self._built[key] = build_captioner(name, options)
            return self._built[key]

    def __len__(self) -> int:
        return len(self._built)

    def clear(self) -> None:
        with self._lock:
            self._built.clear()


WORKER_CAPTIONERS = CaptionerCache()
"""This process's captioners (module-level, so a Dask worker process keeps them across tasks)."""


def worker_captioner(params: ExtractPriorsParameters) -> Captioner:
    """The run's captioner from this process's cache. Tasks reach the cache through this
    function: Dask pickles a task's code by value, which would copy a global it names."""
    return WORKER_CAPTIONERS.get(params.captioner, _captioner_options(params))


@cache
def _parser() -> CaptionParser:
    return CaptionParser()


def _config(params: ExtractPriorsParameters) -> ExtractionConfig:
    return ExtractionConfig(
        batch_size=params.batch_size or default_batch_size(params.captioner, params.shard_size),
        shard_size=params.shard_size,
        prior_set_name=params.prior_set_name,
        show_progress=False,
        retry_failed=params.retry_failed,
    )


def _is_transient(task, task_run, state) -> bool:
    """Retry only what may pass on a second try; a bug or bad data fails at once."""
    try:
        state.result()
    except TRANSIENT_ERRORS:
        return True
    except Exception:
        return False
    return False


@task(retries=2, retry_delay_seconds=5, retry_condition_fn=_is_transient, cache_policy=NO_CACHE)
def extract_shard(params_json: str, plan: ExtractionPlan, index: int) -> ExtractionSummary:
    """Caption, parse and write shard `index` of the plan, whose images this task looks up
    itself; a re-run after a crash (or on another worker) redoes only what is missing."""
    params = ExtractPriorsParameters.model_validate_json(params_json)
    shard = planned_shard(params_json, plan, index)
    source = ShardSource(list(shard.items), f"shard {index} of {plan.shard_count}")
    return run_extraction(
        source, worker_captioner(params), _parser(), PriorStore(params.store), _config(params)
    )


def record_class_names(params: ExtractPriorsParameters, store: PriorStore) -> None:
    """Give the store a dataset's class names, so its coverage views can say which classes the
    LLM named; a dataset without a prepared `classes.txt` is left out."""
    classes_file = params.data_root / ROOT_CLASSES_FILE if params.data_root else None
    if params.dataset and classes_file and classes_file.exists():
        store.write_class_names(params.dataset, ClassNames.from_file(classes_file).synonyms)


@task(cache_policy=NO_CACHE)
def compact_prior_set(store: PriorStore, prior_set_id: str) -> None:
    """Merge the prior set's shard files and count its relation triples once (the rollup the
    relation statistics read), after every shard and partition is written."""
    report = store.compact(prior_set_id)
    get_run_logger().info("compacted %d files into %d", report.files_before, report.files_after)


def prior_charts_markdown(store: PriorStore, prior_set_id: str) -> str:
    """PNG charts of the prior set's statistics as a Markdown page, the charts saved under
    `STORE/plots/<prior set>/` for a local store (an object store's are only in the page)."""
    with store.connect() as connection:
        tables = statistics(connection, StatisticsFilter(prior_set_id=prior_set_id))
    if store.location.local is not None:
        charts = plot_statistics(tables, store.location.local / "plots" / prior_set_id)
        return pictures_markdown("Prior charts", charts)
    with tempfile.TemporaryDirectory(prefix="prior-charts-") as folder:
        return pictures_markdown("Prior charts", plot_statistics(tables, Path(folder)))


def _summary_table(summaries: list[ExtractionSummary], already: int, store: PriorStore, set_id):
    where = StatisticsFilter(prior_set_id=set_id, top=10)
    with store.connect() as connection:
        top = statistic(connection, "top_objects", where).to_pylist()
    return [
        {"metric": "images done", "value": sum(s.captioned for s in summaries)},
        {"metric": "already there", "value": already},
        {"metric": "failed", "value": sum(s.failed for s in summaries)},
        {"metric": "top objects", "value": ", ".join(row["name"] for row in top)},
    ]


def summary_from_store(
    store: PriorStore, prior_set_id: str, total: int, pending: list[ImageItem]
) -> ExtractionSummary:
    """What child processes did, read back from the store: of the `pending` images, how many
    now have priors and how many failed."""
    ids = [item.image_id for item in pending]
    with store.connect() as connection:
        [(failed,)] = connection.sql(
            "SELECT count(DISTINCT image_id) FROM failures "
            "WHERE prior_set_id = $id AND list_contains($ids, image_id)",
            params={"id": prior_set_id, "ids": ids},
        ).fetchall()
    done = len(store.done_image_ids(prior_set_id) & set(ids))
    return ExtractionSummary(
        prior_set_id, total, already_done=total - len(ids), captioned=done - failed, failed=failed
    )


def shard_runner(params: ExtractPriorsParameters):
    """Threads run shards one at a time in this process; Dask runs them in parallel on a local
    cluster or on the existing one at `dask_address`, each worker process loading its captioner
    and parser once (the `distributed` extra)."""
    if params.task_runner == "threads":
        return ThreadPoolTaskRunner(max_workers=1)
    from prefect_dask import DaskTaskRunner

    if params.dask_address is not None:
        return DaskTaskRunner(address=params.dask_address)
    workers = {"n_workers": params.dask_workers, "threads_per_worker": 1}
    return DaskTaskRunner(cluster_kwargs=workers)


@flow(name="extract-shards")
def extract_shards(
    params_json: str, plan: ExtractionPlan, progress_id: UUID
) -> list[ExtractionSummary]:
    """One task per planned shard on this flow's task runner; progress is updated as shards
    finish. Only the plan travels: each task finds its shard's images itself."""
    futures = [extract_shard.submit(params_json, plan, index) for index in plan.shards]
    summaries = []
    for done, future in enumerate(futures, start=1):
        summaries.append(future.result())
        update_progress_artifact(progress_id, 100.0 * done / len(futures))
    return summaries


def partition_command(params: ExtractPriorsParameters, index: int, count: int) -> list[str]:
    """`llmformer priors extract` for partition `index` of `count` (one per engine)."""
    command = [
        *cli_command(0),
        "priors",
        "extract",
        "--no-progress",
        "--store",
        str(params.store),
        "--captioner",
        params.captioner,
        "--prompt",
        params.prompt,
        "--shard-size",
        str(params.shard_size),
        "--partition",
        f"{index}/{count}",
    ]
    options = {
        "--images": params.images,
        "--manifest": params.manifest,
        "--dataset": params.dataset,
        "--data-root": params.data_root,
        "--dataset-name": params.dataset_name,
        "--captions": params.captions,
        "--model": params.model,
        "--batch-size": params.batch_size,
        "--limit": params.limit,
        "--name": params.prior_set_name,
    }
    if params.tensor_parallel_size > 1:
        options["--tensor-parallel-size"] = params.tensor_parallel_size
    for option, value in options.items():
        if value is not None:
            command += [option, str(value)]
    return [*command, "--retry-failed"] if params.retry_failed else command


def engine_children(params: ExtractPriorsParameters) -> list[Child]:
    """One child per engine: a tensor-parallel group of the GPUs given (or visible), each with
    its partition of the images."""
    devices = visible_devices(params.devices, params.gpus)
    groups = engine_groups(devices, params.tensor_parallel_size)
    return [
        Child(
            f"partition {index}/{len(groups)} on GPU {','.join(group)}",
            partition_command(params, index, len(groups)),
            group,
        )
        for index, group in enumerate(groups)
    ]


@task(cache_policy=NO_CACHE)
def extract_on_gpus(params: ExtractPriorsParameters) -> None:
    """One child process per engine, all at once, their output streamed into this run's log;
    the first to fail stops the others and fails the task with one line naming it."""
    run_children(engine_children(params), get_run_logger().info)


@flow(name="extract-priors", log_prints=True)
@flat_parameters(ExtractPriorsParameters)
def extract_priors(params: ExtractPriorsParameters) -> str:
    """Extract LLM priors for a source into the store; returns the prior set id."""
    logger = get_run_logger()
    params_json = params.model_dump_json()
    children = engine_children(params) if params.gpus > 1 else []  # bad GPU lists fail here
    store = PriorStore(params.store)
    listing = list_source(params)
    items = listing.items
    identity = captioner_identity(params.captioner, _captioner_options(params))
    prior_set_id = store.register_prior_set(prior_set_spec(identity, params.prior_set_name))
    record_class_names(params, store)
    pending = pending_items(store, prior_set_id, items, params.retry_failed)
    plan = plan_extraction(listing, pending)
    share = f"{len(children)} engines" if children else f"{len(plan.shards)} shards"
    logger.info(
        "prior set %s: %d images, %d to do on %s", prior_set_id, len(items), len(pending), share
    )
    if children:
        extract_on_gpus(params)
        summary = summary_from_store(store, prior_set_id, len(items), pending)
        return _finish(params, store, prior_set_id, [summary], summary.already_done)
    progress = create_progress_artifact(0.0, key="extract-priors-progress")
    run_shards = extract_shards.with_options(task_runner=shard_runner(params))
    summaries = run_shards(params_json, plan, progress) if plan.shards else []
    if not plan.shards:
        update_progress_artifact(progress, 100.0)
    return _finish(params, store, prior_set_id, summaries, len(items) - len(pending))


def _finish(params, store: PriorStore, prior_set_id: str, summaries, already: int) -> str:
    """Compaction, then the summary table and prior charts as artifacts; returns the prior set
    id."""
    if params.compact:
        compact_prior_set(store, prior_set_id)
    table = _summary_table(summaries, already, store, prior_set_id)
    create_table_artifact(table, key="extract-priors-summary", description=prior_set_id)
    create_markdown_artifact(
        prior_charts_markdown(store, prior_set_id),
        key="extract-priors-plots",
        description=prior_set_id,
    )
    return prior_set_id
