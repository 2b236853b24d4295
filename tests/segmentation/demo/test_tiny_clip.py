"""The demo world's tiny CLIP: pairs of every shape from their own stream, built once, reused."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from segmentation.demo import DemoSpec, generate_image
from segmentation.demo.scenes import SHAPES
from segmentation.demo.tiny_clip import (
    BUILD_FILE,
    TinyCLIPSpec,
    ensure_tiny_clip,
    make_pair,
    multi_positive_loss,
)

SMALL = TinyCLIPSpec(
    num_pairs=16,
    steps=2,
    batch_size=8,
    zero_shot_images=3,
    vision=dict(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=64,
        patch_size=8,
        projection_dim=8,
    ),
    text=dict(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=32,
        projection_dim=8,
    ),
    projection_dim=8,
)


def test_pairs_cover_every_shape_with_plain_captions_and_no_demo_image() -> None:
    pairs = [make_pair(1000, index, 64) for index in range(200)]
    named = {shape for _, text, _ in pairs for shape in SHAPES if shape in text}
    assert named == set(SHAPES)
    assert all(text.split()[0] in {"a", "an", "this", "there"} for _, text, _ in pairs)
    for _, text, shapes in pairs:
        assert shapes.split() == sorted(shape for shape in SHAPES if f" {shape}" in f" {text}")
    demo = [generate_image(DemoSpec(seed=1000), split, 0).image for split in ("train", "val")]
    assert not any(np.array_equal(pairs[0][0], image) for image in demo)
    assert make_pair(1000, 3, 64)[1] == pairs[3][1]


def test_multi_positive_loss_is_clip_loss_without_duplicates_and_spreads_over_them() -> None:
    logits = torch.randn(5, 5)
    clip_loss = (
        F.cross_entropy(logits, torch.arange(5)) + F.cross_entropy(logits.T, torch.arange(5))
    ) / 2
    assert multi_positive_loss(logits, torch.eye(5, dtype=torch.bool)) == pytest.approx(
        float(clip_loss), rel=1e-6
    )
    same_set = torch.tensor([[1, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=torch.bool)
    tied = torch.tensor([[0.0, 0.0, -100.0], [0.0, 0.0, -100.0], [-100.0, -100.0, 0.0]])
    assert multi_positive_loss(tied, same_set) == pytest.approx(2 * np.log(2) / 3, rel=1e-5)


def test_the_tiny_clip_is_built_once_and_rebuilt_when_its_spec_changes(tmp_path) -> None:
    record = ensure_tiny_clip(tmp_path, SMALL)
    assert (tmp_path / "config.json").exists() and (tmp_path / "tokenizer.json").exists()
    assert set(record["zero_shot"]) == {"crop", "dense"}
    assert set(record["zero_shot"]["dense"]) == {"seen", "unseen"}
    weights = tmp_path / "model.safetensors"
    built = weights.stat().st_mtime_ns
    assert ensure_tiny_clip(tmp_path, SMALL) == record
    assert weights.stat().st_mtime_ns == built
    other = replace(SMALL, steps=3)
    assert json.loads(ensure_tiny_clip(tmp_path, other)["spec"])["steps"] == 3
    assert json.loads((tmp_path / BUILD_FILE).read_text())["spec"] == other.key()
