"""The prepared GPU check: on a machine without a GPU it says so in one line and exits 0; its
measurements run in child processes that cannot outlive their limit."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"


@pytest.fixture
def gpu_check(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # spawned children import it by name too
    import gpu_check

    return gpu_check


def test_without_a_gpu_it_prints_one_line_and_exits_0() -> None:
    import torch

    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no GPU, even on a machine that has one
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "gpu_check.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"gpu_check: no CUDA GPU on this machine (torch {torch.__version__}); nothing measured"
    ]


def test_a_measurement_returns_its_result_or_its_error(gpu_check) -> None:
    assert gpu_check.in_child(divmod, 7, 2, limit_s=60) == (3, 1)
    with pytest.raises(RuntimeError, match="ValueError: invalid literal"):
        gpu_check.in_child(int, "x", limit_s=60)


def test_a_measurement_past_its_limit_is_stopped(gpu_check) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="sleep ran past 2 s"):
        gpu_check.in_child(time.sleep, 600, limit_s=2)
    assert time.monotonic() - started < 2 + gpu_check.STOP_GRACE_S + 5
