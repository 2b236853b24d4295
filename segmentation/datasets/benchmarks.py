"""The open-vocabulary benchmarks as MMSeg datasets over the layout `llmformer data prepare` writes.

Layout of a prepared root::

    ROOT/images/<split>/<image id><img_suffix>
    ROOT/labels/<split>/<image id>.png     8-bit (255 = ignore) or 16-bit (65535 = ignore)
    ROOT/classes.txt                       read only for Pascal Context-459

Every data info carries `img_path`, `seg_map_path`, `img_id`, `dataset_name`, `split`,
`num_classes` and `label_map`; the metainfo carries `classes` and `synonyms`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from segmentation.datasets.class_names import ClassNames
from segmentation.datasets.constants import IGNORE_INDEX

ROOT_CLASSES_FILE = "classes.txt"


class DataLayoutError(FileNotFoundError):
    """A prepared dataset root lacks a file it must have."""


class OpenVocabSegDataset(BaseSegDataset):
    """Base class: vocabulary from a data file, split folders, store keys in every data info.

    Subclasses set `DATASET_NAME` (the store's dataset key) and `CLASSES` (a packaged class list,
    or None to read `ROOT/classes.txt` written by `llmformer data prepare`).
    """

    DATASET_NAME: ClassVar[str] = ""
    CLASSES: ClassVar[str | None] = None
    SOURCE_LABEL_MAP: ClassVar[dict[int, int] | None] = None

    def __init__(
        self,
        data_root: str,
        split: str = "val",
        img_suffix: str = ".jpg",
        ann_file: str = "",
        classes_file: str | None = None,
        **kwargs,
    ) -> None:
        self.split = split
        self.class_names = self._load_class_names(data_root, classes_file)
        kwargs.setdefault(
            "data_prefix", {"img_path": f"images/{split}", "seg_map_path": f"labels/{split}"}
        )
        super().__init__(
            ann_file=ann_file,
            img_suffix=img_suffix,
            seg_map_suffix=".png",
            metainfo={**self.class_names.metainfo(), **(kwargs.pop("metainfo", None) or {})},
            data_root=data_root,
            ignore_index=IGNORE_INDEX,
            **kwargs,
        )

    def _load_class_names(self, data_root: str, classes_file: str | None) -> ClassNames:
        if classes_file is not None:
            return ClassNames.from_file(classes_file)
        if self.CLASSES is not None:
            return ClassNames.packaged(self.CLASSES)
        return ClassNames.from_file(Path(data_root) / ROOT_CLASSES_FILE)

    @classmethod
    def get_label_map(cls, new_classes=None) -> dict[int, int] | None:
        """The source-id -> class-id map of this dataset's prepared label maps (None: identity)."""
        return cls.SOURCE_LABEL_MAP

    def image_id(self, relative_path: str) -> str:
        """The store's id of an image: its file name without extension."""
        return Path(relative_path).stem

    def load_data_list(self) -> list[dict]:
        """List image/label pairs from the split folder (or `ann_file`), checking both exist."""
        img_dir = self.data_prefix["img_path"]
        if self.ann_file:
            relative_paths = [
                line.strip() + self.img_suffix
                for line in Path(self.ann_file).read_text().splitlines()
                if line.strip()
            ]
        else:
            relative_paths = self._scan_images(img_dir)
        return [self._data_info(img_dir, relative) for relative in relative_paths]

    def _scan_images(self, img_dir: str) -> list[str]:
        if not os.path.isdir(img_dir):
            raise DataLayoutError(
                f"image folder not found: {img_dir} (prepare it with `llmformer data prepare`)"
            )
        return sorted(
            os.path.relpath(os.path.join(folder, name), img_dir)
            for folder, _, names in os.walk(img_dir)
            for name in names
            if name.endswith(self.img_suffix)
        )

    def _data_info(self, img_dir: str, relative: str) -> dict:
        img_path = os.path.join(img_dir, relative)
        seg_map_path = os.path.join(
            self.data_prefix["seg_map_path"], relative[: -len(self.img_suffix)] + ".png"
        )
        if not os.path.isfile(img_path):
            raise DataLayoutError(f"missing image {img_path} (listed in {self.ann_file})")
        if not os.path.isfile(seg_map_path):
            raise DataLayoutError(f"missing label map {seg_map_path} for image {img_path}")
        return {
            "img_path": img_path,
            "seg_map_path": seg_map_path,
            "img_id": self.image_id(relative),
            "dataset_name": self.DATASET_NAME,
            "split": self.split,
            "num_classes": len(self.class_names),
            "label_map": self.label_map,
            "reduce_zero_label": False,
            "seg_fields": [],
        }


def _shift_down(num_classes: int) -> dict[int, int]:
    """Source id 0 (background) -> ignore, source id k -> class k - 1."""
    return {0: IGNORE_INDEX, **{k: k - 1 for k in range(1, num_classes + 1)}}


@DATASETS.register_module()
class COCOStuff171Dataset(OpenVocabSegDataset):
    """COCO-Stuff with the 171 classes used for open-vocabulary training."""

    DATASET_NAME = "coco_stuff_171"
    CLASSES = "coco_stuff_171"


@DATASETS.register_module()
class ADE20K150Dataset(OpenVocabSegDataset):
    """ADE20K SceneParsing (ADEChallengeData2016), 150 classes, 2,000 validation images."""

    DATASET_NAME = "ade20k_150"
    CLASSES = "ade20k_150"


@DATASETS.register_module()
class ADE20K847Dataset(OpenVocabSegDataset):
    """ADE20K-full (ADE20K_2021_17_01) with the 847 classes of the open-vocabulary benchmark;
    packaged names, 16-bit labels."""

    DATASET_NAME = "ade20k_847"
    CLASSES = "ade20k_847"


@DATASETS.register_module()
class PascalContext59Dataset(OpenVocabSegDataset):
    """Pascal Context with its 59 frequent classes (background ignored)."""

    DATASET_NAME = "pascal_context_59"
    CLASSES = "pascal_context_59"


@DATASETS.register_module()
class PascalContext459Dataset(OpenVocabSegDataset):
    """Pascal Context with all 459 classes; names from the root's classes.txt, 16-bit labels."""

    DATASET_NAME = "pascal_context_459"


@DATASETS.register_module()
class PascalVOC21Dataset(OpenVocabSegDataset):
    """Pascal VOC 2012 segmentation, background counted as a class (21 classes)."""

    DATASET_NAME = "pascal_voc_21"
    CLASSES = "pascal_voc_21"


@DATASETS.register_module()
class PascalVOC20Dataset(OpenVocabSegDataset):
    """Pascal VOC 2012 segmentation on the same files as VOC-21, background ignored."""

    DATASET_NAME = "pascal_voc_20"
    CLASSES = "pascal_voc_20"
    SOURCE_LABEL_MAP = _shift_down(20)
