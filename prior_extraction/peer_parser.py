"""The public rule-based peer, SceneGraphParser (`sng_parser`), behind the same interface as
`CaptionParser`, so benchmarks and the scorer treat both parsers alike.

sng_parser is used as published: it loads its spaCy pipeline by name and parses one text per
call. Its entities become objects (lemma with compounds), its `amod`/`nummod` modifiers
attributes, and its relations relations with their lemmatised predicate.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import nullcontext
from typing import Any

from prior_extraction.caption_priors import (
    AttributePrior,
    ObjectPrior,
    ParsedCaption,
    RelationPrior,
)
from prior_extraction.lexicon import attribute_kind
from prior_extraction.nlp import choose_spacy_pipeline

PEER_NAME = "sng_parser"
ATTRIBUTE_DEPS = frozenset({"amod", "nummod"})


class PeerParser:
    """`sng_parser.Parser` with the spaCy pipeline this project uses (loaded by package name,
    since spaCy 3 no longer resolves sng_parser's default shortcut 'en')."""

    def __init__(self, pipeline: str | None = None, numpy_blas: bool = False) -> None:
        """`numpy_blas` runs the peer's pipeline the way `CaptionParser` runs its own (numpy's
        BLAS on one thread instead of BLIS), to separate the two parsers' own costs."""
        from thinc.api import use_ops
        from threadpoolctl import ThreadpoolController

        try:
            import sng_parser
        except ImportError as error:
            raise ImportError(
                "the peer parser needs scenegraphparser: pip install 'llmformer[dev]'"
            ) from error
        self.pipeline = choose_spacy_pipeline(pipeline)
        with use_ops("numpy", use_blis=False) if numpy_blas else nullcontext():
            self.parser = sng_parser.Parser("spacy", model=self.pipeline)
        self._blas = ThreadpoolController() if numpy_blas else None

    def parse(self, text: str) -> ParsedCaption:
        """The peer's graph for one text as priors; a text it cannot parse gives none."""
        if not isinstance(text, str) or not text.strip():
            return ParsedCaption()
        try:
            graph = self.parser.parse(text)
        except Exception:  # the peer is third-party code: a crash counts as no priors
            return ParsedCaption()
        return graph_to_priors(graph)

    def parse_many(self, texts: Iterable[str]) -> list[ParsedCaption]:
        """One call per text, as sng_parser offers no batching."""
        with self._blas.limit(limits=1, user_api="blas") if self._blas else nullcontext():
            return [self.parse(text) for text in texts]


def graph_to_priors(graph: dict[str, Any]) -> ParsedCaption:
    """Map an sng_parser scene graph onto the prior contract, merging entities by name."""
    objects: list[ObjectPrior] = []
    index_by_name: dict[str, int] = {}
    entity_index: list[int] = []
    for entity in graph["entities"]:
        name = entity["lemma_head"].lower()
        if name not in index_by_name:
            index_by_name[name] = len(objects)
            objects.append(ObjectPrior(name, entity["span"], 1))
        entity_index.append(index_by_name[name])
    attributes = {
        (entity_index[i], modifier["lemma_span"].lower()): None
        for i, entity in enumerate(graph["entities"])
        for modifier in entity["modifiers"]
        if modifier["dep"] in ATTRIBUTE_DEPS
    }
    relations = {
        (entity_index[r["subject"]], r["lemma_relation"].lower(), entity_index[r["object"]]): None
        for r in graph["relations"]
    }
    return ParsedCaption(
        objects,
        [AttributePrior(index, value, attribute_kind(value)) for index, value in attributes],
        [RelationPrior(*relation) for relation in relations],
    )
