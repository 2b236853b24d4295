"""The LLMFormer segmentor: frozen CLIP ViT + adapter, LLMFormerHead, a frozen text encoder.

It carries each image's priors (`data_sample.priors`) and a vocabulary through `loss` and
`predict`. The vocabulary is set from the dataset (`VocabularyHook`), by `set_vocabulary`, or per
call (`predict(..., vocabulary=...)`); with `test_cfg.vocabulary_free=True` every image is
classified against the objects its own priors name, plus a background class; with
`test_cfg.name_filter=True` against the classes of the vocabulary its priors name (each object
name mapped to its nearest class), plus background: the obvious way to use an LLM's words, the
baseline a gain from priors is judged against. The head sees such a batch's union vocabulary
(`BatchVocabulary`), each image's classes marked, so every quantity keeps one shape.

`clip_classifier` turns on the CLIP-aligned classifier (dense features of the backbone's frozen
CLIP tower through the checkpoint's `visual_projection`, every `dense_stride` pixels; see
`clip_classifier.py`), which needs `training_classes` to tell the training vocabulary's classes
from the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.registry import MODELS
from mmseg.utils import ConfigType, OptConfigType, OptMultiConfig, SampleList, add_prefix
from torch import Tensor

from segmentation.datasets.class_names import ClassNames
from segmentation.models.clip_classifier import CLIPDenseEmbedder
from segmentation.models.llmformer_head import CLIPFeatures, HeadInputs, HeadOutputs
from segmentation.models.prior_dropout import PriorDropout
from segmentation.models.prior_encoder import PriorEncoder, PriorTensors
from segmentation.text.encoders import build_text_encoder
from segmentation.text.vocabulary import (
    VILD_TEMPLATES,
    BatchVocabulary,
    Vocabulary,
    VocabularyEmbedding,
    assemble_vocabulary,
    embed_synonyms,
    is_background,
    max_over_synonyms,
    normalize_vocabulary,
    vocabulary_free_classes,
)
from segmentation.transforms.priors import PriorGraph


@dataclass(frozen=True)
class CallClasses:
    """One call's classes as the head reads them, over the union of the images' vocabularies
    (`batch`, C classes): its embedding, each image's prior presence (B, C) (None: boost off),
    training-vocabulary flags (C,) (None: CLIP classifier off), the classes the name pointer's
    entries stand for (B, 1 + No, C) (None: pointer off) and each image's own classes (B, C)
    (None: all of them)."""

    batch: BatchVocabulary
    embedding: VocabularyEmbedding
    presence: Tensor | None
    seen: Tensor | None
    object_classes: Tensor | None
    valid: Tensor | None

    def head_inputs(
        self, features: Sequence[Tensor], priors: PriorTensors, clip: CLIPFeatures | None = None
    ) -> HeadInputs:
        """What the head reads of these classes, with the backbone's maps and the priors."""
        return HeadInputs(
            features, priors, self.embedding, self.presence, clip, self.object_classes, self.valid
        )


