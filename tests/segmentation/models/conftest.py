"""A tiny LLMFormer built from a config with random weights, and hand-built data samples."""

from __future__ import annotations

import copy

import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import segmentation  # noqa: F401  (registers the plugin)
from segmentation.transforms.priors import PriorGraph

TEXT_DIMS = 16
WIDTH = 16
NUM_CLASSES = 4

TINY_TEXT_ENCODER = dict(
    type="MiniLMTextEncoder",
    config_overrides=dict(
        num_hidden_layers=1, hidden_size=TEXT_DIMS, num_attention_heads=2, intermediate_size=32
    ),
)

TINY_MODEL = dict(
    type="LLMFormer",
    data_preprocessor=dict(
        type="SegDataPreProcessor",
        mean=[122.7709, 116.7460, 104.0937],
        std=[68.5005, 66.6322, 70.3232],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=65535,
        size_divisor=32,
    ),
    backbone=dict(
        type="CLIPViTAdapter",
        vision_tower=dict(
            vision_config=dict(
                hidden_size=16,
                intermediate_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                image_size=32,
                patch_size=8,
            ),
            layer_indices=[1, 2],
        ),
        embed_dim=WIDTH,
        spm_inplanes=4,
        num_heads=2,
        num_points=2,
        norm_cfg=dict(type="GN", num_groups=4),
    ),
    decode_head=dict(
        type="LLMFormerHead",
        in_channels=[WIDTH] * 4,
        channels=WIDTH,
        num_classes=NUM_CLASSES,
        text_embed_dims=TEXT_DIMS,
        num_queries=6,
        num_layers=3,
        num_heads=2,
        ffn_channels=32,
        pixel_decoder=dict(num_layers=1, num_heads=2, num_points=2, ffn_channels=32, num_groups=4),
        ignore_index=65535,
        loss_decode=[
            dict(type="CrossEntropyLoss", loss_name="loss_cls_ce", loss_weight=2.0),
            dict(
                type="CrossEntropyLoss", use_sigmoid=True, loss_name="loss_mask_ce", loss_weight=5.0
            ),
            dict(
                type="DiceLoss",
                ignore_index=None,
                naive_dice=True,
                eps=1,
                loss_name="loss_mask_dice",
                loss_weight=5.0,
            ),
        ],
        train_cfg=dict(
            num_points=256,
            oversample_ratio=3.0,
            importance_sample_ratio=0.75,
            assigner=dict(
                type="HungarianAssigner",
                match_costs=[
                    dict(type="ClassificationCost", weight=2.0),
                    dict(type="CrossEntropyLossCost", weight=5.0, use_sigmoid=True),
                    dict(type="DiceCost", weight=5.0, pred_act=True, eps=1.0),
                ],
            ),
        ),
    ),
    text_encoder=TINY_TEXT_ENCODER,
    vocabulary=["sky", "grass", "dog", "sofa"],
    test_cfg=dict(mode="whole"),
)

RICH_PRIORS = PriorGraph(
    objects=("dog", "sofa", "ball"),
    attributes=((0, "brown"), (1, "red"), (2, "small")),
    relations=((0, "on", 1), (2, "under", 1)),
)


def tiny_model_cfg(**head_overrides) -> dict:
    cfg = copy.deepcopy(TINY_MODEL)
    cfg["decode_head"].update(head_overrides)
    return cfg


def build_model(seed: int = 0, **head_overrides):
    """The tiny LLMFormer from its config, with weights fixed by `seed`."""
    init_default_scope("mmseg")
    torch.manual_seed(seed)
    return MODELS.build(tiny_model_cfg(**head_overrides))


def make_samples(
    batch: int, height: int, width: int, priors: list[PriorGraph] | None = None, seed: int = 0
) -> list[SegDataSample]:
    """Samples with blocky random labels (each image has 2-3 classes) and the given priors."""
    generator = torch.Generator().manual_seed(seed)
    samples = []
    for index in range(batch):
        labels = torch.randint(0, NUM_CLASSES, (1, 2, 2), generator=generator)
        labels = labels.repeat_interleave(height // 2, 1).repeat_interleave(width // 2, 2)
        sample = SegDataSample(gt_sem_seg=PixelData(data=labels.long()))
        shape = (height, width)
        sample.set_metainfo(
            dict(ori_shape=shape, img_shape=shape, pad_shape=shape, padding_size=[0, 0, 0, 0])
        )
        sample.priors = priors[index] if priors is not None else RICH_PRIORS
        samples.append(sample)
    return samples


def make_images(batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, height, width, generator=generator)


class Tiny:
    """The helpers above for tests (pytest's importlib mode makes conftest non-importable)."""

    NUM_CLASSES = NUM_CLASSES
    TEXT_DIMS = TEXT_DIMS
    RICH_PRIORS = RICH_PRIORS
    model_cfg = staticmethod(tiny_model_cfg)
    build_model = staticmethod(build_model)
    make_samples = staticmethod(make_samples)
    make_images = staticmethod(make_images)


@pytest.fixture(autouse=True)
def single_thread():
    """Tiny models run fastest on one thread; two threads on shared cores spin-wait for each
    other (measured: 0.2 s vs. 3 s per training step)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny() -> type[Tiny]:
    return Tiny


@pytest.fixture(scope="module")
def model():
    return build_model()
