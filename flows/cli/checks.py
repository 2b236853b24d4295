"""Checks shared by the commands, run before any model loads: each mistake is one line on stderr
naming the option and what to do, and exit code 2."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import NoReturn

import typer

USAGE_EXIT_CODE = 2
INTERRUPTED_EXIT_CODE = 130
"""A command stopped by Ctrl-C or SIGTERM exits as a shell reports SIGINT: 128 + 2."""


def fail(message: str) -> NoReturn:
    """Print `error: message` on stderr and exit 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(USAGE_EXIT_CODE)


def require_at_least(option: str, value: int, smallest: int) -> None:
    """An integer option below its smallest sensible value, named by its own flag."""
    if value < smallest:
        fail(f"{option} must be at least {smallest}, got {value}")


def require_device(option: str, device: str) -> None:
    """A torch device this machine has: cuda only where this torch build sees a GPU."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        fail(f"{option} {device!r} is not a device; use cpu or cuda[:N]")
    if parsed.type != "cuda":
        return
    if torch.version.cuda is None:
        fail(f"{option} {device}: this torch {torch.__version__} is a CPU build; use {option} cpu")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0 or (parsed.index or 0) >= count:
        fail(f"{option} {device}: this machine has {count} usable CUDA GPUs; use {option} cpu")


def require_output_folder(option: str, folder: Path) -> None:
    """A folder that is, or can be created as, a writable folder (not a file)."""
    if folder.exists() and not folder.is_dir():
        fail(f"{option} {folder} is a file; give a folder")
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        fail(f"{option} {folder}: {existing} is a file, so the folder cannot be created")
    if not os.access(existing, os.W_OK | os.X_OK):
        fail(f"{option} {folder}: {existing} is not writable")


def require_no_clobbered_inputs(outputs: Iterable[Path], inputs: Iterable[Path]) -> None:
    """Refuse to write over an input file (as pip and git refuse to clobber what they read)."""
    read = {path.resolve() for path in inputs if path.exists()}
    for output in outputs:
        if output.resolve() in read:
            fail(f"{output} is one of the inputs and would be overwritten; choose another --out")
