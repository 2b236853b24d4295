"""`llmformer train CONFIG`: train a segmenter with MMEngine's Runner, optionally resuming.

Several processes, one per GPU (or CPU processes with gloo), with MMEngine's launchers:
`torchrun --nproc-per-node=8 -m flows.cli train CONFIG --launcher pytorch`, torchrun's rendezvous
options (`--nnodes`, `--node-rank`, `--rdzv-endpoint`) for several machines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

LauncherOption = Annotated[
    str | None,
    typer.Option(
        help="MMEngine launcher: pytorch (under torchrun) or slurm (under srun) for one "
        "process of several; default: the config's, else none"
    ),
]
"""`--launcher`, as `train` and `eval` take it."""


def train(
    config: Annotated[
        Path,
        typer.Argument(help="An MMSeg config, e.g. segmentation/configs/llmformer_tiny_demo.py"),
    ],
    work_dir: Annotated[
        Path | None, typer.Option(help="Checkpoints and logs (default work_dirs/<config name>)")
    ] = None,
    max_iters: Annotated[int | None, typer.Option(help="Override the number of iterations")] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue from the newest checkpoint in work-dir")
    ] = False,
    cfg_options: Annotated[
        list[str] | None, typer.Option(help="Config overrides KEY=VALUE (repeatable)")
    ] = None,
    launcher: LauncherOption = None,
    data_root: Annotated[
        Path | None,
        typer.Option(
            help="Folder of prepared datasets: each loader reads its dataset's folder in it "
            "(data_root/demo, ...), as `llmformer eval --data-root`; default: the config's paths"
        ),
    ] = None,
) -> None:
    """Train the segmenter a config describes; checkpoints land in the work dir."""
    from mmengine.dist import is_main_process

    from segmentation.training import ConfigError, TrainOptions, plan_stages, train_stages

    options = TrainOptions(
        config,
        work_dir,
        max_iters,
        resume,
        list(cfg_options or []),
        launcher=launcher,
        data_root=data_root,
    )
    try:
        stages = plan_stages(options)
    except (ConfigError, SyntaxError, KeyError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    try:
        runner = train_stages(stages)
    except (ConfigError, FileNotFoundError) as error:  # missing priors, data or checkpoint
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    cfg = stages[-1]
    if is_main_process():
        typer.echo(f"trained {runner.iter} iterations; checkpoints in {cfg.work_dir}")
