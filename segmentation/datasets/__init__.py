"""Open-vocabulary datasets registered in MMSeg, the 16-bit-safe label loader, the demo set."""

from segmentation.datasets.benchmarks import (
    ADE20K150Dataset,
    ADE20K847Dataset,
    COCOStuff171Dataset,
    DataLayoutError,
    OpenVocabSegDataset,
    PascalContext59Dataset,
    PascalContext459Dataset,
    PascalVOC20Dataset,
    PascalVOC21Dataset,
)
from segmentation.datasets.class_names import ClassNames, ClassNamesError
from segmentation.datasets.constants import IGNORE_INDEX
from segmentation.datasets.demo import LLMFormerDemoDataset
from segmentation.datasets.label_loader import LabelMapError, LoadLabelMap

__all__ = [
    "IGNORE_INDEX",
    "ADE20K150Dataset",
    "ADE20K847Dataset",
    "COCOStuff171Dataset",
    "ClassNames",
    "ClassNamesError",
    "DataLayoutError",
    "LLMFormerDemoDataset",
    "LabelMapError",
    "LoadLabelMap",
    "OpenVocabSegDataset",
    "PascalContext59Dataset",
    "PascalContext459Dataset",
    "PascalVOC20Dataset",
    "PascalVOC21Dataset",
]
