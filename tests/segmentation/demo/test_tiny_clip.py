"""The demo world's tiny CLIP: pairs of every shape from their own stream, built once, reused."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from segmentation.demo import DemoSpec, generate_image, tiny_clip
from segmentation.demo.generator import IMAGE_STREAMS, image_rng
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
    named = {shape for pair in pairs for shape in SHAPES if shape in pair.caption}
    assert named == set(SHAPES)
    assert all(pair.caption.split()[0] in {"a", "an", "this", "there"} for pair in pairs)
    for pair in pairs:
        caption = f" {pair.caption}"
        assert pair.shapes.split() == sorted(s for s in SHAPES if f" {s}" in caption)
    assert make_pair(1000, 3, 64).caption == pairs[3].caption


def test_pairs_draw_from_their_own_random_stream_never_a_demo_splits(monkeypatch) -> None:
    assert len(set(IMAGE_STREAMS.values())) == len(IMAGE_STREAMS)
    drawn = []

    def recorded(seed: int, stream: str, index: int) -> np.random.Generator:
        drawn.append((seed, stream, index))
        return image_rng(seed, stream, index)

    monkeypatch.setattr(tiny_clip, "image_rng", recorded)
    make_pair(1000, 7, 64)
    assert drawn == [(1000, "clip_pairs", 7)]


def test_each_region_is_a_visible_shape_with_its_own_phrase_from_the_caption() -> None:
    pairs = [make_pair(1000, index, 64) for index in range(100)]
    assert any(len(pair.regions) == 2 for pair in pairs)
    for pair in pairs:
        for shape, mask, phrase in pair.regions:
            assert mask.shape == (64, 64) and mask.any()
            assert phrase in pair.caption and shape in phrase.split()
            colours = pair.image[mask].astype(int)
            background = pair.image[~mask].astype(int)
            assert np.abs(colours.mean(0) - background.mean(0)).max() > 10


def test_region_weights_average_the_patches_each_region_covers(tmp_path) -> None:
    from segmentation.demo.tiny_clip import Regions, build_tokenizer

    pairs = [make_pair(1000, index, 64) for index in range(20)]
    tokenizer = build_tokenizer([pair.caption for pair in pairs], tmp_path)
    regions = Regions.of(pairs, tokenizer, grid=8)
    assert len(regions.pair) == sum(len(pair.regions) for pair in pairs)
    torch.testing.assert_close(regions.weights.sum(dim=1), torch.ones(len(regions.pair)))
    first_shape, first_mask, _ = pairs[0].regions[0]
    covered = first_mask.reshape(8, 8, 8, 8).any(axis=(1, 3)).flatten()
    assert torch.equal(regions.weights[0] > 0, torch.from_numpy(covered))
    assert int(regions.shape[0]) == SHAPES.index(first_shape)


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


def test_the_region_loss_trains_the_dense_value_path_not_the_last_attention(tmp_path) -> None:
    from segmentation.demo.tiny_clip import Regions, _region_loss, build_model, build_tokenizer

    pairs = [make_pair(1000, index, 64) for index in range(8)]
    tokenizer = build_tokenizer([pair.caption for pair in pairs], tmp_path)
    model = build_model(SMALL, tokenizer)
    regions = Regions.of(pairs, tokenizer, grid=8)
    batch = torch.tensor([0, 3, 5])
    tokens = tokenizer([pairs[i].caption for i in batch], padding=True, return_tensors="pt")
    pixels = torch.randn(3, 3, 64, 64)
    outputs = model(**tokens, pixel_values=pixels, output_hidden_states=True)
    loss = _region_loss(model, outputs, batch, regions)
    loss.backward()
    last = model.vision_model.encoder.layers[-1].self_attn
    assert loss.item() > 0
    assert last.v_proj.weight.grad.abs().sum() > 0
    assert last.q_proj.weight.grad is None and last.k_proj.weight.grad is None
    assert model.text_projection.weight.grad.abs().sum() > 0


def test_the_tokenizer_numbers_its_tokens_in_a_fixed_order(tmp_path) -> None:
    from segmentation.demo.tiny_clip import SPECIAL_TOKENS, build_tokenizer

    corpus = [make_pair(1000, index, 64).caption for index in range(50)]
    vocab = build_tokenizer(corpus, tmp_path / "a").get_vocab()
    assert build_tokenizer(corpus, tmp_path / "b").get_vocab() == vocab
    by_id = sorted(vocab, key=vocab.get)
    assert by_id[:2] == list(SPECIAL_TOKENS)
    assert by_id[2:] == sorted(by_id[2:])


def test_a_spec_whose_towers_disagree_on_shared_sizes_is_refused() -> None:
    with pytest.raises(ValueError, match=r"TinyCLIPSpec.text\['projection_dim'\] is 8, not 16"):
        replace(SMALL, projection_dim=16, vision={**SMALL.vision, "projection_dim": 16})
    with pytest.raises(ValueError, match=r"TinyCLIPSpec.vision\['image_size'\] is 64, not 32"):
        replace(SMALL, image_size=32)


def test_a_spec_that_leaves_a_shared_size_to_transformers_default_is_refused() -> None:
    text = {key: value for key, value in SMALL.text.items() if key != "projection_dim"}
    with pytest.raises(ValueError, match=r"TinyCLIPSpec.text\['projection_dim'\] is None, not 8"):
        replace(SMALL, text=text)


def test_only_named_streams_and_demo_splits_are_drawn() -> None:
    with pytest.raises(ValueError, match=r"unknown image stream 'test'"):
        image_rng(0, "test", 0)
    with pytest.raises(
        ValueError, match=r"unknown demo split 'clip_pairs'; known: \['train', 'val'\]"
    ):
        generate_image(DemoSpec(), "clip_pairs", 0)
