"""`OpenIoUMetric`: mIoU and Open-mIoU in one pass, exact at any class count and ignore value.

Registered in MMSeg's METRICS. Per image it keeps only the non-zero cells of the confusion matrix,
so ADE20K-847 stays cheap; pixel counts are int64 (MMSeg's `IoUMetric` counts with float32
histograms). A prediction whose metainfo `vocabulary` (the names its ids refer to, set by the
segmentor) differs from the dataset's classes, as in vocabulary-free mode, is mapped id by id to
the dataset class whose name embeds closest; its background class (what the image's priors left
unnamed) counts as no prediction unless the dataset has a background class. Names are embedded
with the evaluated model's own text encoder (`EvaluatorTextEncoderHook` hands it over), so the
metric compares names in the space the model classified them in.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log
from mmseg.registry import METRICS
from PIL import Image

from segmentation.datasets.constants import IGNORE_INDEX
from segmentation.evaluation.confusion import (
    ClassPixelCounts,
    accuracy_per_class,
    class_pixel_counts,
    class_similarity,
    confusion_matrix,
    iou_per_class,
    open_iou_per_class,
)
from segmentation.text.encoders import TextEncoder
from segmentation.text.vocabulary import is_background

RECOGNISED_SHARE = 0.5
"""A class in an image's ground truth counts as recognised there when at least this share of its
pixels is predicted as it: the object is named right, whatever its outline."""


def _image_id(sample: dict, position: int) -> str:
    """The store's id of a sample's image: its `img_id`, else its file name, else its position."""
    if sample.get("img_id"):
        return str(sample["img_id"])
    return Path(sample["img_path"]).name if sample.get("img_path") else f"#{position}"


def _percent(values: np.ndarray) -> float:
    return round(float(np.nanmean(values)) * 100, 2) if np.isfinite(values).any() else float("nan")


@METRICS.register_module()
class OpenIoUMetric(BaseMetric):
    """aAcc, mIoU, mAcc and, given class similarities, Open-mIoU; seen/unseen mIoU when the
    dataset metainfo names `seen_classes` and `unseen_classes`, and with them `recognised_seen`
    and `recognised_unseen`: the percent of (image, class) ground-truth occurrences of the group
    with at least `RECOGNISED_SHARE` of their pixels predicted as that class.

    Args:
        ignore_index: label value left out of every count.
        similarity_file: a (K, K) `.npy` class-similarity matrix instead of the text encoder's.
        similarity_threshold: cosine similarity below which a wrong class earns no credit.
        output_dir: if set, each prediction (in dataset class ids) is saved there as a 16-bit
            PNG named by its image id, for independent checks and submissions.
    """

    def __init__(
        self,
        ignore_index: int = IGNORE_INDEX,
        similarity_file: str | None = None,
        similarity_threshold: float = 0.5,
        output_dir: str | None = None,
        collect_device: str = "cpu",
        prefix: str | None = None,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.ignore_index = ignore_index
        self.similarity_file = similarity_file
        self.similarity_threshold = similarity_threshold
        self.output_dir = output_dir
        self._encoder: TextEncoder | None = None
        self._embeddings: dict[str, np.ndarray] = {}
        self.per_class: dict[str, np.ndarray] = {}
        self.per_image: dict[str, ClassPixelCounts] = {}

    def set_text_encoder(self, encoder: TextEncoder) -> None:
        """Embed class names with `encoder` (the evaluated model's) from now on."""
        if encoder is not self._encoder:
            self._encoder = encoder
            self._embeddings = {}

    @property
    def num_classes(self) -> int:
        return len(self.dataset_meta["classes"])

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Keep each image's non-zero confusion cells as (flat index, count) pairs, with its id."""
        for sample in data_samples:
            pred = sample["pred_sem_seg"]["data"].squeeze(0).cpu().numpy()
            gt = sample["gt_sem_seg"]["data"].squeeze(0).cpu().numpy()
            names = sample.get("vocabulary")
            if names is not None and list(names) != list(self.dataset_meta["classes"]):
                pred = self.map_to_dataset_classes(pred, names)
            image_id = _image_id(sample, len(self.results))
            if self.output_dir is not None:
                self.save_prediction(pred, image_id)
            cells = confusion_matrix(pred, gt, self.num_classes, self.ignore_index).ravel()
            nonzero = np.flatnonzero(cells)
            self.results.append((nonzero, cells[nonzero], image_id))

    def save_prediction(self, pred: np.ndarray, image_id: str) -> None:
        path = Path(self.output_dir) / Path(image_id).with_suffix(".png")
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pred.astype(np.uint16)).save(path)

    def compute_metrics(self, results: list) -> dict[str, float]:
        """Metrics of the whole set; each image's class pixel counts are kept in `per_image`."""
        confusion = np.zeros(self.num_classes * (self.num_classes + 1), dtype=np.int64)
        self.per_image = {}
        for indices, counts, image_id in results:
            confusion[indices] += counts
            self.per_image[image_id] = class_pixel_counts(indices, counts, self.num_classes)
        confusion = confusion.reshape(self.num_classes, self.num_classes + 1)
        return {**self.summarize(confusion), **self._group_recognition()}

    def summarize(self, confusion: np.ndarray) -> dict[str, float]:
        """Metrics (percent, 2 decimals) from a full confusion matrix; per-class IoUs are kept in
        `self.per_class` and logged."""
        total = confusion.sum()
        self.per_class = {"IoU": iou_per_class(confusion), "Acc": accuracy_per_class(confusion)}
        metrics = {
            "aAcc": round(
                float(np.trace(confusion[:, : self.num_classes]) / max(total, 1)) * 100, 2
            ),
            "mIoU": _percent(self.per_class["IoU"]),
            "mAcc": _percent(self.per_class["Acc"]),
        }
        similarity = self.class_similarity()
        if similarity is not None:
            self.per_class["Open-IoU"] = open_iou_per_class(confusion, similarity)
            metrics["Open-mIoU"] = _percent(self.per_class["Open-IoU"])
        metrics.update(self._group_means())
        self._log_per_class()
        return metrics

    def _group_rows(self) -> dict[str, list[int]]:
        """Class ids of the seen and unseen groups the metainfo names."""
        classes = list(self.dataset_meta["classes"])
        groups = {}
        for group in ("seen", "unseen"):
            names = self.dataset_meta.get(f"{group}_classes")
            if names:
                groups[group] = [classes.index(name) for name in names]
        return groups

    def _group_means(self) -> dict[str, float]:
        return {
            f"mIoU_{group}": _percent(self.per_class["IoU"][rows])
            for group, rows in self._group_rows().items()
        }

    def _group_recognition(self) -> dict[str, float]:
        """Per group, the percent of its ground-truth (image, class) occurrences recognised."""
        recognised = {}
        for group, rows in self._group_rows().items():
            hits = [
                float(hit >= RECOGNISED_SHARE * gt)
                for counts in self.per_image.values()
                for index, gt, hit in zip(
                    counts.classes, counts.gt_pixels, counts.intersection, strict=True
                )
                if gt > 0 and index in rows
            ]
            recognised[f"recognised_{group}"] = _percent(np.array(hits))
        return recognised

    def class_similarity(self) -> np.ndarray | None:
        """The (K, K) similarity matrix from the file or the text encoder; None without either."""
        if self.similarity_file is not None:
            similarity = np.load(self.similarity_file)
            expected = (self.num_classes, self.num_classes)
            if similarity.shape != expected or not np.allclose(np.diag(similarity), 1.0):
                raise ValueError(
                    f"similarity matrix {self.similarity_file} must be {expected} with ones on "
                    f"the diagonal, got {similarity.shape}"
                )
            return similarity
        if self._encoder is None:
            return None
        embeddings = self.embed(list(self.dataset_meta["classes"]))
        return class_similarity(embeddings, self.similarity_threshold)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-length text embeddings from the model's text encoder (memoised)."""
        if self._encoder is None:
            raise ValueError(
                "OpenIoUMetric has no text encoder to score named predictions with: add "
                "EvaluatorTextEncoderHook to custom_hooks (or call set_text_encoder)"
            )
        missing = [text for text in dict.fromkeys(texts) if text not in self._embeddings]
        if missing:
            self._embeddings.update(zip(missing, self._encoder(missing).cpu().numpy(), strict=True))
        return np.stack([self._embeddings[text] for text in texts])

    def map_to_dataset_classes(self, pred: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """Vocabulary-free ids -> the dataset class whose name embeds closest to each name;
        BACKGROUND_CLASS -> void (no prediction) where the dataset has no such class."""
        classes = list(self.dataset_meta["classes"])
        nearest = (self.embed(list(names)) @ self.embed(classes).T).argmax(1)
        if not any(is_background(name) for name in classes):
            unnamed = [is_background(name) for name in names]
            nearest[np.array(unnamed, dtype=bool)] = self.num_classes
        lookup = np.append(nearest, self.num_classes)  # ids that name nothing: void
        pred = pred.astype(np.int64)
        return lookup[np.where((pred >= 0) & (pred < len(names)), pred, len(names))]

    def _log_per_class(self) -> None:
        from prettytable import PrettyTable

        table = PrettyTable()
        table.add_column("Class", list(self.dataset_meta["classes"]))
        for name, values in self.per_class.items():
            table.add_column(name, np.round(values * 100, 2).tolist())
        print_log(
            "per class results:\n" + table.get_string(), logger=MMLogger.get_current_instance()
        )
