"""`llmformer server`: a real Prefect server started, checked and stopped under a tmp data dir,
plus the one-line messages for a taken port, a stale pid file and a server that dies at start.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows import server as server_module
from flows.cli import app
from flows.server import ServerPaths, ServerState, server_status, stop_server

runner = CliRunner()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_pid_file(data_dir: Path, pid: int, port: int) -> Path:
    paths = ServerPaths.under(data_dir)
    paths.home.mkdir(parents=True, exist_ok=True)
    paths.pid_file.write_text(json.dumps({"pid": pid, "port": port}))
    return paths.pid_file


@pytest.fixture
def listening_port() -> Iterator[int]:
    """A port some other program holds open."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.fixture
def finished_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def invoke(*arguments: str):
    return runner.invoke(app, ["server", *arguments])


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_real_server_starts_healthy_reports_running_and_stops(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    try:
        started = invoke("start", "--data-dir", str(tmp_path), "--port", str(port))
        assert started.exit_code == 0, started.output
        assert started.stdout == f"export PREFECT_API_URL={url}\n"
        assert "started the Prefect server: running" in started.stderr

        with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
            assert response.read() == b"true"
        home = tmp_path / "prefect"
        assert (home / "prefect.db").stat().st_size > 0
        assert json.loads((home / "server.pid").read_text())["port"] == port

        status = invoke("status", "--data-dir", str(tmp_path))
        assert status.exit_code == 0
        assert status.stdout.startswith("running: pid ")
        assert url in status.stdout

        again = invoke("start", "--data-dir", str(tmp_path), "--port", str(port))
        assert again.exit_code == 0
        assert "already running" in again.stderr
        assert again.stdout == f"export PREFECT_API_URL={url}\n"
        pid = server_status(tmp_path).record.pid
    finally:
        stopped = invoke("stop", "--data-dir", str(tmp_path))

    assert stopped.exit_code == 0
    assert stopped.stdout == f"stopped the Prefect server (pid {pid})\n"
    assert not (tmp_path / "prefect" / "server.pid").exists()
    assert not server_module.port_is_open(port)
    after = invoke("status", "--data-dir", str(tmp_path))
    assert after.exit_code == 1
    assert after.stdout.startswith("stopped: no Prefect server is running under ")


def test_start_refuses_a_port_another_program_holds(tmp_path: Path, listening_port: int) -> None:
    result = invoke("start", "--data-dir", str(tmp_path), "--port", str(listening_port))
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: port {listening_port} is taken by another process; "
        "stop it or choose another with --port\n"
    )
    assert result.stdout == ""
    assert not ServerPaths.under(tmp_path).pid_file.exists()


def test_status_reports_a_stale_pid_file(tmp_path: Path, finished_pid: int) -> None:
    pid_file = write_pid_file(tmp_path, finished_pid, 4200)
    result = invoke("status", "--data-dir", str(tmp_path))
    assert result.exit_code == 1
    assert result.stdout == (
        f"stale: {pid_file.resolve()} names pid {finished_pid}, which is not a running server; "
        "`llmformer server stop` removes it\n"
    )


def test_stop_removes_a_stale_pid_file(tmp_path: Path, finished_pid: int) -> None:
    pid_file = write_pid_file(tmp_path, finished_pid, 4200)
    result = invoke("stop", "--data-dir", str(tmp_path))
    assert result.exit_code == 0
    assert result.stdout.startswith("removed a stale pid file (")
    assert str(finished_pid) in result.stdout
    assert not pid_file.exists()


def test_start_clears_a_stale_pid_file_before_checking_the_port(
    tmp_path: Path, finished_pid: int, listening_port: int
) -> None:
    pid_file = write_pid_file(tmp_path, finished_pid, listening_port)
    result = invoke("start", "--data-dir", str(tmp_path), "--port", str(listening_port))
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith("removed a stale pid file: ")
    assert f"names pid {finished_pid}" in lines[0]
    assert lines[1].startswith(f"error: port {listening_port} is taken")
    assert not pid_file.exists()


def test_a_recycled_pid_is_stale_and_stop_leaves_that_process_alone(tmp_path: Path) -> None:
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_pid_file(tmp_path, stranger.pid, 4200)
        assert server_status(tmp_path).state is ServerState.STALE
        assert stop_server(tmp_path).state is ServerState.STALE
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_an_unreadable_pid_file_is_stale(tmp_path: Path) -> None:
    paths = ServerPaths.under(tmp_path)
    paths.home.mkdir(parents=True)
    paths.pid_file.write_text("not json")
    status = server_status(tmp_path)
    assert status.state is ServerState.STALE
    assert status.describe().startswith(f"stale: {paths.pid_file} is unreadable")


def test_a_server_that_dies_at_start_is_reported_with_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    crash = [sys.executable, "-c", "import sys; print('no database'); sys.exit(3)"]
    monkeypatch.setattr(server_module, "_server_command", lambda port: crash)
    result = invoke("start", "--data-dir", str(tmp_path), "--port", str(free_port()))
    paths = ServerPaths.under(tmp_path)
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: prefect server exited with code 3 before it was healthy; see {paths.log_file}\n"
    )
    assert "no database" in paths.log_file.read_text()
    assert not paths.pid_file.exists()


def test_stop_without_a_server_says_so(tmp_path: Path) -> None:
    result = invoke("stop", "--data-dir", str(tmp_path))
    assert result.exit_code == 0
    assert result.stdout == (
        f"no Prefect server is running under {ServerPaths.under(tmp_path).home}\n"
    )


def test_a_live_server_that_never_answers_times_out_then_stop_ends_its_group(
    tmp_path: Path,
) -> None:
    silent = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", "prefect", "server"],
        start_new_session=True,
    )
    port = free_port()
    write_pid_file(tmp_path, silent.pid, port)
    status = invoke("status", "--data-dir", str(tmp_path))
    assert status.exit_code == 1
    assert status.stdout.startswith(f"starting or unhealthy: pid {silent.pid} is alive")

    result = invoke("start", "--data-dir", str(tmp_path), "--port", str(port), "--timeout", "1")
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"error: prefect server did not answer http://127.0.0.1:{port}/api/health within 1 s"
    )
    assert silent.poll() is None, "start must not kill a server it did not launch"

    stopped = invoke("stop", "--data-dir", str(tmp_path))
    assert stopped.stdout == f"stopped the Prefect server (pid {silent.pid})\n"
    silent.wait(timeout=10)
    with pytest.raises(ProcessLookupError):
        os.kill(silent.pid, 0)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_start_stops_the_server_it_began(tmp_path: Path, stop) -> None:
    paths = ServerPaths.under(tmp_path)
    command = [sys.executable, "-m", "flows.cli", "server", "start", "--data-dir", str(tmp_path)]
    starting = subprocess.Popen(
        [*command, "--port", str(free_port())], stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while not paths.pid_file.exists():
        assert time.monotonic() < deadline and starting.poll() is None
        time.sleep(0.05)
    server_pid = json.loads(paths.pid_file.read_text())["pid"]
    started = time.monotonic()
    starting.send_signal(stop)
    assert starting.wait(timeout=10) == 130
    assert time.monotonic() - started < 10
    assert "interrupted: the server being started was stopped" in starting.stderr.read()
    assert not paths.pid_file.exists()
    assert server_status(tmp_path).state is ServerState.STOPPED
    with pytest.raises(ProcessLookupError):
        os.kill(server_pid, 0)
