"""The caption parser: LLM image descriptions into object, attribute and relation priors with
spaCy dependency rules, batched through `nlp.pipe`. Knows nothing of storage.

>>> parser = CaptionParser()
>>> parser.parse("A man is riding a brown horse.").to_dict()["relations"]
[{'subject': 0, 'predicate': 'ride', 'object': 1}]
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

from prior_extraction.caption_priors import (
    ATTRIBUTE_KINDS,
    AttributePrior,
    ObjectPrior,
    ParsedCaption,
    RelationPrior,
)
from prior_extraction.caption_text import MAX_CAPTION_CHARS, clean_caption
from prior_extraction.nlp import choose_spacy_pipeline

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

logger = logging.getLogger(__name__)


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
        docs = self.nlp.pipe(cleaned, batch_size=self.batch_size, n_process=self.n_process)
        for doc in docs:
            yield self._safe_extract(doc)

    def _safe_extract(self, doc) -> ParsedCaption:
        try:
            return self._extract(doc)
        except Exception as error:  # a rule tripping over an odd parse must not stop a batch
            logger.warning("no priors for %r: %s: %s", doc.text[:80], type(error).__name__, error)
            return ParsedCaption()
