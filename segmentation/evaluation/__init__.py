"""Evaluation: mIoU and Open-mIoU (`OpenIoUMetric`) and the per-dataset results table."""

from segmentation.evaluation.confusion import (
    class_similarity,
    confusion_matrix,
    iou_per_class,
    open_iou_per_class,
)
from segmentation.evaluation.metric import OpenIoUMetric
from segmentation.evaluation.table import EvalRow, EvalTable
from segmentation.evaluation.text_encoder_hook import EvaluatorTextEncoderHook

__all__ = [
    "EvalRow",
    "EvalTable",
    "EvaluatorTextEncoderHook",
    "OpenIoUMetric",
    "class_similarity",
    "confusion_matrix",
    "iou_per_class",
    "open_iou_per_class",
]
