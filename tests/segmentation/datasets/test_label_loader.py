"""LoadLabelMap keeps 16-bit ids, maps each file's ignore value to 65535 and names bad files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mmengine.dataset import Compose
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import TRANSFORMS

from segmentation.datasets import IGNORE_INDEX, LabelMapError, LoadLabelMap


def test_16_bit_ids_survive_where_mmseg_loader_wraps_them(tmp_path, write_labels) -> None:
    labels = np.array([[300, 846], [0, 65535]], dtype=np.uint16)
    path = str(write_labels(tmp_path / "a.png", labels))
    ours = LoadLabelMap()({"seg_map_path": path, "num_classes": 847})
    assert ours["gt_seg_map"].tolist() == [[300, 846], [0, IGNORE_INDEX]]
    stock = LoadAnnotations()({"seg_map_path": path, "reduce_zero_label": False, "seg_fields": []})
    assert stock["gt_seg_map"].tolist() == [[44, 78], [0, 255]]  # the silent wrap we replace


def test_8_bit_ignore_becomes_ignore_index(tmp_path, write_labels) -> None:
    path = str(write_labels(tmp_path / "a.png", np.array([[0, 149, 255]], dtype=np.uint8)))
    results = LoadLabelMap()({"seg_map_path": path, "num_classes": 150})
    assert results["gt_seg_map"].dtype == np.uint16
    assert results["gt_seg_map"].tolist() == [[0, 149, IGNORE_INDEX]]
    assert results["seg_fields"] == ["gt_seg_map"]


def test_label_map_remaps_source_ids(tmp_path, write_labels) -> None:
    path = str(write_labels(tmp_path / "a.png", np.array([[0, 1, 20, 255]], dtype=np.uint8)))
    label_map = {0: IGNORE_INDEX, **{k: k - 1 for k in range(1, 21)}}
    results = LoadLabelMap()({"seg_map_path": path, "num_classes": 20, "label_map": label_map})
    assert results["gt_seg_map"].tolist() == [[IGNORE_INDEX, 0, 19, IGNORE_INDEX]]


def test_label_out_of_class_range_names_the_file(tmp_path, write_labels) -> None:
    path = str(write_labels(tmp_path / "bad.png", np.array([[3, 151]], dtype=np.uint8)))
    with pytest.raises(LabelMapError, match=r"bad\.png has ids \[151\] outside 0\.\.149"):
        LoadLabelMap()({"seg_map_path": path, "num_classes": 150})


def test_label_of_wrong_size_names_the_file(tmp_path, write_labels) -> None:
    path = str(write_labels(tmp_path / "small.png", np.zeros((4, 5), dtype=np.uint8)))
    with pytest.raises(LabelMapError, match=r"small\.png is 4x5 but its image is 6x8"):
        LoadLabelMap()({"seg_map_path": path, "num_classes": 3, "ori_shape": (6, 8)})


def test_undecodable_and_missing_label_maps_name_the_file(tmp_path, write_labels) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(LabelMapError, match=r"broken\.png cannot be decoded"):
        LoadLabelMap()({"seg_map_path": str(broken), "num_classes": 3})
    with pytest.raises(LabelMapError, match=r"not found: .*absent\.png"):
        LoadLabelMap()({"seg_map_path": str(tmp_path / "absent.png"), "num_classes": 3})


def test_ignore_and_high_ids_flow_through_resize_crop_and_packing(
    tmp_path, write_image, write_labels
) -> None:
    image = write_image(tmp_path / "img.jpg", height=32, width=32)
    labels = np.full((32, 32), 700, dtype=np.uint16)
    labels[:, :16] = IGNORE_INDEX
    label_path = write_labels(tmp_path / "img.png", labels)
    pipeline = Compose(
        [
            TRANSFORMS.build(cfg)
            for cfg in (
                dict(type="LoadImageFromFile"),
                dict(type="LoadLabelMap"),
                dict(type="RandomResize", scale=(64, 64), ratio_range=(1.0, 1.0), keep_ratio=True),
                dict(
                    type="RandomCrop",
                    crop_size=(48, 48),
                    cat_max_ratio=0.9,
                    ignore_index=IGNORE_INDEX,
                ),
                dict(type="RandomFlip", prob=1.0),
                dict(type="PackSegInputs"),
            )
        ]
    )
    packed = pipeline(
        {
            "img_path": str(image),
            "seg_map_path": str(label_path),
            "num_classes": 847,
            "seg_fields": [],
            "reduce_zero_label": False,
        }
    )
    gt = packed["data_samples"].gt_sem_seg.data
    assert gt.dtype == torch.int64 and gt.shape == (1, 48, 48)
    assert set(gt.unique().tolist()) <= {700, IGNORE_INDEX}
    assert (gt == 700).any()
