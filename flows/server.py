"""A local Prefect server bound to one data dir: start it in the background, ask after it, stop it.

Everything lives under ``<data-dir>/prefect``: Prefect's home, its SQLite database ``prefect.db``,
``server.pid`` (JSON: process id and port) and ``server.log`` (the server's own output).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

HOST = "127.0.0.1"
DEFAULT_PORT = 4200
POLL_SECONDS = 0.5
ABANDON_TIMEOUT_S = 4.0
"""How long a server whose start failed or was interrupted gets to exit before SIGKILL."""


class ServerError(RuntimeError):
    """A server problem the user can fix; the message is one line that says how."""


@dataclass(frozen=True)
class ServerPaths:
    """Where one data dir keeps its Prefect server's home, database, pid file and log."""

    home: Path

    @classmethod
    def under(cls, data_dir: Path | str) -> ServerPaths:
        return cls(Path(data_dir).resolve() / "prefect")

    @property
    def pid_file(self) -> Path:
        return self.home / "server.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "server.log"

    @property
    def database(self) -> Path:
        return self.home / "prefect.db"


@dataclass(frozen=True)
class ServerRecord:
    """What the pid file holds: the server's process id (its process group) and its port."""

    pid: int
    port: int

    @property
    def api_url(self) -> str:
        return api_url(self.port)


class ServerState(StrEnum):
    """Running answers /api/health; starting is alive but not answering; stale is a dead pid."""

    RUNNING = "running"
    STARTING = "starting"
    STALE = "stale"
    STOPPED = "stopped"


@dataclass(frozen=True)
class ServerStatus:
    """The state of the server of one data dir, with its pid file record when there is one."""

    state: ServerState
    paths: ServerPaths
    record: ServerRecord | None = None

    def describe(self) -> str:
        """One line for a person."""
        record = self.record
        if self.state is ServerState.RUNNING:
            return f"running: pid {record.pid}, {record.api_url}, log {self.paths.log_file}"
        if self.state is ServerState.STARTING:
            return (
                f"starting or unhealthy: pid {record.pid} is alive but {record.api_url}/health "
                f"does not answer; see {self.paths.log_file}"
            )
        if self.state is ServerState.STALE:
            return f"stale: {_stale_reason(self)}; `llmformer server stop` removes it"
        return f"stopped: no Prefect server is running under {self.paths.home}"


def api_url(port: int) -> str:
    """The PREFECT_API_URL of a local server on ``port``."""
    return f"http://{HOST}:{port}/api"


def is_healthy(url: str, timeout: float = 2.0) -> bool:
    """Whether the Prefect API at ``url`` answers its health check."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as response:
            return response.status == 200 and response.read().strip() == b"true"
    except (OSError, urllib.error.URLError):
        return False


def port_is_open(port: int) -> bool:
    """Whether something accepts connections on ``HOST:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        return probe.connect_ex((HOST, port)) == 0


def server_status(data_dir: Path | str) -> ServerStatus:
    """Read the pid file under ``data_dir`` and check the process and its health endpoint."""
    paths = ServerPaths.under(data_dir)
    if not paths.pid_file.exists():
        return ServerStatus(ServerState.STOPPED, paths)
    record = _read_record(paths)
    if record is None or not _is_prefect_server(record.pid):
        return ServerStatus(ServerState.STALE, paths, record)
    state = ServerState.RUNNING if is_healthy(record.api_url) else ServerState.STARTING
    return ServerStatus(state, paths, record)


def start_server(
    data_dir: Path | str,
    port: int = DEFAULT_PORT,
    timeout: float = 120.0,
    notify: Callable[[str], None] = print,
) -> ServerStatus:
    """Start ``prefect server start`` in the background and wait until its API is healthy.

    A server already running for this data dir is waited for and returned; a stale pid file is
    removed; a port held by anything else raises :class:`ServerError`. ``notify`` hears each step.
    """
    status = server_status(data_dir)
    if status.state in (ServerState.RUNNING, ServerState.STARTING):
        record = status.record
        _wait_until_healthy(record, status.paths, timeout, lambda: _gone_reason(record.pid))
        notify(f"already running: pid {record.pid}, {record.api_url}")
        return server_status(data_dir)
    if status.state is ServerState.STALE:
        status.paths.pid_file.unlink()
        notify(f"removed a stale pid file: {_stale_reason(status)}")
    if port_is_open(port):
        raise ServerError(
            f"port {port} is taken by another process; stop it or choose another with --port"
        )
    started = _launch(status.paths, port, timeout)
    notify(f"started the Prefect server: {started.describe()}")
    return started


