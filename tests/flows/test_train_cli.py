"""`llmformer train`: user errors exit 2 with one line; the options reach the config."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()
TINY = str(Path(__file__).parents[2] / "segmentation" / "configs" / "llmformer_tiny_demo.py")


def test_train_is_a_command_with_the_documented_options() -> None:
    result = runner.invoke(app, ["train", "--help"])
    assert result.exit_code == 0
    for option in ("--work-dir", "--max-iters", "--resume", "--cfg-options", "--launcher"):
        assert option in result.output
    assert "--data-root" in result.output


def test_a_missing_config_exits_2_with_one_line() -> None:
    result = runner.invoke(app, ["train", "no/such/config.py"])
    assert result.exit_code == 2
    assert result.output.strip() == "error: config not found: no/such/config.py"


def test_a_malformed_override_exits_2() -> None:
    result = runner.invoke(app, ["train", TINY, "--cfg-options", "prior_set_id"])
    assert result.exit_code == 2
    assert "error: --cfg-options expects KEY=VALUE, got 'prior_set_id'" in result.output


def test_a_config_without_a_prior_set_exits_2_and_says_how_to_set_one(tmp_path) -> None:
    result = runner.invoke(app, ["train", TINY, "--work-dir", str(tmp_path), "--max-iters", "1"])
    assert result.exit_code == 2
    assert "error: LoadPriors needs a store_root and a prior_set_id" in result.output


def test_a_mistyped_prior_set_exits_2_before_anything_is_built(tmp_path) -> None:
    from storage import PriorStore

    PriorStore(tmp_path / "store")
    options = [f"prior_store_root={tmp_path / 'store'}", "prior_set_id=deadbeef-typo"]
    args = ["train", TINY, "--work-dir", str(tmp_path / "work"), "--max-iters", "1"]
    result = runner.invoke(app, [*args, *(x for o in options for x in ("--cfg-options", o))])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == (
        f"error: prior set 'deadbeef-typo' is not in the store {tmp_path / 'store'} "
        f"(`llmformer priors sets --store {tmp_path / 'store'}` lists its ids)"
    )
    assert not (tmp_path / "work").exists()


def test_an_unknown_launcher_exits_2_with_one_line() -> None:
    result = runner.invoke(app, ["train", TINY, "--launcher", "mpi"])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: --launcher must be one of none, pytorch, slurm, got 'mpi'"
    )
