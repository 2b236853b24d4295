"""The caption parser: LLM image descriptions into object, attribute and relation priors with
spaCy dependency rules, batched through `nlp.pipe`. Knows nothing of storage.

>>> parser = CaptionParser()
>>> parser.parse("A man is riding a brown horse.").to_dict()["relations"]
[{'subject': 0, 'predicate': 'ride', 'object': 1}]
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prior_extraction.caption_priors import (
    ATTRIBUTE_KINDS,
    AttributePrior,
    ObjectPrior,
    ParsedCaption,
    RelationPrior,
)
from prior_extraction.caption_text import MAX_CAPTION_CHARS, clean_caption
from prior_extraction.nlp import choose_spacy_pipeline

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc

__all__ = [
    "ATTRIBUTE_KINDS",
    "PARSER_NAME",
    "PARSER_VERSION",
    "AttributePrior",
    "CaptionParser",
    "ObjectPrior",
    "ParsedCaption",
    "RelationPrior",
]

PARSER_NAME = "llmformer-spacy-rules"
PARSER_VERSION = "1.0.0"
# Components the rules never read: named entities cost more than the dependency parse itself.
UNUSED_COMPONENTS = ("ner",)
# Components run after `nlp.pipe`, in this process: the attribute ruler through its faster
# equivalent, then the lemmatizer that needs its coarse tags.
POST_PARSE_COMPONENTS = ("attribute_ruler", "lemmatizer")

logger = logging.getLogger(__name__)


def _post_parse_steps(nlp: Language) -> list[tuple[str, Callable[[Doc], Doc]]]:
    """The pipeline's own attribute ruler (as a FastAttributeRuler) and lemmatizer, to run on
    parsed docs; missing ones are skipped, so any English pipeline with a parser works."""
    from prior_extraction.fast_attributes import FastAttributeRuler

    steps: list[tuple[str, Callable[[Doc], Doc]]] = []
    for name in POST_PARSE_COMPONENTS:
        if name in nlp.pipe_names:
            component = nlp.get_pipe(name)
            is_ruler = name == "attribute_ruler"
            steps.append((name, FastAttributeRuler(component) if is_ruler else component))
    return steps


class CaptionParser:
    """Parses captions into priors; one spaCy pipeline, loaded once, shared by every call."""

    def __init__(
        self,
        pipeline: str | None = None,
        batch_size: int = 64,
        n_process: int = 1,
        max_chars: int = MAX_CAPTION_CHARS,
    ) -> None:
        import spacy

        from prior_extraction.rules import extract_priors

        self.pipeline = choose_spacy_pipeline(pipeline)
        self.nlp = spacy.load(self.pipeline, exclude=list(UNUSED_COMPONENTS))
        self._post_parse = _post_parse_steps(self.nlp)
        self.batch_size = batch_size
        self.n_process = n_process
        self.max_chars = max_chars
        self._extract = extract_priors

    def parse(self, text: str) -> ParsedCaption:
        """Priors of one caption; never raises on bad text."""
        return self.parse_many([text])[0]

    def parse_many(self, texts: Iterable[str]) -> list[ParsedCaption]:
        """Priors of many captions in input order; a caption that fails yields empty priors."""
        return list(self.iter_parse(texts))

    def iter_parse(self, texts: Iterable[str]) -> Iterator[ParsedCaption]:
        """Lazily parse captions in input order (for progress bars over long inputs)."""
        cleaned = (clean_caption(text, self.max_chars) for text in texts)
        docs = self.nlp.pipe(
            cleaned,
            batch_size=self.batch_size,
            n_process=self.n_process,
            disable=[name for name, _ in self._post_parse],
        )
        for doc in docs:
            yield self._safe_extract(doc)

    def _safe_extract(self, doc: Doc) -> ParsedCaption:
        try:
            for _, step in self._post_parse:
                doc = step(doc)
            return self._extract(doc)
        except Exception as error:  # a rule tripping over an odd parse must not stop a batch
            logger.warning("no priors for %r: %s: %s", doc.text[:80], type(error).__name__, error)
            return ParsedCaption()
