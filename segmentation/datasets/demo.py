"""`LLMFormerDemoDataset`: the synthetic shape scenes written by `llmformer data demo`."""

from __future__ import annotations

import json
from pathlib import Path

from mmseg.registry import DATASETS

from segmentation.datasets.benchmarks import DataLayoutError, OpenVocabSegDataset


@DATASETS.register_module()
class LLMFormerDemoDataset(OpenVocabSegDataset):
    """Demo scenes; image ids are "<split>/<file name>", as stage 1 names the demo images.

    The metainfo adds `seen_classes` and `unseen_classes` from the generator's meta.json, so the
    metric can report seen and unseen mIoU apart.
    """

    DATASET_NAME = "demo"

    def __init__(self, data_root: str, split: str = "train", **kwargs) -> None:
        split_metainfo = self._class_split(Path(data_root))
        kwargs["metainfo"] = {**split_metainfo, **(kwargs.get("metainfo") or {})}
        super().__init__(data_root=data_root, split=split, img_suffix=".png", **kwargs)

    @staticmethod
    def _class_split(root: Path) -> dict:
        meta_path = root / "meta.json"
        if not meta_path.is_file():
            raise DataLayoutError(
                f"demo metadata not found: {meta_path} (generate it with `llmformer data demo`)"
            )
        meta = json.loads(meta_path.read_text())
        return {"seen_classes": meta["seen"], "unseen_classes": meta["unseen"]}

    def image_id(self, relative_path: str) -> str:
        return f"{self.split}/{relative_path}"
