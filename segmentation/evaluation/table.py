"""The evaluation table: one row per dataset, printed, as Markdown and CSV, and as store rows.

Store rows have the keys of `storage.EvalResult` (`run`, `dataset`, `miou`, `open_miou`,
`config`, `checkpoint`, `prior_set_id`, `vocabulary_free`) for `PriorStore.write_eval_results`;
per dataset, `image_rows` gives the keys of `storage.EvalRun` and rows with those of
`storage.EvalImageClass` for `PriorStore.write_eval_images`. The per-class IoUs go to
`eval_classes.csv`.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segmentation.evaluation.confusion import ClassPixelCounts

COLUMNS = ("dataset", "images", "mIoU", "Open-mIoU", "aAcc", "mAcc")
CLASS_COLUMNS = ("dataset", "class_index", "class", "IoU")


@dataclass(frozen=True)
class EvalRow:
    """One dataset's metrics (percent) from one checkpoint, plus any extra metrics by name."""

    dataset: str
    images: int
    miou: float
    open_miou: float
    aacc: float
    macc: float
    extra: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_metrics(cls, dataset: str, images: int, metrics: dict[str, float]) -> EvalRow:
        """From `OpenIoUMetric` output (keys may carry an evaluator prefix such as "val/")."""
        plain = {key.rsplit("/", 1)[-1]: float(value) for key, value in metrics.items()}
        known = {"mIoU", "Open-mIoU", "aAcc", "mAcc"}
        return cls(
            dataset=dataset,
            images=images,
            miou=plain["mIoU"],
            open_miou=plain.get("Open-mIoU", math.nan),
            aacc=plain.get("aAcc", math.nan),
            macc=plain.get("mAcc", math.nan),
            extra={key: value for key, value in plain.items() if key not in known},
        )

    def cells(self, extra_columns: list[str]) -> list[str]:
        values = [self.miou, self.open_miou, self.aacc, self.macc]
        values += [self.extra.get(name, math.nan) for name in extra_columns]
        return [self.dataset, str(self.images), *(_format(value) for value in values)]


def _format(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"


@dataclass(frozen=True)
class DatasetDetail:
    """What the metric kept of one dataset: the IoU (fraction, NaN for a class in neither the
    labels nor the predictions) per class and each image's class pixel counts, by image id.
    `benchmark` is the table's short name, `dataset` the store's name of the dataset; `synonyms`
    has each class's names, its own first."""

    benchmark: str
    dataset: str
    classes: tuple[str, ...]
    synonyms: tuple[tuple[str, ...], ...]
    iou: np.ndarray
    per_image: dict[str, ClassPixelCounts]

    def class_rows(self) -> list[list]:
        """`eval_classes.csv` rows (IoU in percent, unrounded) of the classes that have an IoU."""
        return [
            [self.benchmark, index, name, 100 * float(self.iou[index])]
            for index, name in enumerate(self.classes)
            if not math.isnan(self.iou[index])
        ]

    def image_rows(self) -> list[dict]:
        """One row per image and class in its ground truth or prediction."""
        return [
            {
                "image_id": image_id,
                "class_index": int(index),
                "class_name": self.classes[index],
                "gt_pixels": int(gt),
                "pred_pixels": int(pred),
                "intersection": int(hits),
            }
            for image_id, counts in self.per_image.items()
            for index, gt, pred, hits in zip(
                counts.classes,
                counts.gt_pixels,
                counts.pred_pixels,
                counts.intersection,
                strict=True,
            )
        ]


@dataclass(frozen=True)
class EvalTable:
    """Rows of one evaluation run (a checkpoint over several datasets)."""

    rows: list[EvalRow]
    run: str
    config: str = ""
    checkpoint: str = ""
    prior_set_id: str = ""
    vocabulary_free: bool = False
    details: list[DatasetDetail] = field(default_factory=list)

    @property
    def extra_columns(self) -> list[str]:
        return sorted({name for row in self.rows for name in row.extra})

    @property
    def header(self) -> list[str]:
        return [*COLUMNS, *self.extra_columns]

    def body(self) -> list[list[str]]:
        return [row.cells(self.extra_columns) for row in self.rows]

    def to_markdown(self) -> str:
        lines = ["| " + " | ".join(self.header) + " |", "|" + "---|" * len(self.header)]
        lines += ["| " + " | ".join(cells) + " |" for cells in self.body()]
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.header)
        writer.writerows(self.body())
        return buffer.getvalue()

    def to_rich(self):
        """A rich Table for the terminal."""
        from rich.table import Table

        mode = "vocabulary-free" if self.vocabulary_free else "dataset vocabulary"
        table = Table(title=f"{self.run} ({mode})")
        for name in self.header:
            table.add_column(name, justify="left" if name == "dataset" else "right")
        for cells in self.body():
            table.add_row(*cells)
        return table

    def classes_csv(self) -> str:
        """Per-class IoU of every dataset, one row per class with an IoU."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CLASS_COLUMNS)
        for detail in self.details:
            writer.writerows(detail.class_rows())
        return buffer.getvalue()

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write `eval.md`, `eval.csv` and `eval_classes.csv` under `out_dir`; return the first
        two paths."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        markdown, table_csv = out_dir / "eval.md", out_dir / "eval.csv"
        markdown.write_text(self.to_markdown())
        table_csv.write_text(self.to_csv())
        (out_dir / "eval_classes.csv").write_text(self.classes_csv())
        return markdown, table_csv

    def store_rows(self) -> list[dict]:
        """Rows for `PriorStore.write_eval_results` (a missing Open-mIoU is NULL)."""
        return [
            {
                "run": self.run,
                "dataset": row.dataset,
                "miou": row.miou,
                "open_miou": None if math.isnan(row.open_miou) else row.open_miou,
                "config": self.config,
                "checkpoint": self.checkpoint,
                "prior_set_id": self.prior_set_id,
                "vocabulary_free": self.vocabulary_free,
            }
            for row in self.rows
        ]

    def image_rows(self) -> list[tuple[dict, list[dict]]]:
        """Per dataset: the evaluation's key (`storage.EvalRun` fields) and its per-image class
        rows (`storage.EvalImageClass` fields)."""
        return [
            (
                {
                    "run": self.run,
                    "benchmark": detail.benchmark,
                    "dataset": detail.dataset,
                    "config": self.config,
                    "checkpoint": self.checkpoint,
                    "prior_set_id": self.prior_set_id,
                    "vocabulary_free": self.vocabulary_free,
                },
                detail.image_rows(),
            )
            for detail in self.details
        ]
