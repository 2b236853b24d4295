"""PNG charts of prior statistics: top objects, attributes by kind, predicates, objects/image."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pyarrow as pa


def _save(figure: plt.Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def _horizontal_bars(table: pa.Table, label: str, title: str, path: Path) -> Path:
    labels = table[label].to_pylist()[::-1]
    counts = table["mentions"].to_pylist()[::-1]
    figure, axes = plt.subplots(figsize=(7, max(2.5, 0.28 * len(labels) + 1)))
    axes.barh(labels, counts, color="#4c72b0")
    axes.set_xlabel("mentions")
    axes.set_title(title)
    return _save(figure, path)


def _attributes_by_kind(table: pa.Table, path: Path) -> Path:
    kinds = sorted(set(table["kind"].to_pylist()))
    figure, axes = plt.subplots(
        len(kinds) or 1, 1, figsize=(7, 2.6 * max(1, len(kinds))), squeeze=False
    )
    rows = table.to_pylist()
    for axis, kind in zip(axes[:, 0], kinds, strict=False):
        values = [row for row in rows if row["kind"] == kind][::-1]
        axis.barh([row["value"] for row in values], [row["mentions"] for row in values])
        axis.set_title(f"attributes: {kind}")
    if not kinds:
        axes[0, 0].set_title("attributes: none yet")
    return _save(figure, path)


def _objects_per_image(table: pa.Table, path: Path) -> Path:
    figure, axes = plt.subplots(figsize=(7, 3.5))
    axes.bar(table["objects"].to_pylist(), table["images"].to_pylist(), color="#55a868")
    axes.set_xlabel("objects named in the caption")
    axes.set_ylabel("images")
    axes.set_title("objects per image")
    return _save(figure, path)


def plot_statistics(statistics: dict[str, pa.Table], out_dir: Path) -> list[Path]:
    """Write the four charts as PNG files into `out_dir` and return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return [
        _horizontal_bars(
            statistics["top_objects"], "name", "most frequent objects", out_dir / "top_objects.png"
        ),
        _attributes_by_kind(statistics["attributes_by_kind"], out_dir / "attributes_by_kind.png"),
        _horizontal_bars(
            statistics["relation_predicates"],
            "predicate",
            "most frequent relation predicates",
            out_dir / "relation_predicates.png",
        ),
        _objects_per_image(statistics["objects_per_image"], out_dir / "objects_per_image.png"),
    ]
