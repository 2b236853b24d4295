"""`LLMFormerDemoDataset`: the synthetic shape scenes written by `llmformer data demo`."""

from __future__ import annotations

import json
from pathlib import Path

from mmseg.registry import DATASETS

from segmentation.datasets.benchmarks import DataLayoutError, OpenVocabSegDataset


@DATASETS.register_module()
class LLMFormerDemoDataset(OpenVocabSegDataset):
    """Demo scenes; image ids are "<split>/<file name>", as stage 1 names the demo images.

    The metainfo adds `seen_classes` and `unseen_classes` (object shapes; background is neither)
    from the generator's meta.json, so the metric can report seen and unseen mIoU apart. The
    training split's vocabulary is the training classes alone (background and the seen shapes,
    whose ids come first), as COCO-Stuff's 171 names are all a real model trains with.
    """

    DATASET_NAME = "demo"

    def __init__(self, data_root: str, split: str = "train", **kwargs) -> None:
        meta = self._meta(Path(data_root))
        split_metainfo = {"seen_classes": meta["seen"], "unseen_classes": meta["unseen"]}
        if split == "train":
            train_classes = meta["train_classes"]
            split_metainfo.update(
                classes=tuple(train_classes), synonyms=[[name] for name in train_classes]
            )
        kwargs["metainfo"] = {**split_metainfo, **(kwargs.get("metainfo") or {})}
        super().__init__(data_root=data_root, split=split, img_suffix=".png", **kwargs)

    @staticmethod
    def _meta(root: Path) -> dict:
        meta_path = root / "meta.json"
        if not meta_path.is_file():
            raise DataLayoutError(
                f"demo metadata not found: {meta_path} (generate it with `llmformer data demo`)"
            )
        meta = json.loads(meta_path.read_text())
        if "train_classes" not in meta:
            raise DataLayoutError(
                f"{meta_path} predates the seen-only training vocabulary: regenerate the demo set"
            )
        return meta

    def image_id(self, relative_path: str) -> str:
        return f"{self.split}/{relative_path}"
