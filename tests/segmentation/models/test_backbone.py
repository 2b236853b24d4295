"""The frozen CLIP tower (loaded from LLaVA- or CLIP-style checkpoints), the adapter's pyramid and
the deformable pixel decoder."""

from __future__ import annotations

import json
import math
import pickle

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from segmentation.models.clip_vision import CLIPVisionTower, load_vision_tower_state
from segmentation.models.pixel_decoder import DeformablePixelDecoder
from segmentation.models.vit_adapter import CLIPViTAdapter

VISION_CONFIG = dict(
    hidden_size=16,
    intermediate_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    image_size=32,
    patch_size=8,
)


def _tower(pretrained=None) -> CLIPVisionTower:
    return CLIPVisionTower(VISION_CONFIG, layer_indices=[1, 2], pretrained=pretrained)


@pytest.fixture(scope="module")
def source_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(7)
    return {key: value.clone() for key, value in _tower().model.state_dict().items()}


def _assert_loaded(tower: CLIPVisionTower, source: dict[str, torch.Tensor]) -> None:
    for key, value in tower.model.state_dict().items():
        torch.testing.assert_close(value, source[key], msg=key)


def test_tower_loads_from_a_llava_checkpoint_folder_with_shards(tmp_path, source_state) -> None:
    llava = {f"model.vision_tower.vision_model.{k}": v for k, v in source_state.items()}
    language = {"model.language_model.embed_tokens.weight": torch.zeros(4, 4)}
    save_file(llava, str(tmp_path / "model-00001-of-00002.safetensors"))
    save_file(language, str(tmp_path / "model-00002-of-00002.safetensors"))
    weight_map = {key: "model-00001-of-00002.safetensors" for key in llava}
    weight_map |= {key: "model-00002-of-00002.safetensors" for key in language}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    _assert_loaded(_tower(str(tmp_path)), source_state)


def test_tower_loads_the_vision_half_of_a_clip_checkpoint(tmp_path, source_state) -> None:
    clip = {f"vision_model.{k}": v for k, v in source_state.items()}
    clip["text_model.embeddings.token_embedding.weight"] = torch.zeros(3, 3)
    torch.save(clip, tmp_path / "pytorch_model.bin")
    state = load_vision_tower_state(tmp_path / "pytorch_model.bin")
    assert set(state) == set(source_state)
    _assert_loaded(_tower(str(tmp_path / "pytorch_model.bin")), source_state)


def test_tower_refuses_checkpoints_that_pickle_objects(tmp_path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"vision_model.embeddings.class_embedding": torch.zeros(16), "x": object()}, path)
    with pytest.raises(pickle.UnpicklingError):
        load_vision_tower_state(path)


def test_tower_reports_checkpoints_without_tower_weights(tmp_path) -> None:
    save_file({"lm_head.weight": torch.zeros(2, 2)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match="no CLIP vision tower weights"):
        load_vision_tower_state(tmp_path)
    with pytest.raises(FileNotFoundError, match="vision tower checkpoint not found"):
        load_vision_tower_state(tmp_path / "absent")


def test_tower_is_frozen_and_stays_in_eval_mode() -> None:
    tower = _tower()
    tower.train()
    assert not tower.training
    assert not any(p.requires_grad for p in tower.parameters())
    maps = tower(torch.randn(2, 3, 48, 64))
    assert [m.shape for m in maps] == [(2, 16, 6, 8)] * 2


def _patch_mean_tower(patch_size: int) -> CLIPVisionTower:
    """A tower whose embedding tokens (layer 0) are per-patch channel means: the patch
    embedding averages input channel c into token channel c; no position embedding, no norm."""
    config = dict(VISION_CONFIG, hidden_size=4, num_attention_heads=1, patch_size=patch_size)
    tower = CLIPVisionTower(config, layer_indices=[0])
    # the module holding embeddings and pre_layrnorm (transformers versions nest it differently)
    (vit,) = [m for m in tower.model.modules() if hasattr(m, "pre_layrnorm")]
    vit.pre_layrnorm = nn.Identity()
    with torch.no_grad():
        for parameter in vit.embeddings.parameters():
            parameter.zero_()
        for channel in range(3):
            vit.embeddings.patch_embedding.weight[channel, channel] = 1 / patch_size**2
    return tower


def test_tower_cells_are_the_means_of_their_patches_of_pixels() -> None:
    tower = _patch_mean_tower(patch_size=14)
    images = torch.randn(1, 3, 28, 56)
    (tokens,) = tower(images)
    assert tokens.shape == (1, 4, 2, 4)
    blocks = images.unfold(2, 14, 14).unfold(3, 14, 14).mean((-2, -1))  # pixels [14i, 14i+14)
    torch.testing.assert_close(tokens[:, :3], blocks)


@pytest.mark.parametrize(("height", "width"), [(640, 640), (480, 640)])
def test_tower_maps_of_an_image_not_a_multiple_of_the_patch_cover_it_exactly(
    height: int, width: int
) -> None:
    """Channels 0 and 1 of the picture hold each pixel's centre coordinate (x, y), so a cell's
    mean is the pixel position of its centre: cell j of n must sit at (j + 0.5) * W / n."""
    tower = _patch_mean_tower(patch_size=14)
    x = (torch.arange(width) + 0.5).expand(height, width)
    y = (torch.arange(height) + 0.5)[:, None].expand(height, width)
    (tokens,) = tower(torch.stack([x, y, torch.zeros(height, width)])[None])
    rows, columns = math.ceil(height / 14), math.ceil(width / 14)
    assert tokens.shape == (1, 4, rows, columns)  # 640 px: 46 cells, not 45 covering 630 px
    centres_x = ((torch.arange(columns) + 0.5) * width / columns).expand(rows, columns)
    centres_y = ((torch.arange(rows) + 0.5) * height / rows)[:, None].expand(rows, columns)
    torch.testing.assert_close(tokens[0, 0], centres_x, atol=1e-3, rtol=0)
    torch.testing.assert_close(tokens[0, 1], centres_y, atol=1e-3, rtol=0)


@pytest.mark.parametrize(("height", "width"), [(64, 64), (96, 64)])
def test_adapter_gives_a_stride_4_to_32_pyramid(height: int, width: int) -> None:
    adapter = CLIPViTAdapter(
        dict(vision_config=VISION_CONFIG, layer_indices=[1, 2]),
        embed_dim=16,
        spm_inplanes=4,
        num_heads=2,
        num_points=2,
        norm_cfg=dict(type="GN", num_groups=4),
    )
    pyramid = adapter(torch.randn(2, 3, height, width))
    assert [p.shape for p in pyramid] == [
        (2, 16, height // stride, width // stride) for stride in (4, 8, 16, 32)
    ]


def test_pixel_decoder_gives_mask_features_and_three_scales() -> None:
    decoder = DeformablePixelDecoder(
        [8, 8, 8, 8],
        channels=16,
        mask_channels=12,
        num_layers=2,
        num_heads=2,
        num_points=2,
        ffn_channels=32,
        num_groups=4,
    )
    features = [torch.randn(2, 8, 64 // s, 96 // s) for s in (4, 8, 16, 32)]
    mask_features, scales = decoder(features)
    assert mask_features.shape == (2, 12, 16, 24)
    assert [s.shape for s in scales] == [(2, 16, 2, 3), (2, 16, 4, 6), (2, 16, 8, 12)]
