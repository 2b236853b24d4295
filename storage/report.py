"""`llmformer priors report`: where a checkpoint fails and whether the LLM named those things.

From `storage.evaluations.ReportTables` it draws PNG charts (per benchmark, IoU of each class over
the images whose priors named it vs the rest; prior recall and precision per dataset and prior
set; the worst images with their captions) and writes a Markdown page that shows them beside
its tables. `Report.markdown` takes how to link a chart, so the same page can embed them.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pyarrow as pa

from storage.evaluations import ReportTables

REPORT_FILE = "report.md"
CHART_CLASSES = 30
"""Classes per IoU chart (those in the most ground-truth images); the page's table has all."""
WORST_COLUMNS = 4
CAPTION_WIDTH, CAPTION_LINES = 44, 9
"""Characters per line and lines of a caption under its picture (the page has it whole)."""
NAMED_COLOUR, UNNAMED_COLOUR = "#4c72b0", "#dd8452"
CHART_SECTIONS = ("class_iou", "prior_recall", "worst_images", None)
"""The chart-name prefix each section of the page shows (the comparison has no chart)."""


@dataclass(frozen=True)
class Report:
    """The tables and the chart files of one report."""

    tables: ReportTables
    charts: dict[str, Path]

    def markdown(self, link: Callable[[Path], str]) -> str:
        """The page; `link(chart)` gives the image address of each chart."""
        evaluation = self.tables.evaluation
        lines = [
            f"# Priors report: {evaluation['run']}",
            "",
            f"checkpoint `{evaluation['checkpoint']}`, config `{evaluation['config']}`, "
            f"prior set `{evaluation['prior_set_id']}`"
            + (", vocabulary-free" if evaluation["vocabulary_free"] else ""),
            "",
            "An object prior names a class when its lemma equals the class name or a synonym; "
            "a class the parser never names (a scene word such as background) counts as missed.",
            "",
        ]
        sections = (
            ("IoU where the LLM named the class vs where it did not", self.tables.class_iou),
            ("Prior recall and precision", self.tables.prior_recall),
            ("The worst images", self.tables.worst_images),
            ("Every evaluation in the store", self.tables.comparison),
        )
        for (title, table), prefix in zip(sections, CHART_SECTIONS, strict=True):
            charts = [
                path for name, path in self.charts.items() if prefix and name.startswith(prefix)
            ]
            lines += [f"## {title}", "", *(f"![{path.stem}]({link(path)})" for path in charts)]
            lines += ["", *_markdown_table(table), ""]
        return "\n".join(lines)


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _markdown_table(table: pa.Table) -> list[str]:
    names = table.column_names
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(_cell(v) for v in row.values()) + " |" for row in table.to_pylist()]
    return lines


def _save(figure: plt.Figure, path: Path) -> Path:
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _no_data(axes, message: str) -> None:
    axes.text(0.5, 0.5, message, ha="center", va="center", transform=axes.transAxes)
    axes.set_axis_off()


def plot_class_iou(rows: list[dict], benchmark: str, path: Path) -> Path:
    """Per class, IoU over the images whose priors named it and over the rest (with counts)."""
    rows = sorted(rows, key=lambda row: -row["gt_images"])[:CHART_CLASSES][::-1]
    figure, axes = plt.subplots(figsize=(8, max(3.0, 0.42 * len(rows) + 1.4)), layout="constrained")
    if not rows:
        _no_data(axes, "no classes evaluated")
    positions = range(len(rows))
    for offset, side, colour, label in (
        (0.2, "named", NAMED_COLOUR, "LLM named the class"),
        (-0.2, "unnamed", UNNAMED_COLOUR, "LLM did not name it"),
    ):
        values = [row[f"{side}_iou"] or 0.0 for row in rows]
        bars = axes.barh([p + offset for p in positions], values, 0.4, color=colour, label=label)
        for bar, row in zip(bars, rows, strict=True):
            count = row[f"{side}_images"]
            text = f"n={count}" if row[f"{side}_iou"] is not None else "no images"
            axes.text(bar.get_width() + 1, bar.get_y() + 0.2, text, va="center", fontsize=7)
    axes.set_yticks(list(positions), [row["class_name"] for row in rows])
    axes.set_xlim(0, 112)
    axes.set_xlabel("IoU (%) over those images")
    axes.set_title(f"{benchmark}: class IoU by whether the priors named the class")
    if rows:
        axes.legend(loc="lower right", fontsize=8)
    return _save(figure, path)


