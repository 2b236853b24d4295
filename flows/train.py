"""Prefect flow `train-segmenter`: MMEngine training (then evaluation) in child processes.

Training runs in a subprocess so a crash or the GPU memory it holds stays contained; with more
than one GPU (or with torchrun's rendezvous options, as one node of several) it runs under
`torchrun` with MMEngine's pytorch launcher, and so does the evaluation. Its log streams into
the flow's log; the checkpoint path is the flow's result. The training curves, the evaluation
table and the priors report (per-class IoU where the LLM named the class vs not, prior recall,
the worst images) become artifacts, the charts as pictures in them.
"""

from __future__ import annotations

import csv
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE as NO_CACHE
from pydantic import BaseModel, DirectoryPath, Field

from flows.artifacts import data_uri, pictures_markdown
from flows.children import cli_command, runs_under_torchrun, stream
from flows.parameters import flat_parameters

EVAL_FOLDER = "eval"
"""Where under the work dir a run's evaluation tables go."""


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
    data_root: DirectoryPath | None = Field(
        None,
        description="Folder of prepared datasets (demo/, coco_stuff_171/, ...) that training "
        "and evaluation read (default: the config's paths, data/datasets for evaluation); a run "
        "naming a folder that does not exist is refused.",
    )
    cfg_options: list[str] = Field(default_factory=list, description="KEY=VALUE overrides.")
    gpus: int = Field(0, ge=0, description="More than 1 runs torchrun with one process per GPU.")
    torchrun_options: list[str] = Field(
        default_factory=list,
        description="torchrun's rendezvous options for one node of several, e.g. "
        '["--nnodes=2", "--node-rank=0", "--rdzv-backend=c10d", "--rdzv-endpoint=HOST:29400"].',
    )

    @property
    def launcher_options(self) -> list[str]:
        """`--launcher pytorch` where the CLI runs under torchrun."""
        distributed = runs_under_torchrun(self.gpus, self.torchrun_options)
        return ["--launcher", "pytorch"] if distributed else []

    @property
    def data_root_options(self) -> list[str]:
        return [] if self.data_root is None else ["--data-root", str(self.data_root)]


def train_command(params: TrainSegmenterParameters, prior_set_id: str) -> list[str]:
    """The `llmformer train` command line for these parameters."""
    command = [
        *cli_command(params.gpus, params.torchrun_options),
        "train",
        str(params.config),
        *params.launcher_options,
        "--work-dir",
        str(params.work_dir),
        *params.data_root_options,
        "--cfg-options",
        f"prior_store_root={params.prior_store}",
        "--cfg-options",
        f"prior_set_id={prior_set_id}",
    ]
    for option in params.cfg_options:
        command += ["--cfg-options", option]
    if params.max_iters:
        command += ["--max-iters", str(params.max_iters)]
    if params.resume:
        command.append("--resume")
    return command


def newest_prior_set(store: Path) -> str:
    """The id of the most recently registered prior set in `store`."""
    from storage import PriorStore

    registered = PriorStore(store).prior_set_ids()
    if not registered:
        raise ValueError(f"{store} holds no prior set: run extract-priors first")
    return registered[-1]


@task(cache_policy=NO_CACHE)
def train(params: TrainSegmenterParameters, prior_set_id: str) -> Path:
    """Train in a child process; returns the last checkpoint."""
    from segmentation.training import last_checkpoint

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
    stream(eval_command(params, prior_set_id, checkpoint), get_run_logger().info)
    with (params.work_dir / EVAL_FOLDER / "eval.csv").open() as handle:
        return list(csv.DictReader(handle))


def eval_command(
    params: TrainSegmenterParameters, prior_set_id: str, checkpoint: Path
) -> list[str]:
    """The `llmformer eval` command line for the checkpoint a run trained (with as many
    processes as the training); its tables go to WORK_DIR/eval."""
    command = [
        *cli_command(params.gpus, params.torchrun_options),
        "eval",
        str(params.config),
        str(checkpoint),
        *params.launcher_options,
        "--datasets",
        ",".join(params.datasets),
        "--work-dir",
        str(params.work_dir / EVAL_FOLDER),
        "--store",
        str(params.prior_store),
        *params.data_root_options,
        "--cfg-options",
        f"prior_store_root={params.prior_store}",
        "--cfg-options",
        f"prior_set_id={prior_set_id}",
    ]
    for option in params.cfg_options:
        command += ["--cfg-options", option]
    return command


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
