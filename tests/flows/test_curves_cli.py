"""`llmformer curves WORK_DIR`: writes curves.png, or a one-line error."""

from __future__ import annotations

import json

from PIL import Image
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()


def test_curves_command_writes_the_png(tmp_path) -> None:
    log = tmp_path / "20260101_000000" / "vis_data" / "scalars.json"
    log.parent.mkdir(parents=True)
    records = [{"loss": 2.0, "step": 10}, {"loss": 1.5, "step": 20}, {"mIoU": 12.0, "step": 20}]
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    result = runner.invoke(app, ["curves", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"training curves: {tmp_path / 'curves.png'}"
    with Image.open(tmp_path / "curves.png") as picture:
        assert picture.format == "PNG"


def test_curves_command_reports_a_missing_log(tmp_path) -> None:
    result = runner.invoke(app, ["curves", str(tmp_path)])
    assert result.exit_code == 2
    assert (
        result.stderr.strip()
        == f"error: no MMEngine logs (*/vis_data/scalars.json) under {tmp_path}"
    )
