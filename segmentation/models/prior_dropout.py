"""Prior dropout: in training, take away an image's priors, or single objects from them, as a
captioner that fails or misses things would, so the model learns what priors are worth and still
segments when an LLM says nothing (as DropPath teaches a network to do without a branch)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch

from segmentation.transforms.priors import PriorGraph


def keep_objects(graph: PriorGraph, kept: Sequence[int]) -> PriorGraph:
    """`graph` with only the objects at `kept`, and the attributes and relations that touch
    only them, re-indexed."""
    index = {old: new for new, old in enumerate(kept)}
    return PriorGraph(
        tuple(graph.objects[old] for old in kept),
        tuple((index[o], value) for o, value in graph.attributes if o in index),
        tuple(
            (index[s], predicate, index[o])
            for s, predicate, o in graph.relations
            if s in index and o in index
        ),
    )


@dataclass(frozen=True)
class PriorDropout:
    """Drop each image's priors with `image_prob`, else each of its objects with `object_prob`.
    Draws come from torch's generator, which MMEngine's `randomness.seed` seeds; a probability of
    0 draws nothing, so a model without dropout trains exactly as before it existed."""

    image_prob: float = 0.0
    object_prob: float = 0.0

    def __post_init__(self) -> None:
        for name in ("image_prob", "object_prob"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"prior_dropout {name} must be in [0, 1), got {value}")

    @classmethod
    def from_config(cls, cfg: dict | None) -> PriorDropout:
        """From a config dict (None: off); a key it does not know (a typo) is refused by name."""
        known = sorted(field.name for field in fields(cls))
        unknown = sorted(set(cfg or {}) - set(known))
        if unknown:
            raise ValueError(f"prior_dropout got unknown keys {unknown}; known: {known}")
        return cls(**(cfg or {}))

    def __call__(self, graphs: Sequence[PriorGraph]) -> list[PriorGraph]:
        return [self._drop(graph) for graph in graphs]

    def _drop(self, graph: PriorGraph) -> PriorGraph:
        if graph.is_empty:
            return graph
        if self.image_prob and torch.rand(()) < self.image_prob:
            return PriorGraph.EMPTY
        if self.object_prob == 0:
            return graph
        kept = (torch.rand(len(graph.objects)) >= self.object_prob).nonzero().flatten()
        return keep_objects(graph, kept.tolist())
