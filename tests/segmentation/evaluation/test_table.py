"""The evaluation table in Markdown, CSV and as rows the prior store accepts."""

from __future__ import annotations

from segmentation.evaluation import EvalRow, EvalTable
from storage import PriorStore


def _table() -> EvalTable:
    rows = [
        EvalRow.from_metrics(
            "a847", 2000, {"mIoU": 16.5, "Open-mIoU": 19.25, "aAcc": 60.0, "mAcc": 30.0}
        ),
        EvalRow.from_metrics(
            "demo",
            100,
            {"test/mIoU": 80.0, "test/mIoU_seen": 90.5, "test/aAcc": 95.0, "test/mAcc": 85.0},
        ),
    ]
    return EvalTable(rows, run="tiny-seed0", config="tiny.py", checkpoint="iter_100.pth")


def test_markdown_and_csv_hold_every_metric_and_a_dash_for_missing_ones() -> None:
    table = _table()
    assert table.to_markdown().splitlines() == [
        "| dataset | images | mIoU | Open-mIoU | aAcc | mAcc | mIoU_seen |",
        "|---|---|---|---|---|---|---|",
        "| a847 | 2000 | 16.50 | 19.25 | 60.00 | 30.00 | - |",
        "| demo | 100 | 80.00 | - | 95.00 | 85.00 | 90.50 |",
    ]
    assert table.to_csv().splitlines()[2] == "demo,100,80.00,-,95.00,85.00,90.50"


def test_write_creates_both_files(tmp_path) -> None:
    markdown, csv_path = _table().write(tmp_path / "eval")
    assert markdown.read_text().startswith("| dataset |")
    assert csv_path.read_text().startswith("dataset,images,mIoU")


def test_store_rows_land_in_the_eval_results_table(tmp_path) -> None:
    store = PriorStore(tmp_path / "store")
    store.write_eval_results(_table().store_rows())
    rows = (
        store.connect()
        .sql("SELECT dataset, miou, open_miou FROM eval_results ORDER BY dataset")
        .fetchall()
    )
    assert rows == [("a847", 16.5, 19.25), ("demo", 80.0, None)]
