"""Training and evaluation in 2 processes under torchrun (gloo on the CPU), through the CLI users
run: checkpoints, resume, logs and curves as with one process, and the same evaluation as one
process on the same checkpoint."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "segmentation/configs/llmformer_tiny_demo.py"
PROCESSES = 2
RUN_TIMEOUT_S = 300
STOP_GRACE_S = 10


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _torchrun() -> list[str]:
    """torchrun with 2 local processes on a free loopback port."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc-per-node={PROCESSES}",
        "--master-addr=127.0.0.1",
        f"--master-port={_free_port()}",
    ]


def _run(command: list[str]) -> str:
    """Run a command in its own process group and return its output; past RUN_TIMEOUT_S the
    group (torchrun and its workers) gets SIGTERM, then SIGKILL after a grace, and the test
    fails with what it printed."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = child.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGTERM)
        try:
            output, _ = child.communicate(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            output, _ = child.communicate()
        pytest.fail(f"{' '.join(command[:6])} ... ran past {RUN_TIMEOUT_S} s:\n{output[-4000:]}")
    assert child.returncode == 0, output[-6000:]
    return output


def _scalars(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def _per_class_tables(output: str) -> list[str]:
    """The per-class tables the metric logged (rank 0's logger alone prints), in order."""
    tables, table = [], None
    for line in output.splitlines():
        if line.endswith("per class results:"):
            table = []
        elif table is not None and line[:1] in ("+", "|"):
            table.append(line)
        elif table:
            tables.append("\n".join(table))
            table = None
    return tables


def _csv(path: Path) -> list[dict]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory) -> Path:
    """Datasets folder with a demo set of 4 training and 3 validation pictures: 3 does not split
    evenly over 2 processes, so the sampler pads one rank and the evaluation must drop it."""
    from segmentation.demo import DemoSpec, write_demo

    root = tmp_path_factory.mktemp("datasets")
    write_demo(DemoSpec(seed=5, num_train=4, num_val=3), root / "demo", progress=False)
    return root


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_two_process_training_resumes_and_evaluates_as_one_process(
    demo_root, untrained_tiny_clip, extract_demo_priors, tmp_path
) -> None:
    from segmentation.curves import read_training_curves
    from storage import PriorStore

    store = tmp_path / "store"
    prior_set_id = extract_demo_priors(demo_root / "demo", store)
    work = tmp_path / "work"
    priors = [f"prior_store_root={store}", f"prior_set_id={prior_set_id}"]
    schedule = [
        "param_scheduler.0.end=40",
        "train_cfg.val_interval=20",
        "default_hooks.checkpoint.interval=20",
        "default_hooks.logger.interval=1",
        "train_dataloader.batch_size=2",
        "val_dataloader.batch_size=1",
    ]
    train = [
        *_torchrun(),
        "-m",
        "flows.cli",
        "train",
        str(CONFIG),
        "--launcher",
        "pytorch",
        "--work-dir",
        str(work),
        "--data-root",
        str(demo_root),
        *(arg for option in [*priors, *schedule] for arg in ("--cfg-options", option)),
    ]

    first = _run([*train, "--cfg-options", "train_cfg.max_iters=20"])
    assert first.count("trained 20 iterations") == 1  # rank 0 alone reports
    assert (work / "last_checkpoint").read_text().strip() == str(work / "iter_20.pth")
    # the prior-free stage first, with its own checkpoints and logs
    prior_free = work / "prior_free"
    assert (prior_free / "last_checkpoint").read_text().strip() == str(prior_free / "iter_20.pth")
    assert len(list(prior_free.glob("*/vis_data/scalars.json"))) == 1
    resumed = _run([*train, "--cfg-options", "train_cfg.max_iters=40", "--resume"])
    assert resumed.count("trained 40 iterations") == 1
    assert sorted(path.name for path in work.glob("*.pth")) == ["iter_20.pth", "iter_40.pth"]

    logs = sorted(work.glob("*/vis_data/scalars.json"))
    assert len(logs) == 2  # one per run: rank 0 writes the logs
    assert len(list(work.glob("*/vis_data/events.out.tfevents.*"))) == 2
    first_log, resumed_log = (_scalars(log) for log in logs)
    assert [line["step"] for line in first_log if "loss" in line] == list(range(1, 21))
    assert [line["step"] for line in resumed_log if "loss" in line] == list(range(21, 41))
    curves = read_training_curves(work)
    assert sorted(curves.loss) == list(range(1, 41))
    assert sorted(curves.metrics["mIoU"]) == [20, 40]

    checkpoint = work / "iter_40.pth"
    evaluation = [
        "eval",
        str(CONFIG),
        str(checkpoint),
        "--datasets",
        "demo",
        "--data-root",
        str(demo_root),
        "--store",
        str(store),
        *(arg for option in priors for arg in ("--cfg-options", option)),
    ]
    launches = {
        "two": [*_torchrun(), "-m", "flows.cli", *evaluation, "--launcher", "pytorch"],
        "one": [sys.executable, "-m", "flows.cli", *evaluation],
    }
    outputs = {
        run: _run([*command, "--work-dir", str(tmp_path / run), "--run-name", run])
        for run, command in launches.items()
    }

    for table in ("eval.csv", "eval_classes.csv"):
        one, two = (_csv(tmp_path / run / table) for run in ("one", "two"))
        assert one and two == one, table
    [row] = _csv(tmp_path / "one" / "eval.csv")
    assert row["images"] == "3"
    validation_at_40 = next(line for line in resumed_log if line["step"] == 40 and "mIoU" in line)
    assert float(row["mIoU"]) == validation_at_40["mIoU"]  # the 2-process validation agrees
    assert _per_class_tables(outputs["two"]) == _per_class_tables(outputs["one"])
    assert _per_class_tables(resumed)[-1] == _per_class_tables(outputs["one"])[0]

    with PriorStore(store).connect() as connection:
        results = connection.sql(
            "SELECT run, miou, open_miou FROM eval_results ORDER BY run"
        ).fetchall()
        images = {
            run: connection.sql(
                "SELECT image_id, class_index, gt_pixels, pred_pixels, intersection "
                f"FROM eval_images WHERE run = '{run}' ORDER BY ALL"
            ).fetchall()
            for run in ("one", "two")
        }
    assert [run for run, *_ in results] == ["one", "two"]  # one row each: rank 0 writes
    assert results[0][1:] == results[1][1:]
    assert len({image for image, *_ in images["one"]}) == 3
    assert images["two"] == images["one"]
