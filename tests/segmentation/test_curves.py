"""segmentation.curves: MMEngine scalars.json -> loss and mIoU series -> curves.png."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from segmentation.curves import CurvesError, plot_training_curves, read_training_curves


def _write_run(work_dir: Path, timestamp: str, records: list[dict]) -> Path:
    log = work_dir / timestamp / "vis_data" / "scalars.json"
    log.parent.mkdir(parents=True)
    log.write_text("".join(json.dumps(record) + "\n" for record in records))
    return log


TRAIN = [
    {"lr": 1e-3, "data_time": 0.01, "loss": 3.0, "decode.loss_cls": 1.0, "iter": 20, "step": 20},
    {"lr": 9e-4, "data_time": 0.01, "loss": 2.5, "decode.loss_cls": 0.8, "iter": 40, "step": 40},
    {"aAcc": 70.0, "mIoU": 21.5, "mAcc": 30.0, "Open-mIoU": 25.0, "data_time": 0.1, "step": 40},
]


def test_reads_loss_and_miou_series_by_step(tmp_path) -> None:
    _write_run(tmp_path, "20260101_000000", TRAIN)
    curves = read_training_curves(tmp_path)
    assert curves.loss == {20: 3.0, 40: 2.5}
    assert curves.metrics == {"mIoU": {40: 21.5}, "Open-mIoU": {40: 25.0}}


def test_a_resumed_run_continues_and_overrides_the_same_steps(tmp_path) -> None:
    _write_run(tmp_path, "20260101_000000", TRAIN)
    _write_run(tmp_path, "20260102_000000", [{"loss": 2.4, "step": 40}, {"loss": 2.0, "step": 60}])
    assert read_training_curves(tmp_path).loss == {20: 3.0, 40: 2.4, 60: 2.0}


def test_writes_curves_png_next_to_the_checkpoints(tmp_path) -> None:
    _write_run(tmp_path, "20260101_000000", TRAIN)
    written = plot_training_curves(tmp_path)
    assert written == tmp_path / "curves.png"
    with Image.open(written) as picture:
        assert picture.format == "PNG"
        assert picture.size == (1320, 480)


def test_loss_only_logs_still_plot(tmp_path) -> None:
    _write_run(tmp_path, "20260101_000000", TRAIN[:2])
    assert plot_training_curves(tmp_path, tmp_path / "loss.png").is_file()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"loss": 1.0}', "expected a JSON object with a 'step'"),
        ('{"loss": "high", "step": 1}', "step, loss and mIoU values must be numbers"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, line: str, message: str) -> None:
    log = _write_run(tmp_path, "20260101_000000", TRAIN[:1])
    log.write_text(log.read_text() + line + "\n")
    with pytest.raises(CurvesError) as error:
        read_training_curves(tmp_path)
    assert str(error.value).startswith(f"{log}:2: {message}")


def test_a_work_dir_without_logs_is_an_error(tmp_path) -> None:
    with pytest.raises(CurvesError, match="no MMEngine logs"):
        read_training_curves(tmp_path)
    _write_run(tmp_path, "20260101_000000", [{"lr": 1e-3, "step": 1}])
    with pytest.raises(CurvesError, match="no train loss or mIoU logged"):
        read_training_curves(tmp_path)
