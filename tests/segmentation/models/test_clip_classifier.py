"""The CLIP-aligned classifier: checkpoint loading, MaskCLIP's value path, mask pooling, FC-CLIP's
ensemble; and the tiny CLIP folder read back by the code that reads a real CLIP checkpoint."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from segmentation.demo.scenes import BACKGROUND, SEEN_SHAPES
from segmentation.demo.tiny_clip import TinyCLIPSpec, build_model, build_tokenizer
from segmentation.models.clip_classifier import (
    CLIPDenseEmbedder,
    clip_logits,
    geometric_ensemble,
    load_clip_projection,
    mask_pool,
    self_attending_layer,
)
from segmentation.models.clip_vision import CLIPVisionTower
from segmentation.text.encoders import CLIPTextTower
from segmentation.text.vocabulary import VocabularyEmbedding

DEMO_CONFIG = Path(__file__).parents[3] / "segmentation/configs/llmformer_tiny_demo.py"
SMALL = TinyCLIPSpec(
    image_size=32,
    vision=dict(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
        projection_dim=12,
    ),
    text=dict(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=16,
        projection_dim=12,
    ),
    projection_dim=12,
)
CORPUS = ["a photo of a small hexagon.", "there is a red star in the scene", "a striped ring"]


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory) -> tuple[Path, object]:
    """A randomly initialised tiny CLIPModel saved with save_pretrained, and the model itself."""
    folder = tmp_path_factory.mktemp("tiny_clip")
    torch.manual_seed(0)
    tokenizer = build_tokenizer(CORPUS, folder)
    model = build_model(SMALL, tokenizer).eval()
    with torch.no_grad():
        model.logit_scale.fill_(2.5)
    model.save_pretrained(folder)
    return folder, model


def test_tiny_clip_folder_round_trips_through_the_real_checkpoint_loaders(clip_folder) -> None:
    folder, model = clip_folder
    tower = CLIPVisionTower(SMALL.vision, [-1], pretrained=str(folder))
    text = CLIPTextTower(model_path=str(folder))
    embedder = CLIPDenseEmbedder(tower.embed_dim, text.embed_dim, str(folder))
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        image_features = model.vision_model(pixel_values=pixels).pooler_output
        expected_image = F.normalize(model.visual_projection(image_features), dim=-1)
        tokens = text.tokenizer(CORPUS, padding=True, return_tensors="pt")
        text_hidden = model.text_model(**tokens).pooler_output
        expected_text = F.normalize(model.text_projection(text_hidden), dim=-1)
        pooled = tower.model(pixel_values=pixels).pooler_output
    image = F.normalize(embedder.visual_projection(pooled), dim=-1)
    torch.testing.assert_close(image, expected_image)
    torch.testing.assert_close(text(CORPUS), expected_text)
    torch.testing.assert_close(embedder.visual_projection.weight, model.visual_projection.weight)
    assert embedder.logit_scale.item() == pytest.approx(2.5)
    assert text.tokenizer.tokenize("hexagon") == ["hexagon</w>"]


def test_projection_loader_names_what_a_vision_only_checkpoint_lacks(tmp_path) -> None:
    from safetensors.torch import save_file

    save_file({"vision_model.post_layernorm.weight": torch.ones(4)}, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match=r"visual_projection\.weight"):
        load_clip_projection(tmp_path)


def test_projection_loader_opens_only_the_shard_a_torch_index_names(clip_folder, tmp_path) -> None:
    _, model = clip_folder
    state = model.state_dict()
    projection = {key: state[key] for key in ("visual_projection.weight", "logit_scale")}
    torch.save(projection, tmp_path / "shard-2.bin")
    (tmp_path / "shard-1.bin").write_bytes(b"not a tensor file: opening it fails")
    weight_map = dict.fromkeys(projection, "shard-2.bin") | {
        "text_projection.weight": "shard-1.bin"
    }
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": weight_map}))
    loaded = load_clip_projection(tmp_path)
    torch.testing.assert_close(
        loaded["visual_projection.weight"], state["visual_projection.weight"]
    )
    assert loaded["logit_scale"].item() == pytest.approx(2.5)


def test_a_projection_of_the_wrong_size_is_refused_by_its_shapes(clip_folder) -> None:
    folder, _ = clip_folder
    with pytest.raises(
        ValueError, match=r"visual_projection is \(12, 16\), the vision tower needs \(12, 32\)"
    ):
        CLIPDenseEmbedder(32, 12, str(folder))


def test_self_attending_layer_is_the_layer_run_on_each_token_alone(clip_folder) -> None:
    _, model = clip_folder
    layer = model.vision_model.encoder.layers[-1]
    hidden = torch.randn(1, 5, 16)
    with torch.no_grad():
        alone = torch.cat([layer(hidden[:, i : i + 1], None) for i in range(5)], dim=1)
        torch.testing.assert_close(self_attending_layer(layer, hidden), alone)


def test_dense_embeddings_cover_the_towers_patch_grid_with_unit_vectors(clip_folder) -> None:
    folder, _ = clip_folder
    tower = CLIPVisionTower(SMALL.vision, [-1], pretrained=str(folder))
    embedder = CLIPDenseEmbedder(tower.embed_dim, 12, str(folder))
    dense = embedder(tower, tower.run(torch.randn(2, 3, 30, 40)))
    assert dense.shape == (2, 12, 4, 5)
    torch.testing.assert_close(dense.norm(dim=1), torch.ones(2, 4, 5))


def test_a_finer_dense_stride_averages_every_shifted_pass_covering_a_cell(clip_folder) -> None:
    folder, _ = clip_folder
    tower = CLIPVisionTower(SMALL.vision, [-1], pretrained=str(folder))
    coarse = CLIPDenseEmbedder(tower.embed_dim, 12, str(folder))
    fine = CLIPDenseEmbedder(tower.embed_dim, 12, str(folder), dense_stride=4)
    torch.manual_seed(1)
    images = torch.randn(1, 3, 32, 32)
    dense = fine(tower, tower.run(images), images)
    assert dense.shape == (1, 12, 8, 8)

    def moved(down: int, right: int) -> torch.Tensor:
        """The image moved down and right, its first row and column repeated into the gap."""
        rows = torch.cat([images[..., :1, :].expand(-1, -1, down, -1), images], dim=-2)
        rows = rows[..., :32, :]
        return torch.cat([rows[..., :1].expand(-1, -1, -1, right), rows], dim=-1)[..., :32]

    for row, column in ((1, 1), (2, 5)):
        # the pass moved by (dy, dx) covers 4-px cell (row, column) with patch
        # ((row + dy / 4) // 2, (column + dx / 4) // 2)
        covering = [
            coarse(tower, tower.run(moved(dy, dx)))[
                0, :, (row + dy // 4) // 2, (column + dx // 4) // 2
            ]
            for dy in (0, 4)
            for dx in (0, 4)
        ]
        expected = F.normalize(torch.stack(covering).mean(dim=0), dim=0)
        torch.testing.assert_close(dense[0, :, row, column], expected)


def test_a_dense_stride_must_divide_the_patch_and_comes_with_the_images(clip_folder) -> None:
    folder, _ = clip_folder
    tower = CLIPVisionTower(SMALL.vision, [-1], pretrained=str(folder))
    with pytest.raises(
        ValueError, match="dense_stride 3 must divide the CLIP tower's patch size 8"
    ):
        CLIPDenseEmbedder(tower.embed_dim, 12, str(folder), dense_stride=3).stride(tower)
    fine = CLIPDenseEmbedder(tower.embed_dim, 12, str(folder), dense_stride=4)
    with pytest.raises(ValueError, match="needs the images"):
        fine(tower, tower.run(torch.randn(1, 3, 32, 32)))


def test_mask_pool_averages_exactly_the_patches_under_the_mask() -> None:
    dense = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(1, 2, 1, 1)
    dense[:, 1] *= -1
    mask_logits = torch.full((1, 2, 8, 8), -5.0)
    mask_logits[0, 0, 0:2, 2:4] = 5.0  # patch (0, 1) -> value 1
    mask_logits[0, 0, 4:6, 6:8] = 5.0  # patch (2, 3) -> value 11
    pooled = mask_pool(dense, mask_logits)
    torch.testing.assert_close(pooled[0, 0], torch.tensor([6.0, -6.0]))
    torch.testing.assert_close(pooled[0, 1], torch.zeros(2))


def test_mask_pool_weights_cells_by_the_share_of_them_a_mask_covers() -> None:
    dense = torch.arange(4.0).reshape(1, 1, 2, 2)
    mask_logits = torch.full((1, 2, 8, 8), -5.0)
    mask_logits[0, 0, 0:4, 0:4] = 5.0  # all of cell (0, 0), value 0
    mask_logits[0, 0, 0:2, 4:8] = 5.0  # half of cell (0, 1), value 1
    mask_logits[0, 1, 5:6, 6:7] = 5.0  # one pixel of cell (1, 1): a resize to 2x2 would lose it
    pooled = mask_pool(dense, mask_logits)
    torch.testing.assert_close(pooled[0, :, 0], torch.tensor([1 / 3, 3.0]))


def test_clip_logits_scale_the_best_synonym_cosine() -> None:
    vocabulary = VocabularyEmbedding(
        torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]), torch.tensor([0, 0, 1]), 2
    )
    logits = clip_logits(torch.tensor([[3.0, 4.0]]), vocabulary, torch.tensor(math.log(10.0)))
    torch.testing.assert_close(logits, torch.tensor([[10.0, 8.0]]))


def test_geometric_ensemble_equals_fc_clip_formula_on_hand_set_logits() -> None:
    in_vocab = torch.tensor([[2.0, 0.0, 1.0, 0.5]])  # three classes, void last
    out_vocab = torch.tensor([[0.0, 3.0, 1.0]])
    seen = torch.tensor([True, True, False])
    alpha, beta = 0.4, 0.8
    p_in = [math.exp(v) for v in (2.0, 0.0, 1.0)]
    p_in = [v / sum(p_in) for v in p_in]
    p_out = [math.exp(v) for v in (0.0, 3.0, 1.0)]
    p_out = [v / sum(p_out) for v in p_out]
    weights = (alpha, alpha, beta)
    mixed = [a ** (1 - w) * b**w for a, b, w in zip(p_in, p_out, weights, strict=True)]
    void = math.exp(0.5) / sum(math.exp(v) for v in (2.0, 0.0, 1.0, 0.5))
    expected = [m / sum(mixed) * (1 - void) for m in mixed] + [void]
    result = geometric_ensemble(in_vocab, out_vocab, seen, alpha, beta).exp()
    torch.testing.assert_close(result[0], torch.tensor(expected), atol=1e-6, rtol=1e-5)


def test_demo_config_matches_the_tiny_clip_and_trains_on_the_seen_classes() -> None:
    model = Config.fromfile(str(DEMO_CONFIG)).model
    assert model.backbone.vision_tower.vision_config.to_dict() == TinyCLIPSpec().vision
    assert model.text_encoder.type == "CLIPTextTower"
    assert model.text_encoder.model_path == model.clip_classifier.checkpoint
    assert model.training_classes == [BACKGROUND, *SEEN_SHAPES]
    assert model.decode_head.num_classes == len(model.training_classes)
    assert model.decode_head.text_embed_dims == TinyCLIPSpec().projection_dim
