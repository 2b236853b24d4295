"""One ignore index everywhere: dataset configs, crops, the data preprocessor's padding, metric."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmseg.registry import METRICS, MODELS, TRANSFORMS

import segmentation  # noqa: F401  (registers the plugin)
from segmentation.datasets import IGNORE_INDEX

CONFIGS = Path(__file__).resolve().parents[3] / "segmentation" / "configs"
DATASET_CONFIGS = sorted((CONFIGS / "_base_/datasets").glob("*.py"))


def _dicts(node):
    """Every dict inside a config value, depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _dicts(value)
    elif isinstance(node, list | tuple):
        for value in node:
            yield from _dicts(value)


def _default_ignore_index(type_name: str | None) -> int | None:
    """The `ignore_index` a registered transform or metric takes when the config names none
    (None: it has no such argument), e.g. 255 for MMSeg's RandomCrop."""
    if not isinstance(type_name, str):
        return None
    cls = TRANSFORMS.get(type_name) or METRICS.get(type_name)
    if cls is None:
        return None
    parameter = inspect.signature(cls).parameters.get("ignore_index")
    if parameter is None or parameter.default is inspect.Parameter.empty:
        return None
    return parameter.default


def _wrong_ignore_indices(cfg: dict) -> list[dict]:
    """Config nodes whose ignore index, given or defaulted, is not IGNORE_INDEX."""
    wrong = []
    for node in _dicts(cfg):
        value = node.get("ignore_index", _default_ignore_index(node.get("type")))
        if (value is not None or "ignore_index" in node) and value != IGNORE_INDEX:
            wrong.append(node)
    return wrong


def test_the_dataset_configs_are_found_from_any_working_directory() -> None:
    assert {"ade20k_847", "coco_stuff_171", "demo"} <= {path.stem for path in DATASET_CONFIGS}


def test_a_crop_relying_on_mmseg_default_ignore_index_is_wrong() -> None:
    crop = {"type": "RandomCrop", "crop_size": (64, 64), "cat_max_ratio": 0.75}
    metric = {"type": "OpenIoUMetric"}  # its default is IGNORE_INDEX
    assert _wrong_ignore_indices({"train_pipeline": [crop], "test_evaluator": metric}) == [crop]
    assert _wrong_ignore_indices({"train_pipeline": [{**crop, "ignore_index": 65535}]}) == []


@pytest.mark.parametrize("path", DATASET_CONFIGS, ids=lambda path: path.stem)
def test_dataset_configs_load_16_bit_safe_and_ignore_65535(path) -> None:
    cfg = Config.fromfile(path).to_dict()
    types = [node.get("type") for node in _dicts(cfg)]
    assert "LoadAnnotations" not in types
    if "test_dataloader" in cfg:
        assert "LoadLabelMap" in types
    assert _wrong_ignore_indices(cfg) == [], path.name


def test_ignore_from_an_8_bit_file_and_padding_share_one_value(tmp_path) -> None:
    from PIL import Image

    # 15:1, so every random resize leaves it under 640 high: the 640 crop keeps all rows and the
    # preprocessor pads the bottom.
    Image.fromarray(np.full((20, 300, 3), 90, np.uint8)).save(tmp_path / "img.jpg")
    labels = np.full((20, 300), 170, np.uint8)
    labels[:5] = 255  # the prepared 8-bit maps' ignore value
    Image.fromarray(labels).save(tmp_path / "img.png")
    dataset_cfg = Config.fromfile(CONFIGS / "_base_/datasets/coco_stuff_171.py")
    pipeline = Compose([TRANSFORMS.build(step) for step in dataset_cfg.train_pipeline])
    np.random.seed(0)  # MMCV's random resize and crop draw from numpy's global generator
    packed = pipeline(
        {
            "img_path": str(tmp_path / "img.jpg"),
            "seg_map_path": str(tmp_path / "img.png"),
            "num_classes": 171,
            "seg_fields": [],
            "reduce_zero_label": False,
        }
    )
    model_cfg = Config.fromfile(CONFIGS / "_base_/models/llmformer_vitl14_336.py")
    preprocessor = MODELS.build(model_cfg.data_preprocessor)
    batch = preprocessor(
        {"inputs": [packed["inputs"]], "data_samples": [packed["data_samples"]]}, training=True
    )
    gt = batch["data_samples"][0].gt_sem_seg.data
    assert gt.dtype == torch.int64 and tuple(gt.shape[-2:]) == (640, 640)
    height = packed["data_samples"].gt_sem_seg.data.shape[-2]
    assert height < 640 and set(gt.unique().tolist()) == {170, IGNORE_INDEX}
    assert (gt[0, 0] == IGNORE_INDEX).all()  # from the file
    assert (gt[0, height - 1] == 170).all()
    assert (gt[0, height:] == IGNORE_INDEX).all()  # padding
