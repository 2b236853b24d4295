"""LLMFormerHead: a Mask2Former-style open-vocabulary mask decoder guided by LLM priors.

Queries pass through `num_layers` decoder layers (semantic -> scaled visual -> relation
attention -> FFN); after the query init and after every layer, masks and class logits are
predicted (deep supervision). Classes are scored by cosine similarity with text embeddings of
whatever vocabulary the caller passes, times a learnt temperature, plus a learnt void class;
images with vocabularies of their own come with their union and `class_valid`, and the classes
outside an image's own get logit -inf.
Matching and losses are MMSeg's own (`MatchMasks`, `HungarianAssigner`, CE and Dice losses).

Two sources of open-vocabulary knowledge reach the class score when switched on: the CLIP-aligned
classifier (`clip_classifier`: mask-pooled frozen CLIP features against CLIP text embeddings,
FC-CLIP's geometric ensemble, at inference) and the LLM's object names, in training and at
inference alike, with fixed weights so training cannot learn to ignore them: `prior_class_boost`
lowers the classes no object prior of the image names, and `name_pointer` raises, per query, the
class of the object prior whose attribute words match it (`name_pointer.py`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from mmcv.ops import point_sample
from mmengine.dist import all_reduce
from mmengine.structures import InstanceData
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.utils import get_uncertain_point_coords_with_randomness
from mmseg.registry import MODELS
from mmseg.utils import ConfigType, MatchMasks, SampleList, seg_data_to_instance_data
from torch import Tensor, nn

from segmentation.models.clip_classifier import (
    CLIP_LOGIT_SCALE,
    ENSEMBLE_DEFAULTS,
    clip_logits,
    geometric_ensemble,
    mask_pool,
)
from segmentation.models.decoder_layers import (
    MLP,
    LayerInputs,
    LevelMemory,
    LLMFormerDecoderLayer,
)
from segmentation.models.deformable import sine_position_encoding
from segmentation.models.name_pointer import PriorNamePointer, pointed_class_mass
from segmentation.models.pixel_decoder import DeformablePixelDecoder
from segmentation.models.prior_encoder import PriorTensors
from segmentation.text.vocabulary import VocabularyEmbedding, max_over_synonyms

NUM_LEVELS = 3
NAME_POINTER_DEFAULTS = {"weight": 1.0, "floor": 0.05, "loss_weight": 1.0}
"""The name pointer's term in the class logits, weight * log((pointed mass + floor) / (1 + floor)),
0 where all the mass lands (as on every class of an image whose priors name nothing), and the
weight of its loss, -log(pointed mass on the matched class)."""
POINTER_LOSS_EPS = 1e-6
LOSS_NAMES = ("loss_cls_ce", "loss_mask_ce", "loss_mask_dice")


@dataclass(frozen=True)
class CLIPFeatures:
    """What the CLIP-aligned classifier reads: unit-length dense CLIP embeddings (B, D, h, w),
    CLIP's log logit scale, and which vocabulary classes the model was trained on (bool (C,))."""

    dense: Tensor
    logit_scale: Tensor
    seen: Tensor


@dataclass(frozen=True)
class PriorClassTerms:
    """What the LLM's object names add to the class logits (each term off when None):
    `presence` (B, C), 1 for a class the image's object priors name and for background (for
    every class of its vocabulary when they name none); `pointed` (B, Q, C), the name pointer's
    mass on each class."""

    presence: Tensor | None = None
    pointed: Tensor | None = None


@dataclass(frozen=True)
class HeadInputs:
    """Backbone maps (strides 4/8/16/32), the batch's prior embeddings, and the vocabulary (C
    classes; with per-image vocabularies, their union). `class_presence` (B, C), as
    `PriorClassTerms.presence`; `clip`: the CLIP classifier's inputs; `object_classes`
    (B, 1 + No, C): the classes the name pointer's null and each object prior stand for;
    `class_valid` (B, C): the classes of each image's own vocabulary (None: all of them)."""

    features: Sequence[Tensor]
    priors: PriorTensors
    vocabulary: VocabularyEmbedding
    class_presence: Tensor | None = None
    clip: CLIPFeatures | None = None
    object_classes: Tensor | None = None
    class_valid: Tensor | None = None


