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
import queue
import signal
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from multiprocessing.connection import Connection, wait
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
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
    "ParserWorkerError",
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
WORKER_START_METHOD = "spawn"
"""How parser workers start: never by forking this process, whose other threads may hold locks
that a forked child would inherit locked; nor from a forkserver, one more process in the
caller's process group whose death by a group-wide SIGTERM (a batch scheduler cancelling the
job, `kill -- -PGID`) leaves its workers' exit codes unreadable."""
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""Signals a terminal or a scheduler sends the whole process group (or cgroup): the process that
started the workers handles them, and ends the workers itself."""
PYTHON_IGNORED_SIGNALS = frozenset({signal.SIGPIPE, signal.SIGXFSZ})
"""Signals every Python process ignores from its start (it reports them as errors instead)."""
WORKER_EXIT_GRACE_S = 2.0
"""Seconds a parser worker has to finish its batch and exit when asked before it is killed (and
again to be reaped after SIGKILL)."""
PARENT_CHECK_S = 1.0
"""How often an idle parser worker checks that the process that started it is still alive."""


class ParserWorkerError(RuntimeError):
    """A parser worker process failed to start, died, or was stopped while captions were out."""


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

    With `n_process > 1` the captions are parsed by that many worker processes, started here
    (so from the constructing thread) by `WORKER_START_METHOD`, each with its own pipeline,
    loaded before the constructor returns; only captions go out and priors come back, in input
    order. Call `close()` (or use the parser as a context manager) to stop them; a script that
    builds one must guard its entry point with `if __name__ == "__main__":`, as for any spawned
    process.
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
        self._pool: _WorkerProcesses | None = None
        if n_process > 1:
            self._pool = _WorkerProcesses(
                n_process, _WorkerSettings(self.pipeline, batch_size, max_chars)
            )
            weakref.finalize(self, self._pool.close)

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
        """Stop the worker processes, if any: ask them to exit, then SIGKILL after
        `WORKER_EXIT_GRACE_S`; returns within twice that grace."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __enter__(self) -> CaptionParser:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

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
        if self._pool is None:
            raise ParserWorkerError("the parser's worker processes were closed")
        for parsed in self._pool.parse_batches(_batches(texts, self.batch_size)):
            yield from parsed

    def _safe_extract(self, doc: Doc) -> ParsedCaption:
        try:
            for _, step in self._post_parse:
                doc = step(doc)
            return self._extract(doc)
        except Exception as error:  # a rule tripping over an odd parse must not stop a batch
            logger.warning("no priors for %r: %s: %s", doc.text[:80], type(error).__name__, error)
            return ParsedCaption()


@dataclass(frozen=True)
class _WorkerSettings:
    """What a worker process needs to build its own parser."""

    pipeline: str | None
    batch_size: int
    max_chars: int


@dataclass(frozen=True)
class _Worker:
    """One worker process, the queue it takes batches from, and the pipe its priors come back on
    (this process holds only the receiving end, so the worker's exit ends it)."""

    process: BaseProcess
    tasks: Queue
    results: Connection


class _WorkerProcesses:
    """Parser worker processes. Batch i goes to worker i % n and each worker answers in order,
    so reading the workers in turn gives the priors in input order; every wait for an answer
    also watches the worker's exit."""

    def __init__(self, count: int, settings: _WorkerSettings) -> None:
        context = multiprocessing.get_context(WORKER_START_METHOD)
        self._workers = [_start_worker(context, index, settings) for index in range(count)]
        self._one_iteration_at_a_time = threading.Lock()
        self._closed = False
        try:
            for worker in self._workers:
                self._receive(worker)  # None once its parser is loaded
        except BaseException:  # a worker that cannot load, or Ctrl-C meanwhile
            self.close()
            raise

    def parse_batches(self, batches: Iterable[list[str]]) -> Iterator[list[ParsedCaption]]:
        """Priors of each batch, in order, with at most `BATCHES_PER_WORKER` batches per worker
        given out ahead, so the input is read lazily."""
        window = len(self._workers) * BATCHES_PER_WORKER
        owing: deque[_Worker] = deque()
        with self._one_iteration_at_a_time:
            self._require_open()
            try:
                for index, batch in enumerate(batches):
                    if len(owing) == window:
                        yield self._receive(owing.popleft())
                    worker = self._workers[index % len(self._workers)]
                    worker.tasks.put(batch)
                    owing.append(worker)
                while owing:
                    yield self._receive(owing.popleft())
            finally:
                self._drop_answers(owing)

    def close(self) -> None:
        """Ask each worker to exit, end them (`end_processes`), then release their queues and
        pipes."""
        if self._closed:
            return
        self._closed = True
        for worker in self._workers:
            worker.tasks.put(None)
        if still_alive := end_processes([worker.process for worker in self._workers]):
            logger.warning("parser workers still alive after SIGKILL: %s", still_alive)
        for worker in self._workers:
            worker.tasks.cancel_join_thread()
            worker.tasks.close()
            worker.results.close()

    def _require_open(self) -> None:
        if self._closed:
            raise ParserWorkerError("the parser's worker processes were closed")

    def _receive(self, worker: _Worker) -> list[ParsedCaption] | None:
        self._require_open()
        try:
            wait([worker.results, worker.process.sentinel])
            answer = worker.results.recv()
        except (EOFError, OSError, ValueError):
            self.close()
            raise ParserWorkerError(
                f"parser worker {worker.process.name} exited (code {worker.process.exitcode}) "
                "before answering"
            ) from None
        if isinstance(answer, str):
            self.close()
            raise ParserWorkerError(f"parser worker {worker.process.name} failed: {answer}")
        return answer

    def _drop_answers(self, owing: deque[_Worker]) -> None:
        """Read and drop the answers still owed by an iteration that ended early, so the next
        one starts in step; a worker that fails meanwhile stops them all."""
        try:
            while owing and not self._closed:
                self._receive(owing.popleft())
        except ParserWorkerError as error:
            logger.warning("%s", error)


