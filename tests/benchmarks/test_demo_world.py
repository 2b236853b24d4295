"""The demo-world benchmarks' shared setup: run reuse by identity, and argument checks."""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import pytest

import segmentation.training

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"


def load_demo_world():
    spec = importlib.util.spec_from_file_location("_demo_world", BENCHMARKS / "_demo_world.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


demo_world = load_demo_world()
CLIP_RECORD = {"spec": "tiny-clip-spec-1"}
CONFIG = demo_world.CONFIG


@pytest.fixture
def trainings(monkeypatch) -> list[list[str]]:
    """Stands in for training: each call writes the run's last checkpoint and is recorded; a
    run whose options hold "fail" writes it and then fails, as a run killed at its end."""
    calls: list[list[str]] = []

    def load(options):
        return options

    def train(options) -> None:
        calls.append(list(options.cfg_options))
        options.work_dir.mkdir(parents=True, exist_ok=True)
        (options.work_dir / f"iter_{options.max_iters}.pth").write_bytes(b"weights")
        if "fail" in options.cfg_options:
            raise RuntimeError("killed")

    monkeypatch.setattr(segmentation.training, "load_training_config", load)
    monkeypatch.setattr(segmentation.training, "train", train)
    return calls


def test_a_run_is_reused_only_for_the_same_options_iterations_and_tiny_clip(
    tmp_path, trainings
) -> None:
    run = tmp_path / "run"
    checkpoint = demo_world.train_once(run, CONFIG, ["a=1"], 5, CLIP_RECORD)
    assert checkpoint == run / "iter_5.pth"
    demo_world.train_once(run, CONFIG, ["a=1"], 5, CLIP_RECORD)
    assert trainings == [["a=1"]]
    demo_world.train_once(run, CONFIG, ["a=2"], 5, CLIP_RECORD)
    demo_world.train_once(run, CONFIG, ["a=2"], 5, {"spec": "tiny-clip-spec-2"})
    assert trainings == [["a=1"], ["a=2"], ["a=2"]]
    stamp = json.loads((run / demo_world.RUN_STAMP).read_text())
    assert stamp["options"] == ["a=2"] and stamp["tiny_clip"] == "tiny-clip-spec-2"
    assert stamp["iters"] == 5 and stamp["config"] == CONFIG.name
    assert len(stamp["config_text"]) == 12
    demo_world.train_once(run, demo_world.PRIOR_FREE_CONFIG, ["a=2"], 5, CLIP_RECORD)
    assert len(trainings) == 4  # another config is another run


def test_a_run_on_another_is_trained_again_when_that_run_changes(tmp_path, trainings) -> None:
    base, run = tmp_path / "base", tmp_path / "run"
    first = demo_world.train_once(base, CONFIG, ["b=1"], 5, CLIP_RECORD)
    demo_world.train_once(run, CONFIG, ["a=1"], 5, CLIP_RECORD, first)
    demo_world.train_once(run, CONFIG, ["a=1"], 5, CLIP_RECORD, first)
    assert trainings[-1] == ["a=1", f"load_from={first}"] and len(trainings) == 2
    demo_world.train_once(base, CONFIG, ["b=2"], 5, CLIP_RECORD)
    demo_world.train_once(run, CONFIG, ["a=1"], 5, CLIP_RECORD, first)
    assert len(trainings) == 4


def test_a_run_that_failed_after_its_last_checkpoint_is_trained_again(tmp_path, trainings) -> None:
    run = tmp_path / "run"
    demo_world.train_once(run, CONFIG, ["a=1"], 5, CLIP_RECORD)
    with pytest.raises(RuntimeError, match="killed"):
        demo_world.train_once(run, CONFIG, ["fail"], 5, CLIP_RECORD)
    with pytest.raises(RuntimeError, match="killed"):
        demo_world.train_once(run, CONFIG, ["fail"], 5, CLIP_RECORD)
    assert not (run / demo_world.RUN_STAMP).exists()
    demo_world.train_once(run, CONFIG, ["a=1"], 5, CLIP_RECORD)
    assert trainings == [["a=1"], ["fail"], ["fail"], ["a=1"]]


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["--seeds", "0,a"], "--seeds takes comma-separated integers, got '0,a'"),
        (["--seeds", "2,2"], "--seeds must be distinct and non-negative, got '2,2'"),
        (["--seeds", "-1"], "--seeds must be distinct and non-negative, got '-1'"),
        (["--iters", "0"], "argument --iters: must be at least 1, got 0"),
        (["--num-val", "-3"], "argument --num-val: must be at least 1, got -3"),
    ],
)
def test_bad_arguments_get_one_error_line(argv: list[str], error: str, capsys) -> None:
    parser = argparse.ArgumentParser(prog="bench")
    demo_world.add_demo_arguments(parser, "work_dirs/x")
    with pytest.raises(SystemExit) as exited:
        args = parser.parse_args(argv)
        demo_world.parse_seeds(parser, args.seeds)
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"bench: error: {error}"


def test_good_arguments_parse_in_order_with_iterations_left_to_the_config() -> None:
    parser = argparse.ArgumentParser(prog="bench")
    demo_world.add_demo_arguments(parser, "work_dirs/x")
    args = parser.parse_args(["--seeds", "3,0", "--num-train", "8"])
    assert demo_world.parse_seeds(parser, args.seeds) == [3, 0]
    assert (args.iters, args.num_train, args.num_val) == (None, 8, 100)
