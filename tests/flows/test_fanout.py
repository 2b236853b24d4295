"""`flows.fanout.run_children` on plain Python children: concurrent output, fail-fast stop with a
bounded grace, each child on its own devices."""

from __future__ import annotations

import sys
import time

import pytest

from flows.fanout import Child, DeviceListError, FanOutError, engine_groups, run_children


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def _child(name: str, code: str, device: str = "0") -> Child:
    return Child(name, _python(code), (device,))


TICKS = """
import os, time
for tick in range(3):
    print("{name}", tick, os.environ["CUDA_VISIBLE_DEVICES"])
    time.sleep(0.3)
"""


def test_every_child_is_streamed_as_it_writes_with_its_own_devices() -> None:
    log: list[str] = []
    children = [
        _child(name, TICKS.format(name=name), device) for name, device in (("a", "3"), ("b", "5"))
    ]
    run_children(children, log.append)
    assert sorted(log) == sorted(
        f"[{name}] {name} {tick} {device}"
        for name, device in (("a", "3"), ("b", "5"))
        for tick in range(3)
    )
    firsts = [log.index(f"[{name}] {name} 0 {device}") for name, device in (("a", "3"), ("b", "5"))]
    lasts = [log.index(f"[{name}] {name} 2 {device}") for name, device in (("a", "3"), ("b", "5"))]
    assert max(firsts) < min(lasts), "one child's output waited for the other to finish"


def test_a_child_that_fills_its_pipe_does_not_block() -> None:
    log: list[str] = []
    flood = "import sys\nfor i in range(20000):\n    print('x' * 100)\n"
    run_children([_child("flood", flood), _child("other", "print('done')")], log.append)
    assert len(log) == 20001


def test_a_failing_child_stops_the_others_within_the_grace() -> None:
    log: list[str] = []
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    failing = "import sys, time; time.sleep(1); print('giving up'); sys.exit(3)"
    started = time.monotonic()
    with pytest.raises(FanOutError) as raised:
        run_children(
            [
                _child("steady", "import time; time.sleep(60)"),
                _child("stubborn", stubborn),
                _child("bad", failing),
            ],
            log.append,
            grace_s=1.0,
        )
    assert str(raised.value) == "bad exited with 3; stopped the other 2"
    assert time.monotonic() - started < 10
    assert "[bad] giving up" in log


def test_gpus_split_into_tensor_parallel_groups_or_are_refused() -> None:
    assert engine_groups(["0", "1", "2", "3"], 2) == [("0", "1"), ("2", "3")]
    assert engine_groups(["3", "5", "7"], 1) == [("3",), ("5",), ("7",)]
    with pytest.raises(
        DeviceListError, match="3 GPUs do not split into engines of tensor_parallel_size=2"
    ):
        engine_groups(["3", "5", "7"], 2)
