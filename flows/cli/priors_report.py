"""`llmformer priors report`: a checkpoint's per-image results joined with the priors behind them,
as a Markdown page with PNG charts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.checks import fail, require_output_folder
from flows.cli.priors_store import StoreOption, open_store


def report(
    store: StoreOption,
    out: Annotated[Path, typer.Option("--out", help="Folder for report.md and its charts.")],
    checkpoint: Annotated[
        str | None,
        typer.Option(
            help="A checkpoint path or run name as `llmformer eval` stored it "
            "(default: the newest evaluation)."
        ),
    ] = None,
    dataset: Annotated[
        str | None, typer.Option(help="Only this benchmark (a150) or store dataset (ade20k_150).")
    ] = None,
    worst: Annotated[int, typer.Option(min=1, help="Worst images to show.")] = 20,
) -> None:
    """IoU per class where the LLM named the class vs not, prior recall and precision, the worst
    images with their captions, and every evaluation in the store side by side."""
    from storage.evaluations import NoEvaluationError, ReportFilter, report_tables
    from storage.report import write_report

    require_output_folder("--out", out)
    where = ReportFilter(checkpoint=checkpoint, dataset=dataset, worst=worst)
    with open_store(store).connect() as connection:
        try:
            tables = report_tables(connection, where)
        except NoEvaluationError as error:
            fail(str(error))
    page, result = write_report(tables, out)
    typer.echo(str(page))
    for chart in result.charts.values():
        typer.echo(str(chart))
