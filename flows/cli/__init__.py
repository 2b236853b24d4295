"""The `llmformer` command line: one Typer app whose groups and commands live in sibling modules.

Heavy libraries (torch, mmseg, spaCy, DuckDB) are imported inside commands so `--help` stays fast.
"""

from __future__ import annotations

import typer

from flows.cli import curves, data, demo, doctor, evaluate, priors, segment, server, train

app = typer.Typer(
    name="llmformer",
    help="Open-vocabulary segmentation guided by LLM priors (LLMFormer).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(priors.app, name="priors")
app.add_typer(data.app, name="data")
app.add_typer(server.app, name="server")
app.command("doctor")(doctor.doctor)
app.command("demo")(demo.demo)
app.command("train")(train.train)
app.command("eval")(evaluate.evaluate)
app.command("segment")(segment.segment)
app.command("curves")(curves.curves)


def main() -> None:
    """Console-script entry point."""
    app()
