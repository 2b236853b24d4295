"""`python -m flows.serve` and its supervisor: SIGTERM or SIGINT ends the served runner and its
whole process group within a bound, whatever the runner is waiting on."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from flows.serve import SHUTDOWN_GRACE_S
from flows.server import start_server, stop_server

STUBBORN_CHILD = textwrap.dedent(
    """
    import os, signal, time
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    print(os.getpid(), flush=True)
    time.sleep(600)
    """
)


def supervise(child_code: str, grace_s: float) -> subprocess.Popen:
    """A supervisor process (as flows.serve runs) over a child running `child_code`."""
    code = (
        "import sys; from flows.children import run_supervised; "
        f"sys.exit(run_supervised([sys.executable, '-c', {child_code!r}], {grace_s}))"
    )
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_child_that_ignores_the_signal_is_killed_after_the_grace(stop) -> None:
    supervisor = supervise(STUBBORN_CHILD, grace_s=1.0)
    child_pid = int(supervisor.stdout.readline())
    started = time.monotonic()
    supervisor.send_signal(stop)
    assert supervisor.wait(timeout=10) == 128 + stop
    assert 1.0 <= time.monotonic() - started < 4
    assert not is_running(child_pid)


def test_a_child_that_stops_on_the_signal_ends_at_once() -> None:
    obedient = "import os, time; print(os.getpid(), flush=True); time.sleep(600)"
    supervisor = supervise(obedient, grace_s=30.0)
    child_pid = int(supervisor.stdout.readline())
    started = time.monotonic()
    supervisor.terminate()
    assert supervisor.wait(timeout=10) == 128 + signal.SIGTERM
    assert time.monotonic() - started < 2
    assert not is_running(child_pid)


def test_a_child_that_ends_by_itself_gives_its_status() -> None:
    supervisor = supervise("import sys; print(0, flush=True); sys.exit(3)", grace_s=5.0)
    assert supervisor.wait(timeout=30) == 3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_text(log: Path, text: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        assert process.poll() is None, log.read_text(errors="replace")
        assert time.monotonic() < deadline, log.read_text(errors="replace")
        time.sleep(1)


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_serve_exits_within_10_s_after_its_server_went_away(tmp_path: Path, stop) -> None:
    status = start_server(tmp_path, port=free_port(), timeout=240.0, notify=lambda _: None)
    environment = {**os.environ, "PREFECT_API_URL": status.record.api_url}
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        serve = subprocess.Popen(
            [sys.executable, "-m", "flows.serve"],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_text(log, "polling for scheduled runs", serve, timeout=240.0)
    finally:
        stop_server(tmp_path)
    time.sleep(20)  # the runner now retries a server that is gone (it took 20 s to stop then)
    started = time.monotonic()
    serve.send_signal(stop)
    try:
        serve.wait(timeout=10)
    finally:
        serve.kill()
    assert time.monotonic() - started < 10
    assert SHUTDOWN_GRACE_S < 10