@MODELS.register_module()
class LLMFormer(BaseSegmentor):
    """Open-vocabulary segmentor guided by LLM priors (whole-image or sliding-window inference).

    `text_cache_root` (a prior store root) caches prior phrase embeddings on disk; `vocabulary`
    (class names, comma-separated synonyms allowed) fixes a default vocabulary.
    `clip_classifier`: dict(checkpoint=CLIP folder, alpha=, beta=, dense_stride=) or None (off);
    `training_classes`: the training vocabulary, as class names or a packaged class list's name;
    `prior_dropout`: dict(image_prob=, object_prob=) takes priors away in training (`PriorDropout`);
    `train_prior_path_only`: train only the parameters that read priors
    (`LLMFormerHead.prior_parameters`) on top of a prior-free model loaded with `load_from`, whose
    predictions then stay exactly what they were for images without priors.
    """

    def __init__(
        self,
        backbone: ConfigType,
        decode_head: ConfigType,
        text_encoder: ConfigType,
        vocabulary: Sequence[str] | None = None,
        templates: Sequence[str] = VILD_TEMPLATES,
        text_cache_root: str | None = None,
        clip_classifier: dict | None = None,
        training_classes: str | Sequence[str] | None = None,
        prior_dropout: dict | None = None,
        train_prior_path_only: bool = False,
        train_cfg: OptConfigType = None,
        test_cfg: OptConfigType = None,
        data_preprocessor: OptConfigType = None,
        init_cfg: OptMultiConfig = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        ensemble = None if clip_classifier is None else dict(clip_classifier)
        checkpoint = None if ensemble is None else ensemble.pop("checkpoint", None)
        dense_stride = None if ensemble is None else ensemble.pop("dense_stride", None)
        self.decode_head = MODELS.build({**decode_head, "clip_classifier": ensemble})
        self.text_encoder = build_text_encoder(text_encoder)
        self.clip_dense = (
            None if ensemble is None else self._build_clip_dense(checkpoint, dense_stride)
        )
        self.training_classes = _training_classes(training_classes)
        if ensemble is not None and not self.training_classes:
            raise ValueError("the CLIP classifier needs training_classes (its seen classes)")
        head_dims = self.decode_head.class_projection.out_features
        if head_dims != self.text_encoder.embed_dim:
            raise ValueError(
                f"decode_head.text_embed_dims={head_dims} but the text encoder "
                f"{self.text_encoder.name} gives {self.text_encoder.embed_dim}-d embeddings"
            )
        self.prior_encoder = PriorEncoder(
            self.text_encoder,
            _open_store(text_cache_root),
            object_attributes=self.decode_head.name_pointer is not None,
        )
        self.prior_dropout = PriorDropout.from_config(prior_dropout)
        if train_prior_path_only:
            self._freeze_all_but_the_prior_path()
        self.templates = tuple(templates)
        self.align_corners = self.decode_head.align_corners
        self.num_classes = self.decode_head.num_classes
        self.out_channels = self.decode_head.out_channels
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg if test_cfg is not None else dict(mode="whole")
        self.vocabulary: Vocabulary | None = (
            normalize_vocabulary(vocabulary) if vocabulary else None
        )
        self._embedded: dict[str, Tensor] = {}

    def _build_clip_dense(
        self, checkpoint: str | None, dense_stride: int | None
    ) -> CLIPDenseEmbedder:
        tower = getattr(self.backbone, "tower", None)
        if tower is None:
            raise ValueError("the CLIP classifier needs a backbone with a CLIP `tower`")
        embedder = CLIPDenseEmbedder(
            tower.embed_dim, self.text_encoder.embed_dim, checkpoint, dense_stride
        )
        embedder.stride(tower)  # a stride that does not divide the patch size fails here
        return embedder

    def _freeze_all_but_the_prior_path(self) -> None:
        prior = {id(parameter) for parameter in self.decode_head.prior_parameters()}
        if not prior:
            raise ValueError("train_prior_path_only needs a head with a prior path")
        for parameter in self.parameters():
            if id(parameter) not in prior:
                parameter.requires_grad_(False)

    # ------------------------------------------------------------------------- vocabulary
    def set_vocabulary(
        self, classes: Sequence[str], synonyms: Sequence[Sequence[str]] | None = None
    ) -> None:
        """Use these classes (optionally with synonym lists) until told otherwise."""
        self.vocabulary = normalize_vocabulary(classes, synonyms)

    def embed_vocabulary(self, vocabulary: Vocabulary) -> VocabularyEmbedding:
        """Template-averaged synonym embeddings. Each synonym is embedded once and kept on the
        CPU: vocabulary-free prediction gives nearly every image its own vocabulary, but the
        names in them recur, so the cache grows with the names seen, not the images."""
        synonyms = [name for names in vocabulary for name in names]
        missing = sorted(set(synonyms) - self._embedded.keys())
        if missing:
            fresh = embed_synonyms(self.text_encoder, missing, self.templates)
            self._embedded.update(zip(missing, fresh.cpu(), strict=True))
        rows = torch.stack([self._embedded[name] for name in synonyms])
        return assemble_vocabulary(vocabulary, rows.to(self.text_encoder.device))

    def _current_vocabulary(self) -> Vocabulary:
        if self.vocabulary is None:
            raise ValueError(
                "no vocabulary: add VocabularyHook to custom_hooks, set model.vocabulary, "
                "or pass vocabulary= to predict"
            )
        return self.vocabulary

    def _image_vocabularies(self, graphs: Sequence[PriorGraph]) -> list[Vocabulary]:
        """Vocabulary-free mode: each image's `vocabulary_free_classes`; the current vocabulary
        for an image whose priors name no object."""
        per_image = [vocabulary_free_classes(graph.objects) for graph in graphs]
        return [
            normalize_vocabulary(names) if names else self._current_vocabulary()
            for names in per_image
        ]

    def named_classes(self, vocabulary: Vocabulary, graph: PriorGraph) -> Vocabulary:
        """The name filter: the classes of `vocabulary` that `graph`'s object names stand for,
        plus background; all of `vocabulary` when they name none of its classes."""
        keep = _presence(self.object_classes(vocabulary, graph), vocabulary).bool().tolist()
        return tuple(names for names, kept in zip(vocabulary, keep, strict=True) if kept)

    def _seen(self, vocabulary: Vocabulary) -> Tensor:
        """Which classes of `vocabulary` (any synonym) belong to the training vocabulary."""
        return torch.tensor(
            [any(name.lower() in self.training_classes for name in names) for names in vocabulary]
        )

    # ------------------------------------------------------------------------------ priors
    def object_classes(self, vocabulary: Vocabulary, graph: PriorGraph) -> Tensor:
        """(1 + No, C): row 1 + j is 1 at the class whose synonyms (template-averaged
        embeddings) are closest to object prior j's name; row 0, the name pointer's null, is 1
        at background classes and at every class no object prior names; an object with an empty
        name stands for what the null stands for."""
        rows = torch.zeros(1 + len(graph.objects), len(vocabulary))
        named = [i for i, name in enumerate(graph.objects) if name.strip()]
        nameless = [1 + i for i, name in enumerate(graph.objects) if not name.strip()]
        if named:
            classes = self.embed_vocabulary(vocabulary)
            objects = torch.cat(
                [self.embed_vocabulary(((graph.objects[i],),)).embeddings for i in named]
            )
            similarity = max_over_synonyms(objects @ classes.embeddings.T, classes)
            rows[torch.tensor(named) + 1, similarity.argmax(dim=1).cpu()] = 1.0
        unnamed = rows[1:].sum(dim=0) == 0
        rows[0] = (unnamed | _background_flags(vocabulary)).float()
        rows[nameless] = rows[0].clone()
        return rows

    def _prior_classes(
        self, batch: BatchVocabulary, graphs: Sequence[PriorGraph]
    ) -> tuple[Tensor | None, Tensor | None]:
        """Class presence (B, C) (None: boost off) and `object_classes` padded with zero rows to
        the batch's prior count (B, 1 + No, C) (None: name pointer off), each image's against its
        own vocabulary, in its columns of the batch's."""
        boost = self.decode_head.prior_class_boost != 0
        pointer = self.decode_head.name_pointer is not None
        if not (boost or pointer):
            return None, None
        device = self.text_encoder.device
        vocabularies = batch.vocabularies
        per_image = [
            self.object_classes(v, g).to(device) for v, g in zip(vocabularies, graphs, strict=True)
        ]
        length = max(len(rows) for rows in per_image)
        presence = None
        if boost:
            presence = batch.scatter(
                [_presence(r, v) for r, v in zip(per_image, vocabularies, strict=True)]
            )
        padded = None
        if pointer:
            padded = batch.scatter(
                [F.pad(rows, (0, 0, 0, length - len(rows))) for rows in per_image]
            )
        return presence, padded

    @staticmethod
    def _graphs(data_samples: SampleList | None, batch: int) -> list[PriorGraph]:
        if data_samples is None:
            return [PriorGraph.EMPTY] * batch
        return [sample.get("priors", PriorGraph.EMPTY) for sample in data_samples]

    # ------------------------------------------------------------------------------ model
    def extract_feat(self, inputs: Tensor) -> tuple[Tensor, ...]:
        return self.backbone(inputs)

    def encode_decode(
        self,
        inputs: Tensor,
        batch_img_metas: list[dict],
        priors: PriorTensors | None = None,
        classes: CallClasses | None = None,
    ) -> Tensor:
        """Per-pixel class scores at the input size."""
        if priors is None:
            priors = self.prior_encoder([PriorGraph.EMPTY] * len(inputs))
        if classes is None:
            classes = self.call_classes([self._current_vocabulary()] * len(inputs), None)
        if self.clip_dense is None:
            features, clip = self.extract_feat(inputs), None
        else:
            tower = self.backbone.tower
            states = tower.run(inputs)
            features = self.backbone(inputs, states)
            dense = self.clip_dense(tower, states, inputs)
            clip = CLIPFeatures(dense, self.clip_dense.logit_scale, classes.seen)
        head_inputs = classes.head_inputs(features, priors, clip)
        return self.decode_head.predict(head_inputs, batch_img_metas, self.test_cfg)

    def call_classes(
        self, vocabularies: Sequence[Vocabulary], graphs: Sequence[PriorGraph] | None
    ) -> CallClasses:
        """Embedding, prior presence and seen flags of the union of one call's vocabularies (one
        per image; the shared one when all images have the same)."""
        batch = BatchVocabulary.union(vocabularies)
        device = self.text_encoder.device
        presence, object_classes = (
            (None, None) if graphs is None else self._prior_classes(batch, graphs)
        )
        seen = None if self.clip_dense is None else self._seen(batch.classes).to(device)
        embedding = self.embed_vocabulary(batch.classes)
        return CallClasses(
            batch, embedding, presence, seen, object_classes, batch.class_valid(device)
        )

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        graphs = self.prior_dropout(self._graphs(data_samples, len(inputs)))
        priors = self.prior_encoder(graphs)
        classes = self.call_classes([self._current_vocabulary()] * len(inputs), graphs)
        head_inputs = classes.head_inputs(self.extract_feat(inputs), priors)
        losses = self.decode_head.loss(head_inputs, data_samples, self.train_cfg)
        return add_prefix(losses, "decode")

    def predict(
        self,
        inputs: Tensor,
        data_samples: SampleList | None = None,
        vocabulary: Sequence[str] | None = None,
    ) -> SampleList:
        """Segment `inputs`; each returned sample's metainfo `vocabulary` names its label ids.
        Its `seg_logits` has a channel per class of the union of the batch's vocabularies
        (`CallClasses.batch`), -1 at those outside its own."""
        graphs = self._graphs(data_samples, len(inputs))
        if vocabulary is not None:
            vocabularies = [normalize_vocabulary(vocabulary)] * len(inputs)
        elif self.test_cfg.get("vocabulary_free", False):
            vocabularies = self._image_vocabularies(graphs)
        elif self.test_cfg.get("name_filter", False):
            vocabularies = [self.named_classes(self._current_vocabulary(), g) for g in graphs]
        else:
            vocabularies = [self._current_vocabulary()] * len(inputs)
        classes = self.call_classes(vocabularies, graphs)
        metas = self._metas(inputs, data_samples)
        priors = self.prior_encoder(graphs)
        if self.test_cfg.get("mode", "whole") == "slide":
            seg_logits = self.slide_inference(inputs, metas, priors, classes)
        else:
            seg_logits = self.encode_decode(inputs, metas, priors, classes)
        results = self.postprocess_result(seg_logits, data_samples)
        _label_by_own_vocabulary(results, classes.batch)
        return results

    @staticmethod
    def _metas(inputs: Tensor, data_samples: SampleList | None) -> list[dict]:
        if data_samples is not None:
            return [sample.metainfo for sample in data_samples]
        shape = tuple(inputs.shape[2:])
        return [
            dict(ori_shape=shape, img_shape=shape, pad_shape=shape, padding_size=[0] * 4)
        ] * len(inputs)

    def slide_inference(
        self,
        inputs: Tensor,
        batch_img_metas: list[dict],
        priors: PriorTensors,
        classes: CallClasses,
    ) -> Tensor:
        """Average the scores of overlapping `crop_size` windows taken every `stride` pixels."""
        stride_h, stride_w = self.test_cfg["stride"]
        crop_h, crop_w = self.test_cfg["crop_size"]
        height, width = inputs.shape[2:]
        scores, counts = None, inputs.new_zeros(len(inputs), 1, height, width)
        for top in _window_starts(height, crop_h, stride_h):
            for left in _window_starts(width, crop_w, stride_w):
                crop = inputs[:, :, top : top + crop_h, left : left + crop_w]
                crop_shape = tuple(crop.shape[2:])
                metas = [
                    {**m, "img_shape": crop_shape, "pad_shape": crop_shape} for m in batch_img_metas
                ]
                crop_scores = self.encode_decode(crop, metas, priors, classes)
                if scores is None:
                    scores = inputs.new_zeros(len(inputs), crop_scores.shape[1], height, width)
                bottom, right = top + crop_shape[0], left + crop_shape[1]
                scores += F.pad(crop_scores, (left, width - right, top, height - bottom))
                counts[:, :, top:bottom, left:right] += 1
        return scores / counts

    def _forward(self, inputs: Tensor, data_samples: SampleList | None = None) -> HeadOutputs:
        graphs = self._graphs(data_samples, len(inputs))
        classes = self.call_classes([self._current_vocabulary()] * len(inputs), graphs)
        head_inputs = classes.head_inputs(self.extract_feat(inputs), self.prior_encoder(graphs))
        return self.decode_head.forward(head_inputs)


def _label_by_own_vocabulary(results: SampleList, batch: BatchVocabulary) -> None:
    """Turn each sample's label ids into ids of its own vocabulary, which its metainfo
    `vocabulary` names, from ids of the batch's union."""
    for image, (sample, vocabulary) in enumerate(zip(results, batch.vocabularies, strict=True)):
        sample.pred_sem_seg.data = batch.own_labels(sample.pred_sem_seg.data, image)
        sample.set_metainfo({"vocabulary": [synonyms[0] for synonyms in vocabulary]})


def _background_flags(vocabulary: Vocabulary) -> Tensor:
    """True for the vocabulary's background classes (by their first name)."""
    return torch.tensor([is_background(names[0]) for names in vocabulary])


def _presence(object_classes: Tensor, vocabulary: Vocabulary) -> Tensor:
    """1 at the classes some object prior stands for (rows 1: of `object_classes`) and at
    background classes; 1 everywhere when no object names a class."""
    named = object_classes[1:].sum(dim=0) > 0
    if not named.any():
        return torch.ones_like(named, dtype=torch.float)
    return (named | _background_flags(vocabulary).to(named.device)).float()


def _window_starts(size: int, crop: int, stride: int) -> list[int]:
    """Start offsets of windows covering `size`; the last window is flush with the end."""
    count = max(size - crop + stride - 1, 0) // stride + 1
    return [max(min(i * stride, size - crop), 0) for i in range(count)]


def _training_classes(classes: str | Sequence[str] | None) -> frozenset[str]:
    """Lower-cased names (all synonyms) of the training vocabulary: a packaged class list's name
    (e.g. "coco_stuff_171") or the class names themselves."""
    if classes is None:
        return frozenset()
    if isinstance(classes, str):
        synonyms = ClassNames.packaged(classes).synonyms
    else:
        synonyms = normalize_vocabulary(classes)
    return frozenset(name.lower() for names in synonyms for name in names)


def _open_store(root: str | None):
    if root is None:
        return None
    from storage import PriorStore

    return PriorStore(root, create=False)
