"""`llmformer priors ...`: extract, parse, query and inspect LLM priors in the store."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Stage 1: extract priors from images, parse captions, query the prior store.",
    no_args_is_help=True,
)
