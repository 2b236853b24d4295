"""CaptionParser's worker processes: they start without forking this (threaded) process, shrug off
the stop signals a group or a scheduler sends (the run that started them handles those), exit when
closed or are killed after a grace, and a dead one is an error, never a hang. Every wait here is
bounded."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from prior_extraction import parsing
from prior_extraction.parsing import (
    WORKER_EXIT_GRACE_S,
    CaptionParser,
    ParserWorkerError,
    end_processes,
)

TEXTS = ["A man is riding a brown horse.", "", "Two dogs sit on a red mat."] * 4
ANSWER_BOUND_S = 60.0
"""Far more than two workers need to load a pipeline and parse TEXTS on a busy 2-core machine."""


@pytest.fixture(scope="module")
def parser() -> CaptionParser:
    return CaptionParser()


@pytest.fixture
def workers():
    with CaptionParser(batch_size=2, n_process=2) as two_processes:
        yield two_processes


def _worker_pids(parser: CaptionParser) -> list[int]:
    return [worker.process.pid for worker in parser._pool._workers]


def _alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_ended(pids: list[int], timeout_s: float) -> None:
    """Wait at most `timeout_s` for every process of `pids` to end."""
    deadline = time.monotonic() + timeout_s
    while any(map(_alive, pids)) and time.monotonic() < deadline:
        time.sleep(0.05)


def _in_thread(function, timeout_s: float = ANSWER_BOUND_S):
    """Run `function` in a thread; its result, or AssertionError when it is still running after
    `timeout_s` (the thread is left behind, a daemon)."""
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["value"] = function()
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout_s)
    assert not thread.is_alive(), f"still running after {timeout_s} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def test_workers_start_clean_while_another_thread_holds_a_lock_they_use(parser) -> None:
    """A forked worker would inherit the held lock, locked, and never parse a batch."""
    held, release = threading.Event(), threading.Event()

    def hold_the_batch_lock() -> None:
        with parsing._ONE_BATCH_AT_A_TIME:
            held.set()
            release.wait(ANSWER_BOUND_S)

    holder = threading.Thread(target=hold_the_batch_lock, daemon=True)
    holder.start()
    assert held.wait(10)
    try:
        with CaptionParser(batch_size=2, n_process=2) as workers:
            parsed = _in_thread(lambda: workers.parse_many(TEXTS))
    finally:
        release.set()
        holder.join(10)
    assert parsed == parser.parse_many(TEXTS)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_workers_ignore_the_stop_signals_and_keep_parsing(workers, parser, signum) -> None:
    assert _in_thread(lambda: workers.parse_many(TEXTS[:3])) == parser.parse_many(TEXTS[:3])
    for pid in _worker_pids(workers):
        os.kill(pid, signum)
    assert _in_thread(lambda: workers.parse_many(TEXTS)) == parser.parse_many(TEXTS)
    assert all(map(_alive, _worker_pids(workers)))


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGQUIT])
def test_a_worker_that_dies_is_an_error_not_a_hang(workers, signum) -> None:
    assert len(_in_thread(lambda: workers.parse_many(TEXTS))) == len(TEXTS)
    first = _worker_pids(workers)[0]
    os.kill(first, signum)
    with pytest.raises(ParserWorkerError, match=f"llmformer-parser-0 exited \\(code -{signum}\\)"):
        _in_thread(lambda: workers.parse_many(TEXTS))
    with pytest.raises(ParserWorkerError, match="worker processes were closed"):
        workers.parse("A cat.")


def test_a_worker_does_not_inherit_its_starters_ignored_or_blocked_signals() -> None:
    ignored = signal.signal(signal.SIGQUIT, signal.SIG_IGN)
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGHUP])
    try:
        parser = CaptionParser(batch_size=2, n_process=2)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        signal.signal(signal.SIGQUIT, ignored)
    with parser:
        first, second = _worker_pids(parser)
        os.kill(first, signal.SIGQUIT)
        os.kill(second, signal.SIGHUP)
        _wait_ended([first, second], ANSWER_BOUND_S)
        assert not _alive(first)
        assert not _alive(second)


def test_close_ends_the_workers_at_once(workers) -> None:
    assert len(_in_thread(lambda: workers.parse_many(TEXTS))) == len(TEXTS)
    pids = _worker_pids(workers)
    started = time.monotonic()
    workers.close()
    assert time.monotonic() - started < WORKER_EXIT_GRACE_S
    assert not any(map(_alive, pids))
    assert workers._pool is None


DEAF = """
import time
ready.set()
time.sleep(60)
"""


def test_a_process_that_does_not_exit_is_killed_after_the_grace() -> None:
    context = multiprocessing.get_context(parsing.WORKER_START_METHOD)
    ready = context.Event()
    deaf = context.Process(target=exec, args=(DEAF, {"ready": ready}), daemon=True)
    deaf.start()
    assert ready.wait(ANSWER_BOUND_S)
    started = time.monotonic()
    assert end_processes([deaf], grace_s=0.5) == []
    assert 0.5 <= time.monotonic() - started < 2 * 0.5 + 1
    assert deaf.exitcode == -signal.SIGKILL


def test_a_parse_left_early_leaves_the_workers_in_step(workers, parser) -> None:
    texts = [f"A dog number {index} sits on a mat." for index in range(40)]
    for _ in zip(range(3), workers.iter_parse(texts), strict=False):
        pass
    assert _in_thread(lambda: workers.parse_many(TEXTS)) == parser.parse_many(TEXTS)


ORPHANED = textwrap.dedent(
    """
    import os, sys
    from prior_extraction.parsing import CaptionParser

    if __name__ == "__main__":
        parser = CaptionParser(n_process=2)
        parser.parse("A cat.")
        print(*(worker.process.pid for worker in parser._pool._workers), flush=True)
        sys.stdin.read()
    """
)


def test_workers_end_soon_after_the_process_that_started_them_is_killed(tmp_path) -> None:
    script = tmp_path / "orphaned.py"
    script.write_text(ORPHANED)
    starter = subprocess.Popen(
        [sys.executable, str(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        pids = [int(pid) for pid in _in_thread(starter.stdout.readline).split()]
    finally:
        starter.kill()
        starter.wait(10)
    assert len(pids) == 2
    _wait_ended(pids, 10 * parsing.PARENT_CHECK_S)
    assert not any(map(_alive, pids))
