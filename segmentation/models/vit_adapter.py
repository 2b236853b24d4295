"""Backbone: the frozen CLIP vision tower plus a ViT-Adapter giving a stride 4/8/16/32 pyramid.

The adapter follows ViT-Adapter's spatial prior module and extractors: convolutional spatial
tokens at strides 8/16/32 gather from the ViT's token maps of several layers by deformable
attention. The tower is frozen and runs without gradients, so the adapter has no injector (which
would need gradients through the tower to train); see segmentation/README.md.
"""

from __future__ import annotations

import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_norm_layer
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import Tensor, nn

from segmentation.models.clip_vision import CLIPVisionTower, TowerStates
from segmentation.models.deformable import (
    DeformableLayer,
    flatten_maps,
    grid_reference_points,
    unflatten_tokens,
)


class SpatialPriorModule(nn.Module):
    """A convolutional stem giving `embed_dim`-channel maps at strides 4, 8, 16 and 32."""

    def __init__(self, inplanes: int, embed_dim: int, norm_cfg: dict) -> None:
        super().__init__()

        def conv(cin: int, cout: int, stride: int) -> ConvModule:
            return ConvModule(cin, cout, 3, stride=stride, padding=1, norm_cfg=norm_cfg)

        self.stem = nn.Sequential(
            conv(3, inplanes, 2),
            conv(inplanes, inplanes, 1),
            conv(inplanes, inplanes, 1),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )
        widths = (inplanes, 2 * inplanes, 4 * inplanes, 4 * inplanes)
        self.downs = nn.ModuleList(conv(widths[i], widths[i + 1], 2) for i in range(3))
        self.projections = nn.ModuleList(nn.Conv2d(width, embed_dim, 1) for width in widths)

    def forward(self, images: Tensor) -> list[Tensor]:
        maps = [self.stem(images)]
        for down in self.downs:
            maps.append(down(maps[-1]))
        return [projection(m) for projection, m in zip(self.projections, maps, strict=True)]


@MODELS.register_module()
class CLIPViTAdapter(BaseModule):
    """Frozen CLIP ViT + ViT-Adapter: images -> four `embed_dim` maps at strides 4/8/16/32.

    `vision_tower` configures `CLIPVisionTower` (its `layer_indices` pick one ViT layer per
    extractor, the last also added to every output when `add_vit_feature`).
    """

    def __init__(
        self,
        vision_tower: dict,
        embed_dim: int = 256,
        spm_inplanes: int = 64,
        num_heads: int = 8,
        num_points: int = 4,
        ffn_ratio: float = 2.0,
        add_vit_feature: bool = True,
        norm_cfg: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        norm_cfg = norm_cfg or dict(type="GN", num_groups=32)
        self.tower = CLIPVisionTower(**vision_tower)
        num_extractors = len(self.tower.layer_indices)
        self.spatial_prior = SpatialPriorModule(spm_inplanes, embed_dim, norm_cfg)
        self.vit_projections = nn.ModuleList(
            nn.Linear(self.tower.embed_dim, embed_dim) for _ in range(num_extractors)
        )
        self.extractors = nn.ModuleList(
            DeformableLayer(
                embed_dim, num_heads, 1, num_points, int(embed_dim * ffn_ratio), pre_norm=True
            )
            for _ in range(num_extractors)
        )
        self.upsample = nn.ConvTranspose2d(embed_dim, embed_dim, kernel_size=2, stride=2)
        self.vit_feature = (
            nn.Conv2d(self.tower.embed_dim, embed_dim, 1) if add_vit_feature else None
        )
        self.output_norms = nn.ModuleList(
            build_norm_layer(norm_cfg, embed_dim)[1] for _ in range(4)
        )
        self.out_channels = [embed_dim] * 4

    def forward(
        self, images: Tensor, tower_states: TowerStates | None = None
    ) -> tuple[Tensor, ...]:
        """`tower_states`: the frozen tower's pass over `images`, when the caller already ran
        it (the CLIP classifier reads the same pass); run here otherwise."""
        vit_maps = self.tower.maps(tower_states or self.tower.run(images))
        c1, *pyramid = self.spatial_prior(images)
        queries, shapes, _ = flatten_maps(pyramid)
        reference = grid_reference_points(shapes)[None, :, None].expand(len(images), -1, 1, -1)
        for extractor, projection, vit_map in zip(
            self.extractors, self.vit_projections, vit_maps, strict=True
        ):
            value, value_shape, value_start = flatten_maps([vit_map])
            queries = extractor(queries, projection(value), reference, value_shape, value_start)
        c2, c3, c4 = unflatten_tokens(queries, shapes)
        outputs = [c1 + self._resize(self.upsample(c2), c1), c2, c3, c4]
        if self.vit_feature is not None:
            vit_last = self.vit_feature(vit_maps[-1])
            outputs = [o + self._resize(vit_last, o) for o in outputs]
        return tuple(norm(o) for norm, o in zip(self.output_norms, outputs, strict=True))

    @staticmethod
    def _resize(source: Tensor, target: Tensor) -> Tensor:
        return F.interpolate(source, size=target.shape[-2:], mode="bilinear", align_corners=False)
