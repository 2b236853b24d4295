"""The `train-segmenter` flow: the child command lines it builds and the results it reads back."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from prefect.exceptions import ParameterTypeError
from pydantic import ValidationError

from flows.children import ChildProcessError, stream
from flows.train import (
    TrainSegmenterParameters,
    eval_command,
    newest_prior_set,
    train_command,
    train_segmenter,
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
    assert command[1:7] == [
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=4",
        "-m",
        "flows.cli",
    ]
    assert command[command.index("--launcher") + 1] == "pytorch"


def test_rendezvous_options_make_the_run_one_node_of_several() -> None:
    rendezvous = ["--nnodes=2", "--node-rank=1", "--rdzv-backend=c10d", "--rdzv-endpoint=h0:29400"]
    params = TrainSegmenterParameters(gpus=8, torchrun_options=rendezvous)
    command = train_command(params, "abc123")
    assert command[3:8] == [*rendezvous, "--nproc-per-node=8"]
    assert "--standalone" not in command
    assert command[command.index("--launcher") + 1] == "pytorch"


def test_data_root_reaches_training_and_evaluation(tmp_path: Path) -> None:
    params = TrainSegmenterParameters(data_root=tmp_path, gpus=2)
    checkpoint = tmp_path / "iter_20.pth"
    for command in (train_command(params, "abc123"), eval_command(params, "abc123", checkpoint)):
        assert command[command.index("--data-root") + 1] == str(tmp_path)
        assert command[command.index("--launcher") + 1] == "pytorch"
    defaults = TrainSegmenterParameters()
    assert "--data-root" not in train_command(defaults, "abc123")  # the config's own paths
    assert "--data-root" not in eval_command(defaults, "abc123", checkpoint)


def test_a_data_root_that_is_not_there_is_refused_when_the_run_is_created(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-datasets"
    with pytest.raises(ParameterTypeError, match="data_root"):
        train_segmenter.validate_parameters({"data_root": str(missing)})
    with pytest.raises(ValidationError, match="Path does not point to a directory"):
        TrainSegmenterParameters(data_root=missing)
    validated = train_segmenter.validate_parameters({"data_root": str(tmp_path)})
    assert validated["data_root"] == tmp_path


def test_negative_gpu_count_is_rejected() -> None:
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        TrainSegmenterParameters(gpus=-1)


def test_stream_forwards_lines_and_raises_on_failure() -> None:
    lines: list[str] = []
    stream([sys.executable, "-c", "print('one'); print('two')"], lines.append)
    assert lines == ["one", "two"]
    with pytest.raises(ChildProcessError, match="exited with 3"):
        stream([sys.executable, "-c", "import sys; sys.exit(3)"], lines.append)


def test_newest_prior_set_is_the_one_registered_last(tmp_path: Path) -> None:
    from storage import PriorSetSpec, PriorStore

    store = PriorStore(tmp_path / "store")
    ids = [
        store.register_prior_set(PriorSetSpec("file", model, "Describe.", {}, "rules", "1"))
        for model in ("z-model", "a-model", "m-model", "b-model")
    ]
    assert newest_prior_set(tmp_path / "store") == ids[-1]
    assert store.prior_set_ids() == ids


def test_newest_prior_set_of_an_empty_store_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="holds no prior set: run extract-priors first"):
        newest_prior_set(tmp_path / "store")
