"""`llmformer curves WORK_DIR`: training loss and validation mIoU over iterations as a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def curves(
    work_dir: Annotated[Path, typer.Argument(help="A training work dir (checkpoints and logs)")],
    out: Annotated[
        Path | None, typer.Option(help="Where to write the PNG (default WORK_DIR/curves.png)")
    ] = None,
) -> None:
    """Plot the train loss and validation mIoU MMEngine logged under a work dir."""
    from segmentation.curves import CurvesError, plot_training_curves

    try:
        written = plot_training_curves(work_dir, out)
    except CurvesError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"training curves: {written}")
