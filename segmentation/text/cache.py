"""Embed texts once: an in-memory cache in front of the prior store's `text_embeddings` table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from segmentation.text.encoders import TextEncoder


class TextEmbeddingStore(Protocol):
    """The part of `storage.PriorStore` the cache uses."""

    def read_text_embeddings(self, encoder: str, texts: list[str]) -> dict[str, np.ndarray]: ...

    def write_text_embeddings(self, encoder: str, vectors: dict[str, np.ndarray]) -> None: ...


class CachedTextEmbedder:
    """Embeds texts with `encoder`, reusing vectors from memory, then the store, then computing.

    Newly computed vectors are written back to the store in one call per `embed`.
    """

    def __init__(self, encoder: TextEncoder, store: TextEmbeddingStore | None = None) -> None:
        self.encoder = encoder
        self.store = store
        self._memory: dict[str, Tensor] = {}

    def embed(self, texts: Sequence[str]) -> Tensor:
        """Return an (N, D) float tensor on the encoder's device, rows in the order of `texts`."""
        device = self.encoder.device
        if not texts:
            return torch.zeros(0, self.encoder.embed_dim, device=device)
        missing = [text for text in dict.fromkeys(texts) if text not in self._memory]
        if missing and self.store is not None:
            stored = self.store.read_text_embeddings(self.encoder.name, missing)
            self._memory.update({t: torch.tensor(v, dtype=torch.float) for t, v in stored.items()})
            missing = [text for text in missing if text not in self._memory]
        if missing:
            computed = self.encoder(missing).cpu()
            self._memory.update(zip(missing, computed, strict=True))
            if self.store is not None:
                vectors = {
                    text: vector.numpy() for text, vector in zip(missing, computed, strict=True)
                }
                self.store.write_text_embeddings(self.encoder.name, vectors)
        return torch.stack([self._memory[text] for text in texts]).to(device)