def stop_server(data_dir: Path | str, timeout: float = 30.0) -> ServerStatus:
    """Terminate the server's process group and remove its pid file; returns the prior status."""
    status = server_status(data_dir)
    if status.state is ServerState.STOPPED:
        return status
    if status.state is not ServerState.STALE:
        _terminate_group(status.record.pid, timeout)
    status.paths.pid_file.unlink(missing_ok=True)
    return status


def _server_command(port: int) -> list[str]:
    return [sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(port)]


def _server_environment(paths: ServerPaths, port: int) -> dict[str, str]:
    environment = dict(os.environ)
    environment.update(
        PREFECT_HOME=str(paths.home),
        PREFECT_SERVER_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{paths.database}",
        PREFECT_API_URL=api_url(port),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
    )
    return environment


def _launch(paths: ServerPaths, port: int, timeout: float) -> ServerStatus:
    paths.home.mkdir(parents=True, exist_ok=True)
    with paths.log_file.open("ab") as log:
        process = subprocess.Popen(
            _server_command(port),
            env=_server_environment(paths, port),
            cwd=paths.home,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    record = ServerRecord(pid=process.pid, port=port)
    paths.pid_file.write_text(json.dumps(asdict(record)) + "\n")
    try:
        _wait_until_healthy(record, paths, timeout, lambda: _exit_reason(process))
    except (ServerError, KeyboardInterrupt):  # a failed or interrupted start leaves nothing
        _terminate_group(process.pid, timeout=ABANDON_TIMEOUT_S)
        paths.pid_file.unlink(missing_ok=True)
        raise
    return ServerStatus(ServerState.RUNNING, paths, record)


def _wait_until_healthy(
    record: ServerRecord,
    paths: ServerPaths,
    timeout: float,
    exit_reason: Callable[[], str | None],
) -> None:
    """Poll the health endpoint until it answers, the server exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while not is_healthy(record.api_url):
        if (reason := exit_reason()) is not None:
            raise ServerError(
                f"prefect server {reason} before it was healthy; see {paths.log_file}"
            )
        if time.monotonic() > deadline:
            raise ServerError(
                f"prefect server did not answer {record.api_url}/health within {timeout:.0f} s; "
                f"see {paths.log_file}"
            )
        time.sleep(POLL_SECONDS)


def _exit_reason(process: subprocess.Popen) -> str | None:
    """None while the server this process started runs, else how it ended."""
    code = process.poll()
    return None if code is None else f"exited with code {code}"


def _gone_reason(pid: int) -> str | None:
    """None while a server started elsewhere runs (its exit code is not ours to read)."""
    return None if _is_prefect_server(pid) else f"(pid {pid}) exited"


def _terminate_group(pid: int, timeout: float) -> None:
    """SIGTERM the process group led by ``pid``; SIGKILL it if it outlives ``timeout``."""
    _signal_group(pid, signal.SIGTERM)
    if not _wait_for_exit(pid, timeout):
        _signal_group(pid, signal.SIGKILL)
        _wait_for_exit(pid, timeout=5.0)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def _wait_for_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _is_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_SECONDS / 5)
    return True


def _is_alive(pid: int) -> bool:
    """Whether ``pid`` runs; a finished child of this process is reaped, not counted as alive."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_prefect_server(pid: int) -> bool:
    """Whether ``pid`` is alive and still a Prefect server (a recycled pid is someone else's)."""
    if not _is_alive(pid):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():
        return True
    arguments = cmdline.read_bytes().split(b"\0")
    return b"server" in arguments and any(argument.endswith(b"prefect") for argument in arguments)


def _read_record(paths: ServerPaths) -> ServerRecord | None:
    try:
        fields = json.loads(paths.pid_file.read_text())
        return ServerRecord(pid=int(fields["pid"]), port=int(fields["port"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _stale_reason(status: ServerStatus) -> str:
    if status.record is None:
        return f"{status.paths.pid_file} is unreadable"
    return f"{status.paths.pid_file} names pid {status.record.pid}, which is not a running server"
