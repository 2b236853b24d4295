"""`llmformer server start|stop|status`: a local Prefect server whose home and database live under
the data dir, so deployments and runs survive between sessions and need no setup.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.checks import INTERRUPTED_EXIT_CODE

app = typer.Typer(
    help="A local Prefect server (SQLite under DATA_DIR/prefect) for the flows and deployments.",
    no_args_is_help=True,
)

DataDir = Annotated[
    Path, typer.Option("--data-dir", help="Data dir; the server lives in DATA_DIR/prefect.")
]
Port = Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to serve the API on.")]
Timeout = Annotated[
    float, typer.Option("--timeout", min=1.0, help="Seconds to wait for /api/health.")
]


def _say(message: str) -> None:
    typer.echo(message, err=True)


@app.command()
def start(data_dir: DataDir = Path("data"), port: Port = 4200, timeout: Timeout = 120.0) -> None:
    """Start the server in the background, wait until healthy, print the PREFECT_API_URL export.

    Only the export line goes to stdout, so `eval "$(llmformer server start)"` sets it.
    """
    from flows.children import stop_signals_interrupt
    from flows.server import ServerError, start_server

    try:
        with stop_signals_interrupt():
            status = start_server(data_dir, port, timeout=timeout, notify=_say)
    except ServerError as error:
        _say(f"error: {error}")
        raise typer.Exit(2) from error
    except KeyboardInterrupt:
        _say("interrupted: the server being started was stopped")
        raise typer.Exit(INTERRUPTED_EXIT_CODE) from None
    typer.echo(f"export PREFECT_API_URL={status.record.api_url}")


@app.command()
def stop(data_dir: DataDir = Path("data")) -> None:
    """Stop the server of this data dir (its whole process group) and remove its pid file."""
    from flows.server import ServerState, stop_server

    previous = stop_server(data_dir)
    if previous.state is ServerState.STOPPED:
        typer.echo(f"no Prefect server is running under {previous.paths.home}")
    elif previous.state is ServerState.STALE:
        typer.echo(f"removed a stale pid file ({previous.describe().removeprefix('stale: ')})")
    else:
        typer.echo(f"stopped the Prefect server (pid {previous.record.pid})")


@app.command()
def status(data_dir: DataDir = Path("data")) -> None:
    """Say whether the server is running; exit 0 when it answers its health check, else 1."""
    from flows.server import ServerState, server_status

    current = server_status(data_dir)
    typer.echo(current.describe())
    if current.state is not ServerState.RUNNING:
        raise typer.Exit(1)
