"""Data-parallel extraction over several GPUs: one child process per engine, an engine being a
tensor-parallel group of GPUs that the child alone sees through `CUDA_VISIBLE_DEVICES`.

The GPUs are those the scheduler gave this process (`CUDA_VISIBLE_DEVICES`) unless a list is
named. Every child's output is forwarded line by line as it is written, from all children at
once; the first child to fail stops the others (terminate, then kill after a grace) and the run
ends with one line naming it.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import IO

CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"
STOP_GRACE_S = 10.0
"""Seconds a stopped child may take to exit on SIGTERM before it is killed."""
_POLL_S = 0.2


class DeviceListError(ValueError):
    """GPUs that are not there or do not split into engines."""


class FanOutError(RuntimeError):
    """A child that failed (the others were stopped)."""


@dataclass(frozen=True)
class Child:
    """One engine's process: its name in the log, its command and the GPUs it sees."""

    name: str
    command: list[str]
    devices: tuple[str, ...]


def visible_devices(devices: str | None, count: int) -> list[str]:
    """The first `count` GPUs of `devices` (comma-separated ids), else of the scheduler's
    `CUDA_VISIBLE_DEVICES`, else 0..count-1 when neither says."""
    listed = devices if devices is not None else os.environ.get(CUDA_VISIBLE_DEVICES)
    if listed is None:
        return [str(index) for index in range(count)]
    chosen = [device.strip() for device in listed.split(",") if device.strip()]
    if len(chosen) < count:
        origin = "devices" if devices is not None else CUDA_VISIBLE_DEVICES
        raise DeviceListError(
            f"{count} GPUs asked for, but {origin}={listed!r} lists {len(chosen)}"
        )
    return chosen[:count]


def engine_groups(devices: Sequence[str], tensor_parallel_size: int) -> list[tuple[str, ...]]:
    """Consecutive groups of `tensor_parallel_size` GPUs, one engine each (data parallel over
    the groups, tensor parallel inside one)."""
    if tensor_parallel_size < 1 or len(devices) % tensor_parallel_size:
        raise DeviceListError(
            f"{len(devices)} GPUs do not split into engines of tensor_parallel_size="
            f"{tensor_parallel_size}"
        )
    size = tensor_parallel_size
    return [tuple(devices[start : start + size]) for start in range(0, len(devices), size)]


def run_children(
    children: Sequence[Child], log: Callable[[str], object], grace_s: float = STOP_GRACE_S
) -> None:
    """Run every child at once, forwarding each output line as `[name] line` when it is written;
    return once all exited 0. When one fails, stop the others and raise `FanOutError`."""
    output = _Output(log)
    running: dict[str, subprocess.Popen] = {}
    failure = None
    try:
        for child in children:
            running[child.name] = _start(child)
            output.follow(child.name, running[child.name].stdout)
        failure = _wait_for_first_failure(running, output)
    finally:
        stopped = _stop(running.values(), grace_s)
        output.drain(deadline=time.monotonic() + grace_s)
    if failure is not None:
        name, status = failure
        raise FanOutError(f"{name} {_exit_text(status)}; stopped the other {stopped}")


class _Output:
    """The children's output lines, queued by one reader thread per child (so no child blocks
    on a full pipe) and forwarded to `log` by the thread that waits on the children."""

    def __init__(self, log: Callable[[str], object]) -> None:
        self.log = log
        self.lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
        self.open_streams = 0

    def follow(self, name: str, stream: IO[str]) -> None:
        self.open_streams += 1
        threading.Thread(target=self._read, args=(name, stream), daemon=True).start()

    def _read(self, name: str, stream: IO[str]) -> None:
        with stream:
            for line in stream:
                self.lines.put((name, line.rstrip("\n")))
        self.lines.put((name, None))

    def forward(self) -> None:
        """Forward one line, waiting for it at most a poll interval."""
        with contextlib.suppress(queue.Empty):
            name, line = self.lines.get(timeout=_POLL_S)
            if line is None:
                self.open_streams -= 1
            else:
                self.log(f"[{name}] {line}")

    def drain(self, deadline: float) -> None:
        """Forward what is left (a failed child's traceback) until every stream is closed or
        the deadline passes."""
        while self.open_streams > 0 and time.monotonic() < deadline:
            self.forward()


def _start(child: Child) -> subprocess.Popen:
    """Start `child` in its own session (so the workers it starts stop with it), unbuffered."""
    env = {**os.environ, CUDA_VISIBLE_DEVICES: ",".join(child.devices), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        child.command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        bufsize=1,
        env=env,
        start_new_session=True,
    )


def _wait_for_first_failure(
    running: dict[str, subprocess.Popen], output: _Output
) -> tuple[str, int] | None:
    """Forward output until every child exited 0 (None) or one exited non-zero ((name,
    status)); what is still queued then is forwarded by `_Output.drain`."""
    while True:
        output.forward()
        statuses = {name: process.poll() for name, process in running.items()}
        failed = [(name, status) for name, status in statuses.items() if status not in (None, 0)]
        if failed:
            return failed[0]
        if all(status == 0 for status in statuses.values()):
            return None


def _stop(processes: Iterable[subprocess.Popen], grace_s: float) -> int:
    """SIGTERM to every child still running (its whole process group), SIGKILL to those still
    there after `grace_s`; every wait is bounded. Returns how many were running."""
    alive = [process for process in processes if process.poll() is None]
    for process in alive:
        _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for process in alive:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
    for process in alive:
        if process.poll() is None:
            _signal_group(process, signal.SIGKILL)
            process.wait(timeout=grace_s)
    return len(alive)


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def _exit_text(status: int) -> str:
    if status < 0:
        return f"was killed by {signal.Signals(-status).name}"
    return f"exited with {status}"
