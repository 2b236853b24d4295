"""Where images come from: a folder, a JSONL manifest, or an open-vocabulary dataset by name.

Every source yields `ImageItem`s in a stable order, so a resumed run meets the same images in the
same order. Unreadable files are not filtered here: validation turns them into failure rows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)
DEFAULT_SPLIT = "all"


class SourceError(ValueError):
    """A source that cannot be listed: missing folder, malformed manifest, unknown dataset."""


@dataclass(frozen=True)
class ImageItem:
    """One image to extract priors for, keyed the way the store keys it."""

    image_id: str
    path: Path
    dataset: str
    split: str


class ImageSource(Protocol):
    """Anything that lists images; `describe()` is one line for progress bars and logs."""

    def items(self) -> list[ImageItem]: ...

    def describe(self) -> str: ...


def dataset_key(name: str) -> str:
    """A name made safe for a `dataset=` partition: letters, digits, `_`, `-`, `.` only."""
    key = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_.-")
    return key or "images"


def require_dataset_name(name: str | None) -> None:
    """Refuse a chosen dataset name that `dataset_key` would change."""
    if name is not None and dataset_key(name) != name:
        raise SourceError(
            f"dataset name {name!r}: use letters, digits, '_', '-' and '.' only "
            f"(e.g. {dataset_key(name)!r})"
        )


@dataclass(frozen=True)
class FolderSource:
    """Every image under `root` (recursive); the id is the path relative to `root`, the dataset
    `dataset` or else the folder's name."""

    root: Path
    dataset: str | None = None
    split: str = DEFAULT_SPLIT

    def __post_init__(self) -> None:
        require_dataset_name(self.dataset)
        if not Path(self.root).is_dir():
            raise SourceError(f"image folder {self.root} does not exist or is not a folder")

    def items(self) -> list[ImageItem]:
        root = Path(self.root)
        dataset = self.dataset or dataset_key(root.resolve().name)
        paths = sorted(
            path
            for path in root.rglob("*")
            if path.suffix.lower() in IMAGE_EXTENSIONS and not path.is_dir()
        )
        return [
            ImageItem(path.relative_to(root).as_posix(), path, dataset, self.split)
            for path in paths
        ]

    def describe(self) -> str:
        return f"folder {self.root}"


@dataclass(frozen=True)
class ManifestSource:
    """A JSONL file of `{"id": ..., "path": ...}` lines; relative paths resolve next to it. The
    dataset is `dataset` or else the file's name without its extension."""

    manifest: Path
    dataset: str | None = None
    split: str = DEFAULT_SPLIT

    def __post_init__(self) -> None:
        require_dataset_name(self.dataset)
        if not Path(self.manifest).is_file():
            raise SourceError(f"manifest {self.manifest} does not exist")

    def items(self) -> list[ImageItem]:
        manifest = Path(self.manifest)
        dataset = self.dataset or dataset_key(manifest.stem)
        items: dict[str, ImageItem] = {}
        with manifest.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                image_id, path = _parse_manifest_line(line, f"{manifest}:{number}")
                if image_id in items:
                    raise SourceError(f"{manifest}:{number}: duplicate id {image_id!r}")
                resolved = path if path.is_absolute() else manifest.parent / path
                items[image_id] = ImageItem(image_id, resolved, dataset, self.split)
        return list(items.values())

    def describe(self) -> str:
        return f"manifest {self.manifest}"


def _parse_manifest_line(line: str, where: str) -> tuple[str, Path]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise SourceError(f"{where}: not valid JSON ({error.msg})") from error
    if not isinstance(record, dict):
        raise SourceError(f"{where}: expected a JSON object with 'id' and 'path'")
    image_id, path = record.get("id"), record.get("path")
    if not isinstance(image_id, str | int) or isinstance(image_id, bool) or str(image_id) == "":
        raise SourceError(f"{where}: 'id' must be a non-empty string or integer")
    if not isinstance(path, str) or not path:
        raise SourceError(f"{where}: 'path' must be a non-empty string")
    return str(image_id), Path(path)


@dataclass(frozen=True)
class SplitLayout:
    """Where one split's images live under a dataset's data root, and how their ids are formed.

    Images are globbed with `suffix`. The id is the file stem, or with `id_root` set, the path
    relative to `id_root` with its extension (the demo set's `train/00012.png`).
    """

    split: str
    image_dir: str
    suffix: str = ".jpg"
    id_root: str | None = None


