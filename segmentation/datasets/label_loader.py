"""`LoadLabelMap`: a 16-bit-safe replacement for MMSeg's `LoadAnnotations`.

MMSeg's loader decodes label maps to 8 bits, which silently wraps the ids of 847- and 459-class
sets, and uses 255 as ignore, a real class there. This loader keeps every value, maps the file's
own ignore value (255 in 8-bit maps, 65535 in 16-bit maps) to `IGNORE_INDEX` and checks the map
against its image and the class count, naming the file when something is wrong.
"""

from __future__ import annotations

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS
from PIL import Image, UnidentifiedImageError

from segmentation.datasets.constants import EIGHT_BIT_IGNORE, IGNORE_INDEX


class LabelMapError(ValueError):
    """A label map that cannot be used as it is: unreadable, wrong size or out-of-range ids."""


def read_label_map(path: str) -> np.ndarray:
    """Decode an 8- or 16-bit single-channel PNG/TIFF into uint16 with IGNORE_INDEX as ignore."""
    try:
        with Image.open(path) as image:
            raw = np.asarray(image)
    except FileNotFoundError as error:
        raise LabelMapError(f"label map not found: {path}") from error
    except (UnidentifiedImageError, OSError) as error:
        raise LabelMapError(f"label map {path} cannot be decoded: {error}") from error
    if raw.ndim != 2:
        raise LabelMapError(f"label map {path} has shape {raw.shape}; expected one channel")
    if raw.dtype == np.uint8:
        labels = raw.astype(np.uint16)
        labels[raw == EIGHT_BIT_IGNORE] = IGNORE_INDEX
        return labels
    if raw.dtype.kind not in "ui" or raw.min() < 0 or raw.max() > IGNORE_INDEX:
        raise LabelMapError(f"label map {path} has dtype {raw.dtype}; expected 8 or 16 bits")
    return raw.astype(np.uint16)


def apply_label_map(labels: np.ndarray, label_map: dict[int, int] | None) -> np.ndarray:
    """Remap ids with a {source id: target id} dict; ids not in the dict keep their value."""
    if not label_map:
        return labels
    lookup = np.arange(IGNORE_INDEX + 1, dtype=np.uint16)
    for source, target in label_map.items():
        lookup[source] = target
    return lookup[labels]


def check_label_map(labels: np.ndarray, num_classes: int, path: str, image_shape=None) -> None:
    """Raise `LabelMapError` naming `path` if the map mismatches its image or the class count."""
    if image_shape is not None and tuple(labels.shape) != tuple(image_shape[:2]):
        raise LabelMapError(
            f"label map {path} is {labels.shape[0]}x{labels.shape[1]} but its image is "
            f"{image_shape[0]}x{image_shape[1]}"
        )
    out_of_range = (labels >= num_classes) & (labels != IGNORE_INDEX)
    if out_of_range.any():
        bad = sorted(int(value) for value in np.unique(labels[out_of_range])[:5])
        raise LabelMapError(
            f"label map {path} has ids {bad} outside 0..{num_classes - 1} "
            f"(ignore is {IGNORE_INDEX})"
        )


@TRANSFORMS.register_module()
class LoadLabelMap(BaseTransform):
    """Load `seg_map_path` into `gt_seg_map` (uint16, ignore = IGNORE_INDEX), checked.

    uint16 passes through cv2-based resizing, cropping and flipping unchanged; MMSeg's
    `PackSegInputs` turns it into the int64 `gt_sem_seg` tensor. Reads from the data info:
    `seg_map_path`, `num_classes`, optional `label_map` ({source id: target id}) and, when an
    image was loaded before, `ori_shape` to check the size against.
    """

    def __init__(self, validate: bool = True) -> None:
        super().__init__()
        self.validate = validate

    def transform(self, results: dict) -> dict:
        path = results["seg_map_path"]
        labels = apply_label_map(read_label_map(path), results.get("label_map"))
        if self.validate:
            check_label_map(labels, results["num_classes"], path, results.get("ori_shape"))
        results["gt_seg_map"] = labels
        results.setdefault("seg_fields", []).append("gt_seg_map")
        return results

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(validate={self.validate})"
