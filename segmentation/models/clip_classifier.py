"""The CLIP-aligned open-vocabulary classifier: frozen CLIP dense features, mask-pooled per query.

FC-CLIP (Yu et al., NeurIPS 2023) recognises unseen classes by pooling the frozen CLIP image
features under each predicted mask, projecting them into CLIP's joint space and scoring them
against CLIP text embeddings ("out-of-vocabulary" logits), then combining those with the learnt
("in-vocabulary") logits by a geometric ensemble whose weights differ for the classes of the
training vocabulary (alpha) and the rest (beta). Their tower is a ConvNeXt; ours is a ViT, whose
patch tokens are not aligned with text until the last layer pools them into the CLS token. We
take MaskCLIP's value path (Zhou et al., ECCV 2022): the last encoder layer runs with every token
attending only to itself (so the attention output is `out_proj(v_proj(ln1(x)))`), keeping each
patch's own content, then CLIP's `post_layernorm` and `visual_projection`, as the CLS token gets.
A ViT's dense map is as coarse as its patches; `dense_stride` below the patch size refines it by
running the tower again on the image shifted by sub-patch offsets and averaging, per finer cell,
the embeddings of every pass's patch that covers it (the demo's 8 px patches cover its smallest
shapes with one or two cells).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segmentation.models.clip_vision import (
    CLIPVisionTower,
    TowerStates,
    read_tensors,
    weight_files,
)
from segmentation.text.vocabulary import VocabularyEmbedding, max_over_synonyms

PROJECTION_KEYS = ("visual_projection.weight", "logit_scale")
CLIP_LOGIT_SCALE = 100.0
"""CLIP's trained temperature (its clamp), used until a checkpoint gives its own."""
ENSEMBLE_DEFAULTS = {"alpha": 0.4, "beta": 0.8}
"""FC-CLIP's weights of the CLIP logits for training-vocabulary classes (alpha) and the rest."""


def load_clip_projection(checkpoint: str | Path) -> dict[str, Tensor]:
    """`visual_projection.weight` and `logit_scale` of a CLIP checkpoint (file or folder)."""
    checkpoint = Path(checkpoint)
    files = weight_files(checkpoint, PROJECTION_KEYS.__contains__, "CLIP classifier")
    found: dict[str, Tensor] = {}
    for path in files:
        found.update({k: v for k, v in read_tensors(path).items() if k in PROJECTION_KEYS})
    missing = [key for key in PROJECTION_KEYS if key not in found]
    if missing:
        raise ValueError(f"{checkpoint} has no {missing}: the CLIP classifier needs a CLIPModel")
    return found