def plot_prior_recall(table: pa.Table, path: Path) -> Path:
    """Recall and precision of the priors, one bar pair per dataset and prior set."""
    rows = table.to_pylist()
    figure, axes = plt.subplots(figsize=(max(6.5, 1.6 * len(rows) + 2), 4), layout="constrained")
    if not rows:
        _no_data(axes, "no evaluated images with priors")
    labels = [f"{row['dataset']}\n{row['prior_set_id'][:8]}" for row in rows]
    positions = range(len(rows))
    for offset, measure, colour in ((-0.2, "recall", NAMED_COLOUR), (0.2, "precision", "#55a868")):
        values = [100 * (row[measure] or 0.0) for row in rows]
        bars = axes.bar([p + offset for p in positions], values, 0.4, color=colour, label=measure)
        axes.bar_label(bars, fmt="%.0f", fontsize=8)
    axes.set_xticks(list(positions), labels)
    axes.set_ylim(0, 122)
    axes.set_ylabel("% of (image, class) pairs")
    axes.set_title(
        "Prior recall (ground-truth classes named), precision (named classes present)", fontsize=10
    )
    if rows:
        axes.legend(loc="upper center", ncols=2)
    return _save(figure, path)


def plot_worst_images(table: pa.Table, path: Path) -> Path:
    """The worst images as thumbnails, each titled with its mIoU and the classes the priors
    missed, its caption below."""
    from PIL import Image

    rows = table.to_pylist()
    columns = min(WORST_COLUMNS, max(1, len(rows)))
    grid_rows = max(1, math.ceil(len(rows) / columns))
    figure, axes = plt.subplots(
        2 * grid_rows,
        columns,
        figsize=(max(6.0, 3.2 * columns), 4.6 * grid_rows),
        height_ratios=[3, 1.6] * grid_rows,
        squeeze=False,
        layout="constrained",
    )
    for axis in axes.flat:
        axis.set_axis_off()
    if not rows:
        _no_data(axes[0, 0], "no evaluated images")
    for index, row in enumerate(rows):
        picture_axis = axes[2 * (index // columns), index % columns]
        text_axis = axes[2 * (index // columns) + 1, index % columns]
        image_path = Path(row["path"]) if row["path"] else None
        if image_path is not None and image_path.is_file():
            with Image.open(image_path) as picture:
                picture_axis.imshow(picture.convert("RGB"))
        else:
            _no_data(picture_axis, "image file not found")
        missed = textwrap.shorten(row["missed"] or "none", CAPTION_WIDTH)
        picture_axis.set_title(
            f"{row['image_id']}  mIoU {row['miou']:.1f}\nLLM missed: {missed}", fontsize=8
        )
        caption = textwrap.shorten(row["caption"] or "(no caption)", CAPTION_WIDTH * CAPTION_LINES)
        caption = textwrap.fill(caption, CAPTION_WIDTH)
        text_axis.text(0, 1, caption, va="top", fontsize=7, transform=text_axis.transAxes)
    figure.suptitle("Worst images (lowest mIoU over their classes) with the LLM's caption")
    return _save(figure, path)


def write_report(tables: ReportTables, out_dir: Path) -> tuple[Path, Report]:
    """Draw the charts and write `report.md` into `out_dir`; returns the page and the report."""
    out_dir.mkdir(parents=True, exist_ok=True)
    class_rows = tables.class_iou.to_pylist()
    charts: dict[str, Path] = {}
    for benchmark in dict.fromkeys(row["benchmark"] for row in class_rows):
        charts[f"class_iou_{benchmark}"] = plot_class_iou(
            [row for row in class_rows if row["benchmark"] == benchmark],
            benchmark,
            out_dir / f"class_iou_{benchmark}.png",
        )
    charts["prior_recall"] = plot_prior_recall(tables.prior_recall, out_dir / "prior_recall.png")
    charts["worst_images"] = plot_worst_images(tables.worst_images, out_dir / "worst_images.png")
    report = Report(tables, charts)
    page = out_dir / REPORT_FILE
    page.write_text(report.markdown(lambda chart: chart.name))
    return page, report
