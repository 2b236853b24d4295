"""The MLLM's vision tower: a frozen CLIP ViT whose intermediate token maps feed the ViT-Adapter.

Weights come from a LLaVA checkpoint (its `vision_tower` tensors) or a CLIP checkpoint; both are
read as tensors only (safetensors, or `torch.load(weights_only=True)`), never as pickled objects.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor, nn

# Where the tower's tensors sit in LLaVA checkpoints (transformers' old and new layouts, the
# original repository) and CLIP checkpoints, with or without the `vision_model.` level that
# transformers 5 no longer has inside `CLIPVisionModel`.
TOWER_PREFIXES = tuple(
    outer + inner
    for outer in ("", "vision_tower.", "model.vision_tower.", "model.vision_tower.vision_tower.")
    for inner in ("vision_model.", "")
)
TOWER_MODULES = ("embeddings.", "pre_layrnorm.", "encoder.", "post_layernorm.")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")


def weight_files(checkpoint: Path, wanted: Callable[[str], bool], reader: str) -> list[Path]:
    """The weight files of a checkpoint file or folder that may hold the `wanted` keys (sharded
    indexes are followed); `reader` names what reads them, in the error for a missing one."""
    if checkpoint.is_file():
        return [checkpoint]
    if not checkpoint.is_dir():
        raise FileNotFoundError(
            f"{reader} checkpoint not found: {checkpoint} (a CLIP folder saved with "
            "save_pretrained; `llmformer demo` builds the demo config's tiny CLIP)"
        )
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = checkpoint / index_name
        if index.exists():
            weight_map = json.loads(index.read_text())["weight_map"]
            shards = {name for key, name in weight_map.items() if wanted(key)}
            return [checkpoint / name for name in sorted(shards)]
    files = sorted(p for p in checkpoint.iterdir() if p.name.endswith(WEIGHT_SUFFIXES))
    preferred = [p for p in files if p.suffix == ".safetensors"] or files
    if not preferred:
        raise FileNotFoundError(f"no weight files in {checkpoint}")
    return preferred


def _tower_key(key: str) -> str | None:
    """Map a checkpoint key to the CLIPVisionModel key, or None if it is not a tower weight."""
    for prefix in TOWER_PREFIXES:
        if key.startswith(prefix) and key[len(prefix) :].startswith(TOWER_MODULES):
            return key[len(prefix) :]
    return None


def _is_tower_key(key: str) -> bool:
    return _tower_key(key) is not None


def read_tensors(path: Path) -> dict[str, Tensor]:
    """A weight file's tensors, never its pickled objects."""
    if path.suffix == ".safetensors":
        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


def load_vision_tower_state(checkpoint: str | Path) -> dict[str, Tensor]:
    """Vision-tower tensors of a LLaVA or CLIP checkpoint, keyed as `CLIPVisionModel` expects."""
    state: dict[str, Tensor] = {}
    for path in weight_files(Path(checkpoint), _is_tower_key, "vision tower"):
        for key, tensor in read_tensors(path).items():
            tower_key = _tower_key(key)
            if tower_key is not None:
                state[tower_key] = tensor
    if not state:
        raise ValueError(f"no CLIP vision tower weights in {checkpoint}")
    return state


@dataclass(frozen=True)
class TowerStates:
    """One pass of the tower: every layer's tokens (CLS first; index 0 = embeddings) and the
    patch grid (rows, columns) they cover. The backbone and the CLIP classifier share it."""

    hidden: tuple[Tensor, ...]
    grid: tuple[int, int]


class CLIPVisionTower(nn.Module):
    """Frozen CLIP ViT returning the patch-token maps (B, C, ceil(H/p), ceil(W/p)) of layers.

    `layer_indices` index `hidden_states` (0 = embeddings, -2 = LLaVA's penultimate layer).
    Position embeddings are interpolated, so any input size works. Images are resized up to the
    next multiples of the patch size p (`fit_to_patches`), so a map covers exactly the input
    image: cell (i, j) sees pixels [i * H / rows, (i + 1) * H / rows) by [j * W / cols, ...),
    the convention of `F.interpolate` and of the adapter's normalised sampling. (The patch
    embedding alone drops the last H mod p rows and W mod p columns: at 640 px and p = 14 the
    map would cover 630 px and be stretched over 640.)
    """

    def __init__(
        self,
        vision_config: dict,
        layer_indices: Sequence[int],
        pretrained: str | None = None,
    ) -> None:
        super().__init__()
        from transformers import CLIPVisionConfig, CLIPVisionModel

        self.model = CLIPVisionModel(CLIPVisionConfig(**vision_config))
        self.layer_indices = tuple(layer_indices)
        self.patch_size = self.model.config.patch_size
        self.embed_dim = self.model.config.hidden_size
        if pretrained is not None:
            self.load_pretrained(pretrained)
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        self.eval()

    def load_pretrained(self, checkpoint: str | Path) -> None:
        state = load_vision_tower_state(checkpoint)
        missing, _ = self.model.load_state_dict(state, strict=False)
        missing = [key for key in missing if "position_ids" not in key]
        if missing:
            raise ValueError(
                f"{checkpoint} lacks {len(missing)} vision tower weights: {missing[:3]}"
            )

    def train(self, mode: bool = True) -> CLIPVisionTower:
        """Stay in eval mode: the tower is frozen."""
        return super().train(False)

    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        """Rows and columns of patch tokens for an image of this size."""
        return math.ceil(height / self.patch_size), math.ceil(width / self.patch_size)

    def fit_to_patches(self, images: Tensor) -> Tensor:
        """`images` resized (bilinear) up to the next multiples of the patch size, if needed."""
        rows, columns = self.grid_size(*images.shape[-2:])
        size = (rows * self.patch_size, columns * self.patch_size)
        if size == tuple(images.shape[-2:]):
            return images
        return F.interpolate(images, size=size, mode="bilinear", align_corners=False)

    @torch.no_grad()
    def run(self, images: Tensor) -> TowerStates:
        """Every layer's tokens for these images (resized up to whole patches)."""
        outputs = self.model(
            pixel_values=self.fit_to_patches(images),
            output_hidden_states=True,
            interpolate_pos_encoding=True,
        )
        return TowerStates(tuple(outputs.hidden_states), self.grid_size(*images.shape[-2:]))

    def maps(self, states: TowerStates) -> list[Tensor]:
        """The patch-token maps of `layer_indices` from one pass."""
        return [self._to_map(states.hidden[i], *states.grid) for i in self.layer_indices]

    def forward(self, images: Tensor) -> list[Tensor]:
        return self.maps(self.run(images))

    @staticmethod
    def _to_map(tokens: Tensor, height: int, width: int) -> Tensor:
        patches = tokens[:, 1:]
        return patches.transpose(1, 2).reshape(tokens.shape[0], -1, height, width)
