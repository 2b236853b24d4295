"""`llmformer data ...`: prepare the open-vocabulary benchmarks and the synthetic demo set."""

from __future__ import annotations

import typer

from flows.cli import datasets

app = typer.Typer(
    help="Prepare datasets: the OV benchmarks from official archives, the demo set from code.",
    no_args_is_help=True,
)
app.command("prepare")(datasets.prepare)
app.command("demo")(datasets.demo)
