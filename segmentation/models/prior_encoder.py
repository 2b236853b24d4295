"""Turn a batch of prior graphs into padded text-embedding tensors for the decoder.

Object names, attribute phrases ("red car") and relation phrases ("dog on sofa") are embedded by
the segmentor's text encoder through the cache (memory, then the store's `text_embeddings`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from segmentation.text.cache import CachedTextEmbedder, TextEmbeddingStore
from segmentation.text.encoders import TextEncoder
from segmentation.transforms.priors import PriorGraph


@dataclass(frozen=True)
class PriorTensors:
    """Padded prior embeddings of a batch; masks are True where an entry exists."""

    objects: Tensor  # (B, No, D)
    object_mask: Tensor  # (B, No)
    attributes: Tensor  # (B, Na, D)
    attribute_mask: Tensor  # (B, Na)
    relations: Tensor  # (B, Nr, D)
    relation_mask: Tensor  # (B, Nr)
    relation_subject: Tensor  # (B, Nr), index into objects
    relation_object: Tensor  # (B, Nr), index into objects
    object_attributes: Tensor | None = None  # (B, No, D): each object's attribute words, 0 if none

    def present(self) -> Tensor:
        """(B,) True for an image with at least one object or attribute prior."""
        return self.object_mask.any(-1) | self.attribute_mask.any(-1)


def _pad(rows: list[Tensor], dim: int, device: torch.device) -> tuple[Tensor, Tensor]:
    length = max((len(row) for row in rows), default=0)
    padded = torch.zeros(len(rows), length, dim, device=device)
    mask = torch.zeros(len(rows), length, dtype=torch.bool, device=device)
    for i, row in enumerate(rows):
        padded[i, : len(row)] = row
        mask[i, : len(row)] = True
    return padded, mask


def _pad_index(rows: list[list[int]], length: int, device: torch.device) -> Tensor:
    index = torch.zeros(len(rows), length, dtype=torch.long, device=device)
    for i, row in enumerate(rows):
        index[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return index


def _scatter_described(words: list[str], embedded: Tensor, dim: int) -> Tensor:
    """One row per object: its attribute words' embedding, zeros for an object with none."""
    rows = embedded.new_zeros(len(words), dim)
    described = [i for i, w in enumerate(words) if w]
    rows[described] = embedded
    return rows


class PriorEncoder:
    """Embeds prior graphs with a frozen text encoder, caching every phrase it has seen; each
    object's attribute words too when `object_attributes` (what the name pointer reads)."""

    def __init__(
        self,
        encoder: TextEncoder,
        store: TextEmbeddingStore | None = None,
        object_attributes: bool = True,
    ) -> None:
        self.embedder = CachedTextEmbedder(encoder, store)
        self.object_attributes = object_attributes

    def __call__(self, graphs: Sequence[PriorGraph]) -> PriorTensors:
        words = [g.object_attribute_words() if self.object_attributes else [] for g in graphs]
        groups = [
            [list(g.objects), g.attribute_phrases(), g.relation_phrases(), [w for w in ws if w]]
            for g, ws in zip(graphs, words, strict=True)
        ]
        texts = [text for image in groups for group in image for text in group]
        sizes = [len(group) for image in groups for group in image]
        chunks = self.embedder.embed(texts).split(sizes)
        dim, device = self.embedder.encoder.embed_dim, self.embedder.encoder.device
        objects, object_mask = _pad(list(chunks[0::4]), dim, device)
        attributes, attribute_mask = _pad(list(chunks[1::4]), dim, device)
        relations, relation_mask = _pad(list(chunks[2::4]), dim, device)
        described = None
        if self.object_attributes:
            rows = [
                _scatter_described(ws, c, dim) for ws, c in zip(words, chunks[3::4], strict=True)
            ]
            described = _pad(rows, dim, device)[0]
        length = relations.shape[1]
        return PriorTensors(
            objects,
            object_mask,
            attributes,
            attribute_mask,
            relations,
            relation_mask,
            relation_subject=_pad_index(
                [[r[0] for r in g.relations] for g in graphs], length, device
            ),
            relation_object=_pad_index(
                [[r[2] for r in g.relations] for g in graphs], length, device
            ),
            object_attributes=described,
        )
