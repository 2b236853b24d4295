"""Child processes the flows start: the `llmformer` CLI (under torchrun for several GPUs), with
their output forwarded line by line to a log."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable


class ChildProcessError(RuntimeError):
    """A training or evaluation subprocess exited with a non-zero status."""


def cli_command(gpus: int) -> list[str]:
    """How to start the `llmformer` CLI in a child: torchrun with one process per GPU, or python."""
    if gpus > 1:
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            f"--nproc_per_node={gpus}",
            "-m",
            "flows.cli",
        ]
    return [sys.executable, "-m", "flows.cli"]


def stream(command: list[str], log: Callable[[str], object]) -> None:
    """Run `command`, forwarding each output line to `log`; raise when it fails."""
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as child:
        assert child.stdout is not None
        for line in child.stdout:
            log(line.rstrip())
    if child.returncode != 0:
        raise ChildProcessError(f"{' '.join(command[:4])} ... exited with {child.returncode}")
