"""The demo's tiny LLMFormer config, shrunk further for unit tests, with random weights; and
hand-built data samples."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import segmentation  # noqa: F401  (registers the plugin)
from segmentation.transforms.priors import PriorGraph

TINY_CONFIG = Path(__file__).resolve().parents[3] / "segmentation/configs/llmformer_tiny_demo.py"
TEXT_DIMS = 16
WIDTH = 16
NUM_CLASSES = 4

UNIT_TEST_SIZES = dict(
    backbone=dict(
        vision_tower=dict(
            vision_config=dict(
                hidden_size=16,
                intermediate_size=32,
                image_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
            ),
            layer_indices=[1, 2],
            pretrained=None,
        ),
        embed_dim=WIDTH,
        spm_inplanes=4,
    ),
    decode_head=dict(
        in_channels=[WIDTH] * 4,
        channels=WIDTH,
        num_classes=NUM_CLASSES,
        text_embed_dims=TEXT_DIMS,
        num_queries=6,
        ffn_channels=32,
        pixel_decoder=dict(ffn_channels=32),
        train_cfg=dict(num_points=256),
        prior_class_boost=0.0,
        name_pointer=None,
    ),
    text_encoder=dict(
        _delete_=True,
        type="MiniLMTextEncoder",
        config_overrides=dict(
            num_hidden_layers=1, hidden_size=TEXT_DIMS, num_attention_heads=2, intermediate_size=32
        ),
    ),
    clip_classifier=None,
    training_classes=None,
    prior_dropout=None,
    train_prior_path_only=False,
    vocabulary=["sky", "grass", "dog", "sofa"],
)
"""What the unit tests change in the demo config's model: narrower, random weights, a 16-d
random text encoder (no tiny CLIP folder needed), the CLIP classifier, the prior boost, the name
pointer and prior dropout off (tests of those switch them on), every weight trainable."""


@cache
def _demo_model_cfg() -> dict:
    return Config.fromfile(str(TINY_CONFIG)).model.to_dict()


RICH_PRIORS = PriorGraph(
    objects=("dog", "sofa", "ball"),
    attributes=((0, "brown"), (1, "red"), (2, "small")),
    relations=((0, "on", 1), (2, "under", 1)),
)


def tiny_model_cfg(**head_overrides) -> dict:
    """The demo config's model with UNIT_TEST_SIZES merged in, then `head_overrides`."""
    cfg = Config(dict(model=copy.deepcopy(_demo_model_cfg())))
    cfg.merge_from_dict(dict(model=copy.deepcopy(UNIT_TEST_SIZES)))
    cfg.merge_from_dict(
        {f"model.decode_head.{key}": value for key, value in head_overrides.items()}
    )
    return cfg.model.to_dict()


def open_prior_gates(model: torch.nn.Module) -> None:
    """Give the prior path's gates and relation scalars (closed at init, so that training on top
    of a prior-free model starts from it) random values, as a trained prior path has."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith(".gate") or ".relation_to_heads." in name:
                parameter.normal_(0.0, 1.0)


def build_model(seed: int = 0, **head_overrides):
    """The tiny LLMFormer from its config, with weights fixed by `seed` and its prior gates open."""
    init_default_scope("mmseg")
    torch.manual_seed(seed)
    model = MODELS.build(tiny_model_cfg(**head_overrides))
    open_prior_gates(model)
    return model


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
    open_prior_gates = staticmethod(open_prior_gates)
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
