"""The `train-segmenter` flow: the child command lines it builds and the results it reads back."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from flows.children import ChildProcessError, stream
from flows.train import (
    TrainSegmenterParameters,
    last_checkpoint,
    newest_prior_set,
    train_command,
)


def test_single_process_training_command() -> None:
    params = TrainSegmenterParameters(max_iters=7, resume=True, cfg_options=["a.b=1"])
    command = train_command(params, "abc123")
    assert command[:4] == [sys.executable, "-m", "flows.cli", "train"]
    assert "prior_set_id=abc123" in command
    assert command[command.index("--max-iters") + 1] == "7"
    assert "--resume" in command
    assert "a.b=1" in command
    assert "launcher=pytorch" not in command


def test_several_gpus_run_under_torchrun_with_the_pytorch_launcher() -> None:
    command = train_command(TrainSegmenterParameters(gpus=4), "abc123")
    assert command[1:4] == ["-m", "torch.distributed.run", "--nproc_per_node=4"]
    assert "launcher=pytorch" in command


def test_negative_gpu_count_is_rejected() -> None:
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        TrainSegmenterParameters(gpus=-1)


def test_stream_forwards_lines_and_raises_on_failure() -> None:
    lines: list[str] = []
    stream([sys.executable, "-c", "print('one'); print('two')"], lines.append)
    assert lines == ["one", "two"]
    with pytest.raises(ChildProcessError, match="exited with 3"):
        stream([sys.executable, "-c", "import sys; sys.exit(3)"], lines.append)


def test_last_checkpoint_reads_mmengines_marker(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="training wrote no checkpoint"):
        last_checkpoint(tmp_path)
    (tmp_path / "last_checkpoint").write_text(f"{tmp_path}/iter_50.pth\n")
    assert last_checkpoint(tmp_path) == tmp_path / "iter_50.pth"


def test_newest_prior_set_of_an_empty_store_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="holds no prior set: run extract-priors first"):
        newest_prior_set(tmp_path / "store")