@dataclass(frozen=True)
class HeadOutputs:
    """Per prediction step (query init, then each layer): class logits (B, Q, C + 1), the last
    column void, -inf at classes outside an image's vocabulary; mask logits (B, Q, H/4, W/4);
    and what the LLM's names added to the class logits."""

    class_logits: list[Tensor]
    mask_logits: list[Tensor]
    prior_terms: list[PriorClassTerms]


def mask_invalid_classes(class_logits: Tensor, class_valid: Tensor | None) -> Tensor:
    """-inf at the classes (B, C) outside each image's vocabulary on (B, Q, C [+ void]) logits,
    so every softmax gives them exactly 0 and the others what their vocabulary alone gives."""
    if class_valid is None:
        return class_logits
    valid = F.pad(class_valid, (0, class_logits.shape[-1] - class_valid.shape[-1]), value=True)
    return class_logits.masked_fill(~valid[:, None], float("-inf"))


def _known_settings(switch: str, given: dict, defaults: dict[str, float]) -> dict[str, float]:
    """`given` over `defaults`; a key that `defaults` lacks (a typo) is refused by name."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(f"{switch} got unknown keys {unknown}; known: {sorted(defaults)}")
    return {**defaults, **given}


def _pointer_cfg(name_pointer: dict) -> dict[str, float]:
    """The name pointer's settings over NAME_POINTER_DEFAULTS; a floor that would let log(0)
    through is refused."""
    cfg = _known_settings("name_pointer", name_pointer, NAME_POINTER_DEFAULTS)
    if cfg["floor"] <= 0:
        raise ValueError(f"name_pointer floor must be > 0, got {cfg['floor']}")
    return cfg


def _ensemble_cfg(clip_classifier: dict) -> dict[str, float]:
    """The geometric ensemble's weights over FC-CLIP's; each is a share of the CLIP logits."""
    cfg = _known_settings("clip_classifier", clip_classifier, ENSEMBLE_DEFAULTS)
    for name, weight in cfg.items():
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"clip_classifier {name} must be in [0, 1], got {weight}")
    return cfg


@MODELS.register_module()
class LLMFormerHead(BaseDecodeHead):
    """Mask decoder with semantic, scaled visual and relation attention over LLM priors.

    `num_classes` is the training vocabulary's size (the vocabulary itself comes with each
    call); `text_embed_dims` is the text encoder's output size. With all three
    `use_*_attention` off, no boost and no name pointer, no prior reaches it: a plain
    Mask2Former-style open-vocabulary decoder. `clip_classifier` (dict(alpha=, beta=), see
    ENSEMBLE_DEFAULTS) turns the CLIP ensemble on; `prior_class_boost` > 0 adds
    `boost * (presence - 1)` to every class logit; `name_pointer` (dict(weight=, floor=,
    loss_weight=), see NAME_POINTER_DEFAULTS) turns the prior name pointer on.
    `init_cfg` defaults to None: BaseDecodeHead's default initialises `conv_seg`, which a
    mask-classification head does not have.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        channels: int,
        num_classes: int,
        text_embed_dims: int,
        num_queries: int = 100,
        num_layers: int = 9,
        num_heads: int = 8,
        ffn_channels: int = 2048,
        attention_dropout: float = 0.0,
        pixel_decoder: dict | None = None,
        use_semantic_attention: bool = True,
        use_scaled_visual_attention: bool = True,
        use_relation_attention: bool = True,
        logit_scale_init: float = math.log(1 / 0.07),
        logit_scale_max: float = math.log(CLIP_LOGIT_SCALE),
        void_class_weight: float = 0.1,
        clip_classifier: dict | None = None,
        prior_class_boost: float = 0.0,
        name_pointer: dict | None = None,
        train_cfg: ConfigType | None = None,
        init_cfg: dict | None = None,
        **kwargs,
    ) -> None:
        super().__init__(
            init_cfg=init_cfg,
            in_channels=list(in_channels),
            channels=channels,
            num_classes=num_classes,
            input_transform="multiple_select",
            in_index=list(range(len(in_channels))),
            **kwargs,
        )
        del self.conv_seg
        self.pixel_decoder = DeformablePixelDecoder(
            in_channels, channels, channels, **(pixel_decoder or {})
        )
        self.query_feat = nn.Embedding(num_queries, channels)
        self.query_pos = nn.Embedding(num_queries, channels)
        self.level_embed = nn.Embedding(NUM_LEVELS, channels)
        self.prior_projections = nn.ModuleDict(
            {
                kind: nn.Linear(text_embed_dims, channels)
                for kind, used in (
                    ("objects", use_semantic_attention or use_relation_attention),
                    ("attributes", use_semantic_attention or use_scaled_visual_attention),
                    ("relations", use_relation_attention),
                )
                if used
            }
        )
        self.layers = nn.ModuleList(
            LLMFormerDecoderLayer(
                channels,
                num_heads,
                ffn_channels,
                attention_dropout,
                NUM_LEVELS,
                use_semantic_attention,
                use_scaled_visual_attention,
                use_relation_attention,
            )
            for _ in range(num_layers)
        )
        self.decoder_norm = nn.LayerNorm(channels)
        self.mask_embed = MLP(channels, channels, channels, 3)
        self.class_projection = nn.Linear(channels, text_embed_dims)
        self.void_embedding = nn.Parameter(torch.randn(text_embed_dims) * 0.02)
        self.logit_scale = nn.Parameter(torch.tensor(float(logit_scale_init)))
        self.logit_scale_max = logit_scale_max
        self.num_heads = num_heads
        self.void_class_weight = void_class_weight
        self.clip_ensemble = None if clip_classifier is None else _ensemble_cfg(clip_classifier)
        if prior_class_boost < 0:
            raise ValueError(f"prior_class_boost must be >= 0, got {prior_class_boost}")
        self.prior_class_boost = prior_class_boost
        self.name_pointer_cfg = None if name_pointer is None else _pointer_cfg(name_pointer)
        self.name_pointer = (
            None if name_pointer is None else PriorNamePointer(channels, text_embed_dims)
        )
        self.train_cfg = train_cfg
        self.losses_by_name = self._check_losses()
        if train_cfg:
            self.match_masks = MatchMasks(
                num_points=train_cfg["num_points"],
                num_queries=num_queries,
                num_classes=num_classes,
                assigner=train_cfg["assigner"],
            )

    def prior_parameters(self) -> Iterator[nn.Parameter]:
        """The parameters that read priors (their projections, the name pointer, each layer's
        prior modules); the rest is a prior-free Mask2Former-style decoder."""
        yield from self.prior_projections.parameters()
        if self.name_pointer is not None:
            yield from self.name_pointer.parameters()
        for layer in self.layers:
            yield from layer.prior_parameters()

    def _check_losses(self) -> dict[str, nn.Module]:
        losses = (
            self.loss_decode if isinstance(self.loss_decode, nn.ModuleList) else [self.loss_decode]
        )
        by_name = {loss.loss_name: loss for loss in losses}
        if sorted(by_name) != sorted(LOSS_NAMES):
            raise ValueError(
                f"LLMFormerHead needs losses named {LOSS_NAMES}, got {sorted(by_name)}"
            )
        return by_name

    # ----------------------------------------------------------------------------- forward
    def forward(self, inputs: HeadInputs) -> HeadOutputs:
        mask_features, memories = self.pixel_decoder(inputs.features)
        batch = mask_features.shape[0]
        sizes = [tuple(m.shape[-2:]) for m in memories]
        memory_tokens = [m.flatten(2).transpose(1, 2).contiguous() for m in memories]
        memory_pos = self._memory_positions(sizes, mask_features.device)
        memory_keys = [t + p for t, p in zip(memory_tokens, memory_pos, strict=True)]
        priors = self._project_priors(inputs.priors)
        query = self.query_feat.weight[None].expand(batch, -1, -1)
        query_pos = self.query_pos.weight[None].expand(batch, -1, -1)
        outputs = HeadOutputs([], [], [])
        self._predict(query, mask_features, inputs, outputs)
        for index, layer in enumerate(self.layers):
            masks = self._attention_masks(outputs.mask_logits[-1], sizes)
            levels = [
                LevelMemory(*level) for level in zip(memory_tokens, memory_keys, masks, strict=True)
            ]
            query = layer(query, LayerInputs(query_pos, levels, index % NUM_LEVELS, priors))
            self._predict(query, mask_features, inputs, outputs)
        return outputs

    def _memory_positions(self, sizes: list[tuple[int, int]], device) -> list[Tensor]:
        """Sine positions plus the level's embedding for each scale's tokens: (1, H*W, C)."""
        return [
            (sine_position_encoding(h, w, self.channels, device) + embedding)[None]
            for (h, w), embedding in zip(sizes, self.level_embed.weight, strict=True)
        ]

    def _project_priors(self, priors: PriorTensors) -> PriorTensors:
        """Map prior text embeddings to the decoder width (kinds no module uses stay as is)."""

        def project(kind: str) -> Tensor:
            tensor = getattr(priors, kind)
            return (
                self.prior_projections[kind](tensor) if kind in self.prior_projections else tensor
            )

        return PriorTensors(
            project("objects"),
            priors.object_mask,
            project("attributes"),
            priors.attribute_mask,
            project("relations"),
            priors.relation_mask,
            priors.relation_subject,
            priors.relation_object,
            priors.object_attributes,
        )

    def _predict(
        self, query: Tensor, mask_features: Tensor, inputs: HeadInputs, outputs: HeadOutputs
    ) -> None:
        """Append one step's class logits (prior terms added), mask logits and prior terms."""
        query = self.decoder_norm(query)
        mask_logits = torch.einsum("bqc,bchw->bqhw", self.mask_embed(query), mask_features)
        terms = PriorClassTerms(inputs.class_presence, self._pointed(query, inputs))
        class_logits = self.add_prior_terms(self.classify(query, inputs.vocabulary), terms)
        outputs.class_logits.append(mask_invalid_classes(class_logits, inputs.class_valid))
        outputs.mask_logits.append(mask_logits)
        outputs.prior_terms.append(terms)

    def _pointed(self, query: Tensor, inputs: HeadInputs) -> Tensor | None:
        """The name pointer's class mass (B, Q, C); None when off."""
        if self.name_pointer is None or inputs.object_classes is None:
            return None
        priors = inputs.priors
        weights = self.name_pointer(query, priors.object_attributes, priors.object_mask)
        return pointed_class_mass(weights, inputs.object_classes)

    def add_prior_terms(
        self, class_logits: Tensor, terms: PriorClassTerms, has_void: bool = True
    ) -> Tensor:
        """Add `prior_class_boost * (presence - 1)` and the name pointer's
        `weight * log((pointed + floor) / (1 + floor))` to (B, Q, C [+ void]) class logits (a
        void column stays untouched). Both are 0 for an image whose priors name no class: it is
        classified as by a model without priors."""
        shift = class_logits.new_zeros(())
        if terms.presence is not None and self.prior_class_boost != 0:
            boost = self.prior_class_boost * (terms.presence.to(class_logits) - 1)
            shift = shift + boost.unsqueeze(-2)
        if terms.pointed is not None:
            cfg = self.name_pointer_cfg
            floor = cfg["floor"]
            shift = shift + cfg["weight"] * torch.log((terms.pointed + floor) / (1 + floor))
        if not has_void:
            return class_logits + shift
        return torch.cat([class_logits[..., :-1] + shift, class_logits[..., -1:]], dim=-1)

    def ensemble_with_clip(
        self, class_logits: Tensor, mask_logits: Tensor, terms: PriorClassTerms, inputs: HeadInputs
    ) -> Tensor:
        """FC-CLIP's geometric ensemble of the learnt logits with CLIP's mask-pooled logits (both
        carrying the prior terms and the vocabulary mask); log-probabilities (B, Q, C + 1), void
        last, -inf at classes outside an image's vocabulary."""
        clip = inputs.clip
        pooled = mask_pool(clip.dense, mask_logits)
        out_vocab = clip_logits(pooled, inputs.vocabulary, clip.logit_scale)
        out_vocab = self.add_prior_terms(out_vocab, terms, has_void=False)
        out_vocab = mask_invalid_classes(out_vocab, inputs.class_valid)
        ensembled = geometric_ensemble(class_logits, out_vocab, clip.seen, **self.clip_ensemble)
        return mask_invalid_classes(ensembled, inputs.class_valid)

    def classify(self, query: Tensor, vocabulary: VocabularyEmbedding) -> Tensor:
        """Scaled cosine logits (B, Q, C + 1) against the vocabulary (max over synonyms) plus
        the void class."""
        embedding = F.normalize(self.class_projection(query), dim=-1)
        scale = self.logit_scale.clamp(max=self.logit_scale_max).exp()
        void = embedding @ F.normalize(self.void_embedding, dim=0)
        synonym_logits = embedding @ vocabulary.embeddings.to(embedding).T
        classes = max_over_synonyms(synonym_logits, vocabulary)
        return scale * torch.cat([classes, void[..., None]], dim=-1)

    def _attention_masks(self, mask_logits: Tensor, sizes: list[tuple[int, int]]) -> list[Tensor]:
        """Mask2Former's masked attention: a query sees only where its current mask is on
        (everywhere, if its mask is empty). One (B, Q, H*W) boolean mask per level."""
        masks = []
        for size in sizes:
            resized = F.interpolate(mask_logits, size=size, mode="bilinear", align_corners=False)
            blocked = resized.flatten(2).sigmoid() < 0.5
            blocked[blocked.all(dim=-1)] = False
            masks.append(blocked)
        return masks

    # -------------------------------------------------------------------------------- loss
    def loss(
        self, inputs: HeadInputs, batch_data_samples: SampleList, train_cfg: ConfigType
    ) -> dict:
        if inputs.class_valid is not None:
            raise ValueError("training needs one vocabulary shared by the batch")
        batch_gt_instances = seg_data_to_instance_data(self.ignore_index, batch_data_samples)
        outputs = self.forward(inputs)
        return self.loss_by_feat(outputs, batch_gt_instances, inputs.vocabulary.num_classes)

    def loss_by_feat(
        self, outputs: HeadOutputs, batch_gt_instances: list[InstanceData], num_classes: int
    ) -> dict[str, Tensor]:
        """Losses of the last step under their names, earlier steps prefixed `d{step}.`."""
        steps = list(
            zip(outputs.class_logits, outputs.mask_logits, outputs.prior_terms, strict=True)
        )
        losses = {}
        for step, (class_logits, mask_logits, terms) in enumerate(steps):
            prefix = "" if step == len(steps) - 1 else f"d{step}."
            step_losses = self._step_losses(
                class_logits, mask_logits, terms.pointed, batch_gt_instances, num_classes
            )
            losses.update({prefix + name: value for name, value in step_losses.items()})
        return losses

    def _step_losses(
        self,
        class_logits: Tensor,
        mask_logits: Tensor,
        pointed: Tensor | None,
        batch_gt_instances: list[InstanceData],
        num_classes: int,
    ) -> dict[str, Tensor]:
        labels, mask_targets, mask_weights, avg_factor = self.match_masks.get_targets(
            class_logits, mask_logits, batch_gt_instances
        )
        matched = mask_weights > 0
        labels = torch.where(matched, labels, torch.full_like(labels, num_classes))
        class_weights = torch.where(matched, 1.0, self.void_class_weight).flatten()
        loss_cls = self.losses_by_name["loss_cls_ce"](
            class_logits.flatten(0, 1),
            labels.flatten(),
            weight=class_weights,
            avg_factor=class_weights.sum(),
        )
        num_masks = class_logits.new_tensor([avg_factor], dtype=torch.float)
        all_reduce(num_masks, op="mean")
        num_masks = num_masks.clamp(min=1).item()
        losses = {
            "loss_cls_ce": loss_cls,
            **self._mask_losses(mask_logits[matched], mask_targets, num_masks),
        }
        if pointed is not None:
            losses["loss_name_pointer"] = self._pointer_loss(pointed, labels, matched, num_masks)
        return losses

    def _mask_losses(
        self, matched_logits: Tensor, mask_targets: Tensor, num_masks: float
    ) -> dict[str, Tensor]:
        """Sigmoid-CE and Dice of the matched queries' masks at sampled points (zero, with a
        graph, when the batch has no masks)."""
        if len(mask_targets) == 0:
            zero = matched_logits.sum()
            return {"loss_mask_ce": zero, "loss_mask_dice": zero}
        point_preds, point_targets = self._sample_points(matched_logits, mask_targets)
        num_points = point_preds.shape[1]
        return {
            "loss_mask_ce": self.losses_by_name["loss_mask_ce"](
                point_preds, point_targets, avg_factor=num_masks * num_points
            ),
            "loss_mask_dice": self.losses_by_name["loss_mask_dice"](
                point_preds, point_targets, avg_factor=num_masks
            ),
        }

    def _pointer_loss(
        self, pointed: Tensor, labels: Tensor, matched: Tensor, num_masks: float
    ) -> Tensor:
        """-log of the name pointer's mass on each matched query's class, averaged over masks."""
        mass = pointed[matched].gather(1, labels[matched][:, None]).squeeze(1)
        loss = -torch.log(mass + POINTER_LOSS_EPS).sum() / num_masks
        return self.name_pointer_cfg["loss_weight"] * loss

    def _sample_points(self, mask_logits: Tensor, mask_targets: Tensor) -> tuple[Tensor, Tensor]:
        """Mask logits and targets at importance-sampled points: (N, P) each."""
        with torch.no_grad():
            coords = get_uncertain_point_coords_with_randomness(
                mask_logits[:, None],
                None,
                self.train_cfg["num_points"],
                self.train_cfg.get("oversample_ratio", 3.0),
                self.train_cfg.get("importance_sample_ratio", 0.75),
            )
            targets = point_sample(mask_targets[:, None].float(), coords).squeeze(1)
        return point_sample(mask_logits[:, None], coords).squeeze(1), targets

    # ----------------------------------------------------------------------------- predict
    def predict(self, inputs: HeadInputs, batch_img_metas: list[dict], test_cfg: ConfigType):
        outputs = self.forward(inputs)
        class_logits, mask_logits = outputs.class_logits[-1], outputs.mask_logits[-1]
        if self.clip_ensemble is not None:
            if inputs.clip is None:
                raise ValueError("the CLIP classifier is on but the head got no CLIP features")
            terms = outputs.prior_terms[-1]
            class_logits = self.ensemble_with_clip(class_logits, mask_logits, terms, inputs)
        return self.predict_by_feat(
            (class_logits, mask_logits), batch_img_metas, inputs.class_valid
        )

    def predict_by_feat(
        self,
        seg_logits: tuple[Tensor, Tensor],
        batch_img_metas: list[dict],
        class_valid: Tensor | None = None,
    ) -> Tensor:
        """Per-pixel class scores (B, C, H, W): sum over queries of class probability (void
        dropped) times mask probability; -1 at classes outside an image's vocabulary
        (`class_valid` (B, C), None: none), and in padding up to 2 classes (MMSeg's
        post-processing treats one channel as a binary task)."""
        class_logits, mask_logits = seg_logits
        meta = batch_img_metas[0]
        size = meta.get("pad_shape", meta["img_shape"])
        masks = F.interpolate(
            mask_logits, size=size, mode="bilinear", align_corners=False
        ).sigmoid()
        scores = torch.einsum("bqc,bqhw->bchw", class_logits.softmax(-1)[..., :-1], masks)
        if class_valid is not None:
            scores = scores.masked_fill(~class_valid[..., None, None], -1.0)
        return F.pad(scores, (0, 0, 0, 0, 0, max(0, 2 - scores.shape[1])), value=-1.0)