def _start_worker(context: BaseContext, index: int, settings: _WorkerSettings) -> _Worker:
    """Start one worker with the stop signals blocked, so that it inherits them blocked and
    none can end it before it has set them ignored (`_serve_batches`)."""
    tasks = context.Queue()
    receiving, sending = context.Pipe(duplex=False)
    process = context.Process(
        target=_serve_batches,
        args=(tasks, sending, settings),
        name=f"llmformer-parser-{index}",
        daemon=True,
    )
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        process.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    sending.close()
    return _Worker(process, tasks, receiving)


def _take_own_signals() -> None:
    """A worker's signal state: the stop signals ignored, every other signal at its default and
    none blocked, whatever its starting process ignored or blocked (exec keeps both), so that a
    worker a signal should end does end, and its death is seen."""
    for signum in signal.valid_signals() - PYTHON_IGNORED_SIGNALS - set(STOP_SIGNALS):
        if signal.getsignal(signum) == signal.SIG_IGN:
            signal.signal(signum, signal.SIG_DFL)
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())


def end_processes(
    processes: Sequence[BaseProcess], grace_s: float = WORKER_EXIT_GRACE_S
) -> list[BaseProcess]:
    """Give processes already asked to exit `grace_s` to do so, SIGKILL the rest and reap them,
    waiting at most `grace_s` again; returns those still alive (none, unless the kernel cannot
    end them)."""
    if still_alive := _join_all(processes, grace_s):
        for process in still_alive:
            process.kill()
        still_alive = _join_all(still_alive, grace_s)
    return still_alive


def _join_all(processes: Sequence[BaseProcess], timeout_s: float) -> list[BaseProcess]:
    """Wait until every process has exited or `timeout_s` has passed; those still alive."""
    deadline = time.monotonic() + timeout_s
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    return [process for process in processes if process.is_alive()]


def _serve_batches(tasks: Queue, results: Connection, settings: _WorkerSettings) -> None:
    """A worker process's life: load a parser once and say so (None, or one line saying what
    failed), then answer each batch with its priors (or one line saying what failed) until it is
    asked to exit (None for a batch) or the starting process is gone. The stop signals are the
    starting process's to handle: a terminal or a scheduler sends them to every process of the
    group, and a worker that died of them would lose the shard that process is finishing."""
    _take_own_signals()
    try:
        parser = CaptionParser(
            settings.pipeline, batch_size=settings.batch_size, max_chars=settings.max_chars
        )
    except Exception as error:
        results.send(f"cannot load the parser: {type(error).__name__}: {error}")
        return
    results.send(None)
    starter = multiprocessing.parent_process()
    while True:
        try:
            batch = tasks.get(timeout=PARENT_CHECK_S)
        except queue.Empty:
            if starter is not None and not starter.is_alive():
                return
            continue
        if batch is None:  # asked to exit: at once, as a forked child does, without the
            os._exit(0)  # interpreter's teardown, which takes seconds to free a pipeline
        try:
            answer: list[ParsedCaption] | str = parser.parse_many(batch)
        except Exception as error:  # parse_many survives bad captions; this is worse
            answer = f"{type(error).__name__}: {error}"
        results.send(answer)
