"""Helpers shared by the ViT-Adapter and the pixel decoder around mmcv's deformable attention."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from mmcv.cnn.bricks.transformer import FFN
from mmcv.ops import MultiScaleDeformableAttention
from torch import Tensor, nn


def flatten_maps(maps: Sequence[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """(B, C, H, W) maps -> tokens (B, sum HW, C), spatial shapes (L, 2), level start index (L,)."""
    shapes = torch.tensor([m.shape[-2:] for m in maps], dtype=torch.long, device=maps[0].device)
    tokens = torch.cat([m.flatten(2).transpose(1, 2) for m in maps], dim=1)
    starts = torch.cat([shapes.new_zeros(1), (shapes[:, 0] * shapes[:, 1]).cumsum(0)[:-1]])
    return tokens, shapes, starts


def unflatten_tokens(tokens: Tensor, shapes: Tensor) -> list[Tensor]:
    """Inverse of `flatten_maps` for the token part: (B, sum HW, C) -> list of (B, C, H, W)."""
    sizes = (shapes[:, 0] * shapes[:, 1]).tolist()
    batch, _, channels = tokens.shape
    return [
        chunk.transpose(1, 2).reshape(batch, channels, int(h), int(w))
        for chunk, (h, w) in zip(tokens.split(sizes, dim=1), shapes.tolist(), strict=True)
    ]


def grid_reference_points(shapes: Tensor) -> Tensor:
    """Normalised (x, y) centres of every cell of every level, shape (sum HW, 2), in [0, 1]."""
    points = []
    for height, width in shapes.tolist():
        ys, xs = torch.meshgrid(
            (torch.arange(height, device=shapes.device) + 0.5) / height,
            (torch.arange(width, device=shapes.device) + 0.5) / width,
            indexing="ij",
        )
        points.append(torch.stack([xs.flatten(), ys.flatten()], dim=-1))
    return torch.cat(points).float()


def sine_position_encoding(height: int, width: int, dim: int, device: torch.device) -> Tensor:
    """2D sine-cosine positional encoding (DETR style), shape (H*W, dim)."""
    quarter = dim // 4
    frequencies = 10000.0 ** (-torch.arange(quarter, device=device, dtype=torch.float) / quarter)
    ys = (torch.arange(height, device=device, dtype=torch.float) + 0.5) / height * 2 * math.pi
    xs = (torch.arange(width, device=device, dtype=torch.float) + 0.5) / width * 2 * math.pi
    y_angles = ys[:, None, None] * frequencies
    x_angles = xs[None, :, None] * frequencies
    encoding = torch.cat(
        [
            y_angles.sin().expand(height, width, quarter),
            y_angles.cos().expand(height, width, quarter),
            x_angles.sin().expand(height, width, quarter),
            x_angles.cos().expand(height, width, quarter),
        ],
        dim=-1,
    )
    padding = dim - 4 * quarter
    if padding:
        encoding = torch.cat([encoding, encoding.new_zeros(height, width, padding)], dim=-1)
    return encoding.flatten(0, 1)


class DeformableLayer(nn.Module):
    """Queries gather from multi-level values by deformable attention, then an FFN.

    Pre-norm (`pre_norm=True`, ViT-Adapter's extractor) or post-norm (the pixel decoder's
    encoder, Deformable DETR style).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        num_levels: int,
        num_points: int,
        ffn_channels: int,
        dropout: float = 0.0,
        pre_norm: bool = False,
    ) -> None:
        super().__init__()
        self.attention = MultiScaleDeformableAttention(
            embed_dims=dim,
            num_heads=num_heads,
            num_levels=num_levels,
            num_points=num_points,
            dropout=dropout,
            batch_first=True,
        )
        self.ffn = FFN(embed_dims=dim, feedforward_channels=ffn_channels, ffn_drop=dropout)
        self.attention_norm = nn.LayerNorm(dim)
        self.ffn_norm = nn.LayerNorm(dim)
        self.value_norm = nn.LayerNorm(dim) if pre_norm else nn.Identity()
        self.pre_norm = pre_norm

    def forward(
        self,
        query: Tensor,
        value: Tensor,
        reference_points: Tensor,
        spatial_shapes: Tensor,
        level_start_index: Tensor,
        query_pos: Tensor | None = None,
    ) -> Tensor:
        attend = dict(
            value=self.value_norm(value),
            identity=query,
            query_pos=query_pos,
            reference_points=reference_points,
            spatial_shapes=spatial_shapes,
            level_start_index=level_start_index,
        )
        if self.pre_norm:
            query = self.attention(self.attention_norm(query), **attend)
            return self.ffn(self.ffn_norm(query), identity=query)
        query = self.attention_norm(self.attention(query, **attend))
        return self.ffn_norm(self.ffn(query))
