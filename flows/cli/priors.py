"""`llmformer priors ...`: extract, parse, query and inspect LLM priors in the store."""

from __future__ import annotations

import typer

from flows.cli import priors_extract, priors_parse, priors_report, priors_store

app = typer.Typer(
    help="Stage 1: extract priors from images, parse captions, query the prior store.",
    no_args_is_help=True,
)
app.command("extract")(priors_extract.extract)
app.command("query")(priors_store.query)
app.command("stats")(priors_store.stats)
app.command("plot")(priors_store.plot)
app.command("compact")(priors_store.compact)
app.command("sets")(priors_store.sets)
app.command("upgrade")(priors_store.upgrade)
app.command("repair")(priors_store.repair)
app.command("report")(priors_report.report)
app.command("parse")(priors_parse.parse)
app.command("score")(priors_parse.score)
