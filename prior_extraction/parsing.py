"""The caption parser: LLM image descriptions into object, attribute and relation priors with
spaCy dependency rules, batched through `nlp.pipe`. Knows nothing of storage.

>>> parser = CaptionParser()
>>> parser.parse("A man is riding a brown horse.").to_dict()["relations"]
[{'subject': 0, 'predicate': 'ride', 'object': 1}]
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from itertools import islice
from multiprocessing.pool import Pool
from typing import TYPE_CHECKING

from prior_extraction.caption_priors import (
    ATTRIBUTE_KINDS,
    AttributePrior,
    ObjectPrior,
    ParsedCaption,
    RelationPrior,
)
from prior_extraction.caption_text import MAX_CAPTION_CHARS, clean_caption
from prior_extraction.nlp import choose_spacy_pipeline, load_spacy_pipeline

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
# 3: one object per instance; 3.1: pattern nouns; 3.2: "is a X" refers; 3.3: a denial covers
# its whole list ("no cats or dogs", "without"), quoted writing names nothing
PARSER_VERSION = "3.4.0"  # 3.4: picture words in context, locating modifiers, guesses, dummy "it"
# Components the rules never read: named entities cost more than the dependency parse itself.
UNUSED_COMPONENTS = ("ner",)
# Components run after `nlp.pipe`, in this process, through faster stand-ins (fast_annotators):
# the attribute ruler, then the lemmatizer that needs its coarse tags.
POST_PARSE_COMPONENTS = ("attribute_ruler", "lemmatizer")

logger = logging.getLogger(__name__)


def _post_parse_steps(nlp: Language) -> list[tuple[str, Callable[[Doc], Doc]]]:
    """Stand-ins for the pipeline's attribute ruler and lemmatizer, to run on parsed docs;
    missing ones are skipped, so any English pipeline with a parser works."""
    from prior_extraction.fast_annotators import FastAttributeRuler, OpenClassLemmatizer

    stand_ins = {"attribute_ruler": FastAttributeRuler, "lemmatizer": OpenClassLemmatizer}
    return [
        (name, stand_ins[name](nlp.get_pipe(name)))
        for name in POST_PARSE_COMPONENTS
        if name in nlp.pipe_names
    ]


_ONE_BATCH_AT_A_TIME = threading.Lock()

# With n_process > 1, each worker gets this many batches at a time, so input is read lazily.
BATCHES_PER_WORKER = 16
MIN_CAPTIONS_PER_PROCESS = 500


def default_process_count(captions: int | None = None) -> int:
    """One parser process per CPU core this process may run on; for a known number of
    captions, no more than one per MIN_CAPTIONS_PER_PROCESS (a worker's pipeline takes about as
    long to load as a few hundred paragraphs take to parse)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    if captions is None:
        return cores
    return max(1, min(cores, captions // MIN_CAPTIONS_PER_PROCESS))


def _batches(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(texts)
    while batch := list(islice(iterator, size)):
        yield batch


class CaptionParser:
    """Parses captions into priors; one spaCy pipeline, loaded once, shared by every call.

    With `n_process > 1` the captions are parsed by that many worker processes, each with its
    own pipeline, in batches; only captions go out and priors come back, in input order. (Where
    processes are spawned rather than forked, call it under `if __name__ == "__main__":`.)
    """

    def __init__(
        self,
        pipeline: str | None = None,
        batch_size: int = 64,
        n_process: int = 1,
        max_chars: int = MAX_CAPTION_CHARS,
    ) -> None:
        from threadpoolctl import ThreadpoolController

        from prior_extraction.lexicon import noun_table
        from prior_extraction.rules import extract_priors

        noun_table()  # here, so that a missing table fails loudly, not as empty priors

        self.pipeline = choose_spacy_pipeline(pipeline)
        self.nlp = load_spacy_pipeline(self.pipeline, exclude=UNUSED_COMPONENTS)
        self._blas = ThreadpoolController()
        self._post_parse = _post_parse_steps(self.nlp)
        self.batch_size = batch_size
        self.n_process = n_process
        self.max_chars = max_chars
        self._extract = extract_priors
        self._pool: Pool | None = None

    def parse(self, text: str) -> ParsedCaption:
        """Priors of one caption; never raises on bad text."""
        return self.parse_many([text])[0]

    def parse_many(self, texts: Iterable[str]) -> list[ParsedCaption]:
        """Priors of many captions in input order; a caption that fails yields empty priors."""
        return list(self.iter_parse(texts))

    def iter_parse(self, texts: Iterable[str]) -> Iterator[ParsedCaption]:
        """Lazily parse captions in input order (for progress bars over long inputs)."""
        if self.n_process > 1:
            return self._iter_parse_in_workers(texts)
        return self._iter_parse_here(texts)

    def close(self) -> None:
        """Stop the worker processes, if any were started."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool = None

    def pipe_disabled_components(self) -> list[str]:
        """The pipeline components `nlp.pipe` skips here (their stand-ins run afterwards)."""
        return [name for name, _ in self._post_parse]

    @contextmanager
    def blas_limit(self) -> Iterator[None]:
        """One BLAS thread, one batch at a time: the products are small, so more threads only
        add overhead, and the worker processes or the extraction run's loader threads use the
        other cores. The limit is process-wide, so threads sharing the process take turns."""
        with _ONE_BATCH_AT_A_TIME, self._blas.limit(limits=1, user_api="blas"):
            yield

    def _iter_parse_here(self, texts: Iterable[str]) -> Iterator[ParsedCaption]:
        cleaned = (clean_caption(text, self.max_chars) for text in texts)
        disabled = self.pipe_disabled_components()
        for batch in _batches(cleaned, self.batch_size):
            with self.blas_limit():
                docs = list(self.nlp.pipe(batch, batch_size=self.batch_size, disable=disabled))
            yield from map(self._safe_extract, docs)

    def _iter_parse_in_workers(self, texts: Iterable[str]) -> Iterator[ParsedCaption]:
        pool = self._worker_pool()
        window = self.n_process * BATCHES_PER_WORKER
        for batches in _batches(_batches(texts, self.batch_size), window):
            for parsed in pool.imap(_parse_in_worker, batches):
                yield from parsed

    def _worker_pool(self) -> Pool:
        if self._pool is None:
            settings = (self.pipeline, self.batch_size, self.max_chars)
            context = multiprocessing.get_context()
            self._pool = context.Pool(self.n_process, _start_worker, settings)
            weakref.finalize(self, self._pool.terminate)
        return self._pool

    def _safe_extract(self, doc: Doc) -> ParsedCaption:
        try:
            for _, step in self._post_parse:
                doc = step(doc)
            return self._extract(doc)
        except Exception as error:  # a rule tripping over an odd parse must not stop a batch
            logger.warning("no priors for %r: %s: %s", doc.text[:80], type(error).__name__, error)
            return ParsedCaption()


_worker_parser: CaptionParser | None = None


def _start_worker(pipeline: str, batch_size: int, max_chars: int) -> None:
    """Load this worker process's own parser once."""
    global _worker_parser
    _worker_parser = CaptionParser(pipeline, batch_size=batch_size, max_chars=max_chars)


def _parse_in_worker(texts: list[str]) -> list[ParsedCaption]:
    assert _worker_parser is not None, "worker started without _start_worker"
    return _worker_parser.parse_many(texts)
