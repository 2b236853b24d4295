"""Class-name embeddings of a vocabulary: ViLD prompt templates, averaged, normalised, per synonym.

A vocabulary is a list of classes, each a list of synonyms (first = the class name). Every synonym
gets its own template-averaged embedding; the classifier takes the max over a class's synonyms.
Vocabulary-free mode's classes are an image's object priors plus BACKGROUND_CLASS; a batch whose
images have vocabularies of their own is classified against their union (`BatchVocabulary`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from segmentation.text.encoders import TextEncoder

VILD_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "This is a photo of a {}",
    "There is a {} in the scene",
    "There is the {} in the scene",
    "a photo of a {} in the scene",
    "a photo of a small {}.",
    "a photo of a medium {}.",
    "a photo of a large {}.",
    "This is a photo of a small {}.",
    "This is a photo of a medium {}.",
    "This is a photo of a large {}.",
    "There is a small {} in the scene.",
    "There is a medium {} in the scene.",
    "There is a large {} in the scene.",
)

Vocabulary = tuple[tuple[str, ...], ...]

BACKGROUND_CLASS = "background"
"""The class vocabulary-free mode adds for what the priors leave unnamed: captions seldom name the
background, and without it every pixel would have to take one of the named objects."""


def is_background(name: str) -> bool:
    """Whether a class name is BACKGROUND_CLASS, whatever its case or surrounding spaces."""
    return name.strip().lower() == BACKGROUND_CLASS


def vocabulary_free_classes(object_names: Iterable[str]) -> list[str]:
    """Vocabulary-free mode's class names: the distinct object priors in order, then
    BACKGROUND_CLASS unless the priors name it; empty when they name no object."""
    names = list(dict.fromkeys(name.strip() for name in object_names if name.strip()))
    if names and not any(is_background(name) for name in names):
        names.append(BACKGROUND_CLASS)
    return names


def normalize_vocabulary(
    classes: Sequence[str] | Sequence[Sequence[str]],
    synonyms: Sequence[Sequence[str]] | None = None,
) -> Vocabulary:
    """Turn class names (comma-separated synonyms allowed) or synonym lists into a Vocabulary."""
    if isinstance(classes, str):
        raise ValueError(f"a vocabulary is a list of class names, got the string {classes!r}")
    if synonyms is not None:
        if len(synonyms) != len(classes):
            raise ValueError(f"{len(synonyms)} synonym lists for {len(classes)} classes")
        entries = [[classes[i], *synonyms[i]] for i in range(len(classes))]
    else:
        entries = [c.split(",") if isinstance(c, str) else list(c) for c in classes]
    vocabulary = tuple(_unique_stripped(entry) for entry in entries)
    if not vocabulary or any(not names for names in vocabulary):
        raise ValueError(f"a vocabulary needs at least one non-empty name per class: {classes!r}")
    return vocabulary


def _unique_stripped(names: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(name.strip() for name in names if name.strip()))


@dataclass(frozen=True)
class VocabularyEmbedding:
    """Synonym embeddings (S, D) and the class each synonym belongs to (S,)."""

    embeddings: Tensor
    class_index: Tensor
    num_classes: int

    def to(self, device: torch.device) -> VocabularyEmbedding:
        return VocabularyEmbedding(
            self.embeddings.to(device), self.class_index.to(device), self.num_classes
        )


@dataclass(frozen=True)
class BatchVocabulary:
    """A batch's per-image vocabularies as one: `classes`, their union in first-seen order (a
    shared vocabulary itself), and `columns[i]`, where image i's own classes sit in it. The head
    then sees one shape per quantity, classes outside an image's vocabulary masked."""

    vocabularies: tuple[Vocabulary, ...]
    classes: Vocabulary
    columns: tuple[tuple[int, ...], ...]

    @classmethod
    def union(cls, vocabularies: Sequence[Vocabulary]) -> BatchVocabulary:
        """The union of `vocabularies`; a class one vocabulary lists twice keeps two columns."""
        keyed = [_occurrence_keys(vocabulary) for vocabulary in vocabularies]
        order = dict.fromkeys(key for keys in keyed for key in keys)
        index = {key: column for column, key in enumerate(order)}
        columns = tuple(tuple(index[key] for key in keys) for keys in keyed)
        return cls(tuple(vocabularies), tuple(names for names, _ in order), columns)

    def scatter(self, per_image: Sequence[Tensor]) -> Tensor:
        """Each image's (..., C_i) tensor in its columns of one (B, ..., C) tensor, 0 elsewhere."""
        first = per_image[0]
        batch = first.new_zeros(len(per_image), *first.shape[:-1], len(self.classes))
        for row, tensor, columns in zip(batch, per_image, self.columns, strict=True):
            row[..., list(columns)] = tensor
        return batch

    def class_valid(self, device: torch.device | str = "cpu") -> Tensor | None:
        """Which classes (B, C) belong to each image's vocabulary; None when all do."""
        valid = self.scatter(
            [torch.ones(len(columns), dtype=torch.bool, device=device) for columns in self.columns]
        )
        return None if valid.all() else valid

    def own_labels(self, labels: Tensor, image: int) -> Tensor:
        """Label ids into `classes` as ids into image `image`'s own vocabulary."""
        columns = self.columns[image]
        own = labels.new_zeros(len(self.classes))
        own[list(columns)] = torch.arange(len(columns), device=labels.device, dtype=labels.dtype)
        return own[labels]


def _occurrence_keys(vocabulary: Vocabulary) -> list[tuple[tuple[str, ...], int]]:
    """Each class with how many times the vocabulary listed it before."""
    counts: Counter[tuple[str, ...]] = Counter()
    keys = []
    for names in vocabulary:
        keys.append((names, counts[names]))
        counts[names] += 1
    return keys


def embed_synonyms(
    encoder: TextEncoder, synonyms: Sequence[str], templates: Sequence[str] = VILD_TEMPLATES
) -> Tensor:
    """(S, D): each synonym as the normalised mean of its normalised template embeddings."""
    prompts = [template.format(name) for name in synonyms for template in templates]
    per_prompt = encoder(prompts).view(len(synonyms), len(templates), -1)
    return F.normalize(per_prompt.mean(dim=1), dim=-1)


def assemble_vocabulary(vocabulary: Vocabulary, embeddings: Tensor) -> VocabularyEmbedding:
    """The vocabulary's embedding from its synonyms' rows (S, D), in the vocabulary's order."""
    class_index = torch.tensor(
        [index for index, names in enumerate(vocabulary) for _ in names], device=embeddings.device
    )
    return VocabularyEmbedding(embeddings, class_index, len(vocabulary))


def embed_vocabulary(
    encoder: TextEncoder, vocabulary: Vocabulary, templates: Sequence[str] = VILD_TEMPLATES
) -> VocabularyEmbedding:
    """Embed every synonym as the normalised mean of its normalised template embeddings."""
    synonyms = [name for names in vocabulary for name in names]
    return assemble_vocabulary(vocabulary, embed_synonyms(encoder, synonyms, templates))


def max_over_synonyms(synonym_logits: Tensor, vocabulary: VocabularyEmbedding) -> Tensor:
    """Reduce logits over synonyms (..., S) to logits over classes (..., C) by the max."""
    shape = (*synonym_logits.shape[:-1], vocabulary.num_classes)
    index = vocabulary.class_index.expand_as(synonym_logits)
    initial = synonym_logits.new_full(shape, float("-inf"))
    return initial.scatter_reduce(-1, index, synonym_logits, reduce="amax", include_self=True)