class CLIPDenseEmbedder(nn.Module):
    """Dense CLIP embeddings (B, D, H/s, W/s), unit length, of a frozen `CLIPVisionTower`.

    Holds only the checkpoint's `visual_projection` and `logit_scale` (frozen); the tower is
    passed to `forward`, so its weights are stored once, in the backbone. `dense_stride` s (a
    divisor of the patch size p; default p) costs (p / s)^2 passes of the tower, the first shared
    with the backbone.
    """

    def __init__(
        self,
        vision_width: int,
        embed_dim: int,
        checkpoint: str | None = None,
        dense_stride: int | None = None,
    ) -> None:
        super().__init__()
        if dense_stride is not None and dense_stride < 1:
            raise ValueError(f"clip_classifier dense_stride must be >= 1, got {dense_stride}")
        self.dense_stride = dense_stride
        self.visual_projection = nn.Linear(vision_width, embed_dim, bias=False)
        self.register_buffer("logit_scale", torch.tensor(math.log(CLIP_LOGIT_SCALE)))
        if checkpoint is not None:
            state = load_clip_projection(checkpoint)
            weight = state["visual_projection.weight"]
            if weight.shape != self.visual_projection.weight.shape:
                raise ValueError(
                    f"{checkpoint}: visual_projection is {tuple(weight.shape)}, the vision "
                    f"tower needs {tuple(self.visual_projection.weight.shape)} (embed x width)"
                )
            self.visual_projection.weight.data.copy_(weight)
            self.logit_scale.copy_(state["logit_scale"].reshape(()))
        self.visual_projection.requires_grad_(False)

    def stride(self, tower: CLIPVisionTower) -> int:
        """Pixels between dense cells: `dense_stride`, which must divide the tower's patch size."""
        stride = self.dense_stride or tower.patch_size
        if tower.patch_size % stride:
            raise ValueError(
                f"clip_classifier dense_stride {stride} must divide the CLIP tower's patch size "
                f"{tower.patch_size}"
            )
        return stride

    @torch.no_grad()
    def forward(
        self, tower: CLIPVisionTower, states: TowerStates, images: Tensor | None = None
    ) -> Tensor:
        """Embeddings from the tower's pass over `images` (`tower.run`) that the backbone reads
        too, so cell (i, j) covers the same pixels as the backbone's maps (refined `p / s` times
        per side); `images` are needed only for a `dense_stride` below the patch size."""
        maps = F.normalize(self._maps(tower, states), dim=1)
        stride = self.stride(tower)
        if stride == tower.patch_size:
            return maps
        if images is None:
            raise ValueError("a dense_stride below the patch size needs the images")
        averaged = self._shifted_mean(tower, tower.fit_to_patches(images), maps, stride)
        return F.normalize(averaged, dim=1)

    def _maps(self, tower: CLIPVisionTower, states: TowerStates) -> Tensor:
        vision = getattr(tower.model, "vision_model", tower.model)
        embeddings = dense_embeddings(vision, self.visual_projection, states.hidden[-2])
        return embeddings.transpose(1, 2).reshape(len(embeddings), -1, *states.grid)

    def _shifted_mean(
        self, tower: CLIPVisionTower, images: Tensor, unshifted: Tensor, stride: int
    ) -> Tensor:
        """Mean over the passes with the image moved down and right by every multiple of
        `stride` below the patch size: each pass's patch map, repeated to the finer grid and
        moved back, so a fine cell averages the patches of all passes that cover it. The moved
        images go through the tower as one batch (on a CPU, 3x faster than one call each for the
        demo)."""
        patch = tower.patch_size
        cells = patch // stride
        offsets = [(dy, dx) for dy in range(0, patch, stride) for dx in range(0, patch, stride)]
        moved = torch.cat([_moved(images, dy, dx) for dy, dx in offsets[1:]])
        passes = F.normalize(self._maps(tower, tower.run(moved)), dim=1).split(len(images))
        total = 0
        for (dy, dx), maps in zip(offsets, [unshifted, *passes], strict=True):
            fine = maps.repeat_interleave(cells, -2).repeat_interleave(cells, -1)
            total = total + _moved_back(fine, dy // stride, dx // stride)
        return total / cells**2


def _moved(images: Tensor, down: int, right: int) -> Tensor:
    """`images` moved down and right by whole pixels, the edge rows and columns repeated."""
    height, width = images.shape[-2:]
    return F.pad(images, (right, 0, down, 0), mode="replicate")[..., :height, :width]


def _moved_back(maps: Tensor, up: int, left: int) -> Tensor:
    """`maps` moved up and left by whole cells, the last rows and columns repeated."""
    return F.pad(maps, (0, left, 0, up), mode="replicate")[..., up:, left:]


def dense_embeddings(vision: nn.Module, visual_projection: nn.Linear, hidden: Tensor) -> Tensor:
    """Patch tokens (B, N, D) in CLIP's joint space, not normalised: the last layer's value path
    on its input `hidden` (CLS first), then `post_layernorm` and `visual_projection`."""
    tokens = self_attending_layer(vision.encoder.layers[-1], hidden)[:, 1:]
    return visual_projection(vision.post_layernorm(tokens))


def self_attending_layer(layer: nn.Module, hidden: Tensor) -> Tensor:
    """A CLIP encoder layer with each token attending only to itself (MaskCLIP's value path)."""
    attention = layer.self_attn
    values = attention.out_proj(attention.v_proj(layer.layer_norm1(hidden)))
    hidden = hidden + values
    return hidden + layer.mlp(layer.layer_norm2(hidden))


def mask_pool(dense: Tensor, mask_logits: Tensor) -> Tensor:
    """Mean of the dense features (B, D, h, w) under each mask (B, Q, H, W): (B, Q, D).

    Masks are binarised at logit 0 at their own resolution, as FC-CLIP's MaskPooling, and each
    feature cell is weighted by the share of its area the mask covers. FC-CLIP resizes the
    logits to the feature grid first; on a coarse grid (the demo's 8x8 cells of 8 px) that
    drops or shifts the masks of small objects (benchmarks/clip_diagnostic.py: on seed 7, CLIP
    on the predicted masks labels unseen shapes at 13.6 mIoU that way, 20.8 so). An empty mask
    pools to zeros."""
    masks = (mask_logits > 0).to(dense.dtype)
    weights = F.adaptive_avg_pool2d(masks, dense.shape[-2:])
    area = weights.sum(dim=(-2, -1), keepdim=True)
    return torch.einsum("bdhw,bqhw->bqd", dense, weights / (area + 1e-8))


def clip_logits(pooled: Tensor, vocabulary: VocabularyEmbedding, logit_scale: Tensor) -> Tensor:
    """CLIP's scaled cosine logits of pooled mask embeddings (..., D) against the vocabulary."""
    embedding = F.normalize(pooled, dim=-1)
    synonyms = embedding @ vocabulary.embeddings.to(embedding).T
    return logit_scale.exp() * max_over_synonyms(synonyms, vocabulary)


def geometric_ensemble(
    in_vocab_logits: Tensor, out_vocab_logits: Tensor, seen: Tensor, alpha: float, beta: float
) -> Tensor:
    """FC-CLIP's ensemble: log of p_in^(1-w) * p_out^w per class, w = alpha for training-vocabulary
    classes (`seen`, bool (C,)) and beta for the rest; void keeps p_in's void probability.

    `in_vocab_logits` (..., C + 1) has void last; `out_vocab_logits` (..., C) has none. Returns
    log-probabilities (..., C + 1). A class whose logits are -inf on both sides gets no share
    and no NaN: p_in ** (1 - w) * p_out ** w = 0, at w = 0 and 1 too."""
    p_in = in_vocab_logits[..., :-1].softmax(-1)
    p_out = out_vocab_logits.softmax(-1)
    weight = torch.where(seen.to(p_in.device), alpha, beta).to(p_in.dtype)
    ensembled = (p_in ** (1 - weight) * p_out**weight).log()
    void = in_vocab_logits.softmax(-1)[..., -1:]
    probabilities = torch.cat([ensembled.softmax(-1) * (1 - void), void], dim=-1)
    return torch.log(probabilities + 1e-8)
