"""Mask2Former's pixel decoder: a multi-scale deformable-attention encoder over strides 8/16/32
(mmcv `MultiScaleDeformableAttention`) and an FPN step to stride 4 giving the mask features."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from torch import Tensor, nn

from segmentation.models.deformable import (
    DeformableLayer,
    flatten_maps,
    grid_reference_points,
    sine_position_encoding,
    unflatten_tokens,
)


class DeformablePixelDecoder(nn.Module):
    """Stride 4/8/16/32 maps -> mask features (stride 4) and [stride 32, 16, 8] decoder inputs."""

    def __init__(
        self,
        in_channels: Sequence[int],
        channels: int = 256,
        mask_channels: int = 256,
        num_layers: int = 6,
        num_heads: int = 8,
        num_points: int = 4,
        ffn_channels: int = 1024,
        dropout: float = 0.0,
        num_groups: int = 32,
    ) -> None:
        super().__init__()
        if len(in_channels) != 4:
            raise ValueError(f"the pixel decoder needs 4 input maps, got {len(in_channels)}")
        norm_cfg = dict(type="GN", num_groups=num_groups)
        self.input_projections = nn.ModuleList(
            ConvModule(c, channels, 1, norm_cfg=norm_cfg, act_cfg=None) for c in in_channels[1:]
        )
        self.level_embed = nn.Parameter(torch.randn(3, channels))
        self.layers = nn.ModuleList(
            DeformableLayer(channels, num_heads, 3, num_points, ffn_channels, dropout)
            for _ in range(num_layers)
        )
        self.lateral = ConvModule(in_channels[0], channels, 1, norm_cfg=norm_cfg, act_cfg=None)
        self.output = ConvModule(channels, channels, 3, padding=1, norm_cfg=norm_cfg)
        self.mask_projection = nn.Conv2d(channels, mask_channels, 1)

    def forward(self, features: Sequence[Tensor]) -> tuple[Tensor, list[Tensor]]:
        projected = [proj(f) for proj, f in zip(self.input_projections, features[1:], strict=True)]
        tokens, shapes, starts = flatten_maps(projected)
        position = self._position(shapes, tokens)
        reference = grid_reference_points(shapes)[None, :, None].expand(len(tokens), -1, 3, -1)
        for layer in self.layers:
            tokens = layer(tokens, tokens, reference, shapes, starts, query_pos=position)
        stride8, stride16, stride32 = unflatten_tokens(tokens, shapes)
        upsampled = F.interpolate(
            stride8, size=features[0].shape[-2:], mode="bilinear", align_corners=False
        )
        stride4 = self.output(self.lateral(features[0]) + upsampled)
        return self.mask_projection(stride4), [stride32, stride16, stride8]

    def _position(self, shapes: Tensor, tokens: Tensor) -> Tensor:
        channels = tokens.shape[-1]
        per_level = [
            sine_position_encoding(int(h), int(w), channels, tokens.device) + self.level_embed[i]
            for i, (h, w) in enumerate(shapes.tolist())
        ]
        return torch.cat(per_level)[None].expand(len(tokens), -1, -1)
