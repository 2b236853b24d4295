"""Text encoders (registry), ViLD prompt templates, vocabularies and the text-embedding cache."""

from segmentation.text.cache import CachedTextEmbedder
from segmentation.text.encoders import (
    TEXT_ENCODERS,
    CLIPTextTower,
    MiniLMTextEncoder,
    TextEncoder,
    build_text_encoder,
)
from segmentation.text.vocabulary import (
    BACKGROUND_CLASS,
    VILD_TEMPLATES,
    BatchVocabulary,
    Vocabulary,
    VocabularyEmbedding,
    embed_vocabulary,
    is_background,
    max_over_synonyms,
    normalize_vocabulary,
    vocabulary_free_classes,
)

__all__ = [
    "BACKGROUND_CLASS",
    "TEXT_ENCODERS",
    "VILD_TEMPLATES",
    "BatchVocabulary",
    "CLIPTextTower",
    "CachedTextEmbedder",
    "MiniLMTextEncoder",
    "TextEncoder",
    "Vocabulary",
    "VocabularyEmbedding",
    "build_text_encoder",
    "embed_vocabulary",
    "is_background",
    "max_over_synonyms",
    "normalize_vocabulary",
    "vocabulary_free_classes",
]
