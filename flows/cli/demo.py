"""`llmformer demo`: the whole pipeline on the synthetic demo set (what `make demo` runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.checks import INTERRUPTED_EXIT_CODE


def demo(
    data_dir: Annotated[Path, typer.Option(help="Everything the demo writes goes here.")] = Path(
        "data"
    ),
    max_iters: Annotated[
        int | None, typer.Option(help="Training iterations (default: the tiny config's).")
    ] = None,
) -> None:
    """Generate the demo set, serve both deployments on a local Prefect server, run them, report."""
    from flows.children import stop_signals_interrupt
    from flows.demo import DemoError, run_demo
    from flows.server import ServerError

    try:
        with stop_signals_interrupt():
            run_demo(data_dir, max_iters)
    except (DemoError, ServerError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    except KeyboardInterrupt:
        typer.echo("interrupted: the demo's server and runner were stopped", err=True)
        raise typer.Exit(INTERRUPTED_EXIT_CODE) from None
