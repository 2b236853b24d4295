"""Prefect flow `train-segmenter`: MMEngine training (then evaluation) in child processes.

Training runs in a subprocess so a crash or the GPU memory it holds stays contained; with more
than one GPU it runs under `torchrun`. Its log streams into the flow's log; the checkpoint path
is the flow's result. The training curves, the evaluation table and the priors report (per-class
IoU where the LLM named the class vs not, prior recall, the worst images) become artifacts, the
charts as pictures in them.
"""

from __future__ import annotations

import csv
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE as NO_CACHE
from pydantic import BaseModel, Field

from flows.artifacts import data_uri, pictures_markdown
from flows.children import cli_command, stream
from flows.parameters import flat_parameters


class TrainSegmenterParameters(BaseModel):
    """Everything a `train-segmenter` run needs; validated by Prefect when a run is created."""

    config: Path = Path("segmentation/configs/llmformer_tiny_demo.py")
    prior_set_id: str | None = Field(None, description="Default: the store's newest prior set.")
    prior_store: Path = Path("data/store")
    work_dir: Path = Path("data/work_dirs/llmformer_tiny_demo")
    max_iters: int | None = Field(None, ge=1)
    resume: bool = False
    evaluate: bool = True
    datasets: list[str] = Field(default_factory=lambda: ["demo"])
    data_root: Path = Field(Path("data/datasets"), description="Prepared datasets, for eval.")
    cfg_options: list[str] = Field(default_factory=list, description="KEY=VALUE overrides.")
    gpus: int = Field(0, ge=0, description="More than 1 runs torchrun with one process per GPU.")


def train_command(params: TrainSegmenterParameters, prior_set_id: str) -> list[str]:
    """The `llmformer train` command line for these parameters."""
    command = [
        *cli_command(params.gpus),
        "train",
        str(params.config),
        "--work-dir",
        str(params.work_dir),
        "--cfg-options",
        f"prior_store_root={params.prior_store}",
        "--cfg-options",
        f"prior_set_id={prior_set_id}",
    ]
    for option in params.cfg_options:
        command += ["--cfg-options", option]
    if params.gpus > 1:
        command += ["--cfg-options", "launcher=pytorch"]
    if params.max_iters:
        command += ["--max-iters", str(params.max_iters)]
    if params.resume:
        command.append("--resume")
    return command


def newest_prior_set(store: Path) -> str:
    """The id of the most recently registered prior set in `store`."""
    from storage import PriorStore

    with PriorStore(store).connect() as connection:
        rows = connection.sql(
            "SELECT prior_set_id FROM prior_sets ORDER BY created_at DESC LIMIT 1"
        ).fetchall()
    if not rows:
        raise ValueError(f"{store} holds no prior set: run extract-priors first")
    return rows[0][0]


def last_checkpoint(work_dir: Path) -> Path:
    """The checkpoint MMEngine's CheckpointHook wrote last (it records it in `last_checkpoint`)."""
    marker = work_dir / "last_checkpoint"
    if not marker.exists():
        raise FileNotFoundError(f"{marker}: training wrote no checkpoint")
    return Path(marker.read_text().strip())


@task(cache_policy=NO_CACHE)
def train(params: TrainSegmenterParameters, prior_set_id: str) -> Path:
    """Train in a child process; returns the last checkpoint."""
    stream(train_command(params, prior_set_id), get_run_logger().info)
    return last_checkpoint(params.work_dir)


@task(cache_policy=NO_CACHE)
def plot_curves(work_dir: Path) -> Path:
    """Loss and mIoU over iterations as `curves.png` next to the checkpoints."""
    from segmentation.curves import plot_training_curves

    curves = plot_training_curves(work_dir)
    create_markdown_artifact(
        pictures_markdown("Training curves", [curves]),
        key="train-segmenter-curves",
        description=f"{work_dir}; TensorBoard: tensorboard --logdir {work_dir}",
    )
    return curves


@task(cache_policy=NO_CACHE)
def report_priors(store: Path, checkpoint: Path, out: Path) -> Path:
    """The priors report on the checkpoint's evaluation (`llmformer priors report`), written
    under `out` and shown as an artifact with its charts."""
    from storage import PriorStore
    from storage.evaluations import ReportFilter, report_tables
    from storage.report import write_report

    with PriorStore(store).connect() as connection:
        tables = report_tables(connection, ReportFilter(checkpoint=str(checkpoint)))
    page, report = write_report(tables, out)
    create_markdown_artifact(
        report.markdown(data_uri), key="train-segmenter-priors-report", description=str(page)
    )
    return page


@task(cache_policy=NO_CACHE)
def evaluate(params: TrainSegmenterParameters, prior_set_id: str, checkpoint: Path) -> list[dict]:
    """Evaluate the checkpoint on the chosen datasets in a child process; returns the table rows."""
    out = params.work_dir / "eval"
    command = [
        *cli_command(0),
        "eval",
        str(params.config),
        str(checkpoint),
        "--datasets",
        ",".join(params.datasets),
        "--work-dir",
        str(out),
        "--store",
        str(params.prior_store),
        "--data-root",
        str(params.data_root),
        "--cfg-options",
        f"prior_store_root={params.prior_store}",
        "--cfg-options",
        f"prior_set_id={prior_set_id}",
    ]
    for option in params.cfg_options:
        command += ["--cfg-options", option]
    stream(command, get_run_logger().info)
    with (out / "eval.csv").open() as handle:
        return list(csv.DictReader(handle))


@flow(name="train-segmenter", log_prints=True)
@flat_parameters(TrainSegmenterParameters)
def train_segmenter(params: TrainSegmenterParameters) -> str:
    """Train LLMFormer on a prior set, evaluate it, and return the checkpoint path."""
    prior_set_id = params.prior_set_id or newest_prior_set(params.prior_store)
    checkpoint = train(params, prior_set_id)
    plot_curves(params.work_dir)
    if params.evaluate:
        rows = evaluate(params, prior_set_id, checkpoint)
        create_table_artifact(rows, key="train-segmenter-eval", description=str(checkpoint))
        report_priors(params.prior_store, checkpoint, params.work_dir / "report")
    return str(checkpoint)
