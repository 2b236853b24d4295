"""Child processes the flows start: the `llmformer` CLI (under torchrun for several GPUs), with
their output forwarded line by line to a log; and a supervisor that ends a long-running child
within a bound when asked to stop."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_POLL_S = 0.1


class ChildProcessError(RuntimeError):
    """A training or evaluation subprocess exited with a non-zero status."""


def runs_under_torchrun(gpus: int, torchrun_options: Sequence[str] = ()) -> bool:
    """Whether `cli_command` starts the CLI under torchrun (and it needs `--launcher pytorch`)."""
    return gpus > 1 or bool(torchrun_options)


def cli_command(gpus: int, torchrun_options: Sequence[str] = ()) -> list[str]:
    """How to start the `llmformer` CLI in a child: python for one process, else torchrun with
    one process per GPU, on this machine alone (`--standalone`: torchrun picks a free port) or,
    given rendezvous options (`--nnodes`, `--node-rank`, `--rdzv-endpoint`, ...), as one node."""
    if not runs_under_torchrun(gpus, torchrun_options):
        return [sys.executable, "-m", "flows.cli"]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        *(torchrun_options or ["--standalone"]),
        f"--nproc-per-node={max(gpus, 1)}",
        "-m",
        "flows.cli",
    ]


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


def run_supervised(command: list[str], grace_s: float) -> int:
    """Run `command` in its own process group until it exits and return its exit status.

    SIGTERM or SIGINT is passed on to the whole group; whatever the child is waiting on (a
    server that went away, retries), the group gets SIGKILL once it outlives `grace_s` seconds
    after the first one, and the status is then 128 + that signal, as a shell reports it.
    """
    child = subprocess.Popen(command, start_new_session=True)
    received: list[int] = []

    def forward(signum: int, frame: object) -> None:
        received.append(signum)
        _signal_group(child.pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in STOP_SIGNALS}
    try:
        stop_deadline = None
        while child.poll() is None:
            if received and stop_deadline is None:
                stop_deadline = time.monotonic() + grace_s
            if stop_deadline is not None and time.monotonic() > stop_deadline:
                _signal_group(child.pid, signal.SIGKILL)
                child.wait()
                break
            time.sleep(_POLL_S)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not received:
        return child.returncode
    _signal_group(child.pid, signal.SIGKILL)  # flow runs the child left behind
    return child.returncode if child.returncode > 0 else 128 + received[0]


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """Inside the block SIGTERM, like SIGINT, raises KeyboardInterrupt in the main thread, so the
    `finally` clauses that stop what a command started (a server, a served runner) still run."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