def _prepared(*splits: str) -> tuple[SplitLayout, ...]:
    """The layout `llmformer data prepare` writes: `images/<split>/<id>.jpg`, id = file stem."""
    return tuple(SplitLayout(split, f"images/{split}") for split in splits)


DATASET_LAYOUTS: dict[str, tuple[SplitLayout, ...]] = {
    "coco_stuff_171": _prepared("train", "val"),
    "ade20k_150": _prepared("val"),
    "ade20k_847": _prepared("val"),
    "pascal_context_59": _prepared("val"),
    "pascal_context_459": _prepared("val"),
    "pascal_voc_20": _prepared("val"),
    "pascal_voc_21": _prepared("val"),
    "demo": (
        SplitLayout("train", "images/train", suffix=".png", id_root="images"),
        SplitLayout("val", "images/val", suffix=".png", id_root="images"),
    ),
}
"""Image layouts under each dataset's data root (the folder `llmformer data prepare` writes)."""


@dataclass(frozen=True)
class DatasetSource:
    """A known dataset under `data_root`; `splits` picks some of its splits (default: all that
    exist on disk). A split listed in its layout but absent on disk is skipped only by default."""

    name: str
    data_root: Path
    splits: Sequence[str] | None = None

    def __post_init__(self) -> None:
        self._layouts()
        if not Path(self.data_root).is_dir():
            raise SourceError(f"data root {self.data_root} does not exist or is not a folder")

    def items(self) -> list[ImageItem]:
        layouts = self._layouts()
        root = Path(self.data_root)
        present = [layout for layout in layouts if (root / layout.image_dir).is_dir()]
        missing = [layout.image_dir for layout in layouts if layout not in present]
        if self.splits is not None and missing:
            raise SourceError(f"{self.name}: missing image folder {missing[0]} under {root}")
        if not present:
            expected = ", ".join(layout.image_dir for layout in layouts)
            raise SourceError(f"{self.name}: no image folder under {root} (expected {expected})")
        return [item for layout in present for item in self._split_items(root, layout)]

    def describe(self) -> str:
        return f"dataset {self.name} at {self.data_root}"

    def _layouts(self) -> tuple[SplitLayout, ...]:
        if self.name not in DATASET_LAYOUTS:
            known = ", ".join(sorted(DATASET_LAYOUTS))
            raise SourceError(f"unknown dataset {self.name!r}; known: {known}")
        layouts = DATASET_LAYOUTS[self.name]
        if self.splits is None:
            return layouts
        by_split = {layout.split: layout for layout in layouts}
        unknown = [split for split in self.splits if split not in by_split]
        if unknown:
            raise SourceError(f"{self.name} has no split {unknown[0]!r}; known: {list(by_split)}")
        return tuple(by_split[split] for split in self.splits)

    def _split_items(self, root: Path, layout: SplitLayout) -> Iterator[ImageItem]:
        for path in _split_paths(root, layout):
            if layout.id_root is None:
                image_id = path.stem
            else:
                image_id = path.relative_to(root / layout.id_root).as_posix()
            yield ImageItem(image_id, path, self.name, layout.split)


def _split_paths(root: Path, layout: SplitLayout) -> list[Path]:
    return sorted((root / layout.image_dir).glob(f"*{layout.suffix}"))


def build_source(
    images: Path | None = None,
    manifest: Path | None = None,
    dataset: str | None = None,
    data_root: Path | None = None,
    dataset_name: str | None = None,
) -> ImageSource:
    """Pick the one source the options name; exactly one of folder, manifest or dataset. A
    folder or manifest is stored under `dataset_name` where given (a known dataset under its
    own name)."""
    chosen = [
        name
        for name, value in (("images", images), ("manifest", manifest), ("dataset", dataset))
        if value is not None
    ]
    if len(chosen) != 1:
        raise SourceError("give exactly one of --images, --manifest or --dataset")
    if images is not None:
        return FolderSource(images, dataset_name)
    if manifest is not None:
        return ManifestSource(manifest, dataset_name)
    if dataset_name is not None:
        raise SourceError("--dataset-name names a folder's or manifest's images, not a --dataset")
    if data_root is None:
        raise SourceError("--dataset needs --data-root")
    return DatasetSource(dataset, data_root)
