"""Training curves from MMEngine's logs: train loss and validation mIoU over iterations, as a PNG.

MMEngine's `LocalVisBackend` writes one JSON object per logging step to
`WORK_DIR/<timestamp>/vis_data/scalars.json`: train lines carry `loss`, validation lines the
metrics (`mIoU`, `Open-mIoU`, `mIoU_seen`, ...), both a `step` (the iteration). Every run in the
work dir is read in time order, so a resumed training shows as one curve.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

CURVES_FILE = "curves.png"


class CurvesError(ValueError):
    """A work dir without usable training logs."""


@dataclass
class TrainingCurves:
    """Train loss per logged iteration and each mIoU-like validation metric per validation."""

    loss: dict[int, float] = field(default_factory=dict)
    metrics: dict[str, dict[int, float]] = field(default_factory=dict)

    def add(self, record: dict) -> None:
        """Take one scalars.json line; a later run's value for a step replaces the earlier one."""
        step = int(record["step"])
        if "loss" in record:
            self.loss[step] = float(record["loss"])
        for name, value in record.items():
            if "mIoU" in name:
                self.metrics.setdefault(name, {})[step] = float(value)


def scalar_logs(work_dir: Path) -> list[Path]:
    """The work dir's `*/vis_data/scalars.json` files, oldest run first (timestamped folders)."""
    return sorted(Path(work_dir).glob("*/vis_data/scalars.json"))


def read_training_curves(work_dir: Path) -> TrainingCurves:
    """Collect the curves of every run logged under `work_dir`."""
    logs = scalar_logs(work_dir)
    if not logs:
        raise CurvesError(f"no MMEngine logs (*/vis_data/scalars.json) under {work_dir}")
    curves = TrainingCurves()
    for log in logs:
        for number, line in enumerate(log.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                _add_line(curves, line, f"{log}:{number}")
    if not curves.loss and not curves.metrics:
        raise CurvesError(f"no train loss or mIoU logged under {work_dir}")
    return curves


def _add_line(curves: TrainingCurves, line: str, where: str) -> None:
    """Add one log line to the curves; a malformed line is an error naming file and line."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise CurvesError(f"{where}: not valid JSON ({error.msg})") from None
    if not isinstance(record, dict) or "step" not in record:
        raise CurvesError(f"{where}: expected a JSON object with a 'step'")
    try:
        curves.add(record)
    except (TypeError, ValueError):
        raise CurvesError(f"{where}: step, loss and mIoU values must be numbers") from None


def plot_training_curves(work_dir: Path, out: Path | None = None) -> Path:
    """Draw train loss and validation mIoU per iteration; `out` defaults to WORK_DIR/curves.png."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    curves = read_training_curves(work_dir)
    out = Path(out) if out is not None else Path(work_dir) / CURVES_FILE
    figure, (loss_axes, metric_axes) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    _plot_series(loss_axes, {"train loss": curves.loss}, "loss", "no train loss logged")
    _plot_series(metric_axes, curves.metrics, "mIoU (%)", "no validation logged yet")
    figure.suptitle(f"Training curves: {Path(work_dir).resolve().name}")
    figure.savefig(out, dpi=120)
    plt.close(figure)
    return out


def _plot_series(axes, series: dict[str, dict[int, float]], ylabel: str, empty: str) -> None:
    """One line per named series (markers when it has few points); a note when there is none."""
    for name, points in series.items():
        steps = sorted(points)
        marker = "o" if len(steps) <= 20 else None
        axes.plot(steps, [points[step] for step in steps], marker=marker, label=name)
    if not series or not any(series.values()):
        axes.text(0.5, 0.5, empty, ha="center", va="center", transform=axes.transAxes)
    else:
        axes.legend()
    axes.set_xlabel("iteration")
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
