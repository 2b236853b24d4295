"""An extraction run: source -> validate -> caption in batches -> parse -> shards in the store.

Resumable: the run first asks the store which images its prior set already has and does only the
rest; each shard is published atomically, so a killed run loses at most the shard in hand.
Three things overlap: the next shard's images decode in loader threads, and the previous shard
is parsed and written by a writer thread, while the current shard is captioned. With a parser
built with `n_process > 1`, parsing runs in that many worker processes. Ctrl-C finishes the
shard in hand, writes it, and returns; a second Ctrl-C stops at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import groupby, islice

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from prior_extraction.captioners import (
    Captioner,
    CaptionerIdentity,
    CaptionFailure,
    CaptionRequest,
)
from prior_extraction.images import DEFAULT_MAX_PIXELS, InvalidImageError, LoadedImage, load_image
from prior_extraction.parsing import PARSER_NAME, PARSER_VERSION, CaptionParser
from prior_extraction.sources import ImageItem, ImageSource, SourceError
from storage import (
    FailureRecord,
    ImagePriors,
    ImageRecord,
    PriorSetSpec,
    PriorStore,
    StoreError,
)

FAILURES_SHOWN = 5
"""How many of a run's failures its summary lists."""
STOP_GRACE_S = 8.0
"""Seconds a stopping run may spend finishing its shard: every stop ends within 10 s."""


class ExtractionConfigError(ValueError):
    """Run settings that cannot work (a batch size of 0, a partition index out of range)."""


class ImageCollisionError(SourceError):
    """Images whose ids the store already holds, in the same dataset and split, for other files
    (two folders of one name): a run would skip them as done."""


@dataclass(frozen=True)
class ExtractionConfig:
    """How a run goes; none of these change the priors, so none are part of the prior set."""

    batch_size: int = 8
    shard_size: int = 256
    limit: int | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    load_workers: int = 4
    prior_set_name: str | None = None
    partition: tuple[int, int] = (0, 1)
    show_progress: bool = True
    retry_failed: bool = False

    def __post_init__(self) -> None:
        index, count = self.partition
        if count < 1 or not 0 <= index < count:
            raise ExtractionConfigError(f"partition {index}/{count}: need 0 <= index < count")
        for name in ("batch_size", "shard_size", "load_workers"):
            if getattr(self, name) < 1:
                raise ExtractionConfigError(f"{name} must be at least 1")
        if self.limit is not None and self.limit < 0:
            raise ExtractionConfigError("limit must not be negative")


@dataclass
class ExtractionSummary:
    """What a run did: `already_done` images were skipped because the prior set had them;
    `without_objects` of the captioned ones got empty priors, their caption naming no
    physical object."""

    prior_set_id: str
    total: int
    already_done: int = 0
    captioned: int = 0
    failed: int = 0
    without_objects: int = 0
    interrupted: bool = False
    seconds: float = 0.0
    retried: int = 0
    first_failures: list[FailureRecord] = field(default_factory=list)
    """The run's first `FAILURES_SHOWN` failures; the store's `failures` table has them all."""

    @property
    def processed(self) -> int:
        return self.captioned + self.failed

    @property
    def remaining(self) -> int:
        return self.total - self.already_done - self.processed

    @property
    def images_per_s(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Shard:
    """Up to `shard_size` images of one dataset split; its key is derived from its image ids."""

    dataset: str
    split: str
    items: Sequence[ImageItem]

    @property
    def key(self) -> str:
        ids = "\n".join(item.image_id for item in self.items)
        return hashlib.sha256(ids.encode("utf-8")).hexdigest()[:16]


@dataclass
class ShardRecords:
    """The rows one shard adds to the store."""

    images: list[ImageRecord] = field(default_factory=list)
    priors: list[ImagePriors] = field(default_factory=list)
    failures: list[FailureRecord] = field(default_factory=list)

    def add_failure(
        self,
        item: ImageItem,
        stage: str,
        error_class: str,
        message: str,
        image: LoadedImage | None = None,
    ) -> None:
        path = os.path.abspath(item.path)
        facts = (image.width, image.height, image.sha256) if image else (None, None, None)
        self.images.append(ImageRecord(item.image_id, path, *facts, "failed"))
        self.failures.append(FailureRecord(item.image_id, path, stage, error_class, message))

    def add_priors(self, item: ImageItem, image: LoadedImage, priors: ImagePriors) -> None:
        path = os.path.abspath(item.path)
        facts = (image.width, image.height, image.sha256)
        self.images.append(ImageRecord(item.image_id, path, *facts, "ok"))
        self.priors.append(priors)


def parse_partition(text: str) -> tuple[int, int]:
    """`"I/N"` (this process's share of N) -> (I, N)."""
    index, _, count = text.partition("/")
    if not (index.isdigit() and count.isdigit()):
        raise ExtractionConfigError(f"partition {text!r}: expected I/N, e.g. 0/4")
    return int(index), int(count)


Captioned = tuple[ImageItem, LoadedImage, str]
ShardCallback = Callable[[Shard, ExtractionSummary], None]


def prior_set_spec(
    captioner: Captioner | CaptionerIdentity, name: str | None = None
) -> PriorSetSpec:
    """The prior set a captioner's output belongs to, with this package's parser; a flow that
    must not load the model passes `captioner_identity(name, options)` instead."""
    return PriorSetSpec(
        captioner=captioner.name,
        model=captioner.model,
        prompt=captioner.prompt,
        sampling=dict(captioner.sampling),
        parser=PARSER_NAME,
        parser_version=PARSER_VERSION,
        name=name,
    )


def run_extraction(
    source: ImageSource,
    captioner: Captioner,
    parser: CaptionParser,
    store: PriorStore,
    config: ExtractionConfig | None = None,
    on_shard: ShardCallback | None = None,
) -> ExtractionSummary:
    """Extract priors for every image of `source` the prior set lacks (with `retry_failed`, also
    those it holds a failure for); returns what was done.

    `on_shard` is called after each shard is published (a Prefect flow reports progress there).
    """
    config = config or ExtractionConfig()
    started = time.perf_counter()
    require_undamaged(store)
    items = select_items(source.items(), config.partition, config.limit)
    require_own_images(store, items)
    prior_set_id = store.register_prior_set(prior_set_spec(captioner, config.prior_set_name))
    pending = pending_items(store, prior_set_id, items, config.retry_failed)
    retried = failed_items(store, prior_set_id, pending) if config.retry_failed else set()
    summary = ExtractionSummary(
        prior_set_id, len(items), already_done=len(items) - len(pending), retried=len(retried)
    )
    shards = list(make_shards(pending, config.shard_size))
    stop = threading.Event()
    with _progress(source, summary, config.show_progress) as advance, _stop_on_signals(stop):
        worker = _ShardWorker(captioner, parser, store, prior_set_id, config, advance, retried)
        summary.interrupted = worker.run(shards, stop, summary, on_shard)
    summary.seconds = time.perf_counter() - started
    return summary


def require_undamaged(store: PriorStore) -> None:
    """Refuse to extract into a store with damaged files: their images would be done twice."""
    if damaged := store.damaged_files():
        raise StoreError(
            f"the store has {len(damaged)} damaged file(s), first {damaged[0]}; run: "
            f"llmformer priors repair --store {store.root}, then extract again"
        )


def require_own_images(store: PriorStore, items: Sequence[ImageItem]) -> None:
    """Refuse items whose ids the store already holds, in their dataset and split, for another
    file: their priors would be taken for these images' (`ImageCollisionError`)."""
    by_partition: dict[tuple[str, str], list[ImageItem]] = {}
    for item in items:
        by_partition.setdefault((item.dataset, item.split), []).append(item)
    for (dataset, split), group in by_partition.items():
        stored = store.image_paths(dataset, split, (item.image_id for item in group))
        clashes = []
        for item in group:
            here = os.path.abspath(item.path)
            if others := stored.get(item.image_id, set()) - {here}:
                clashes.append((item.image_id, min(others), here))
        if clashes:
            image_id, there, here = clashes[0]
            raise ImageCollisionError(
                f"dataset {dataset!r} of the store already has {len(clashes)} of these image ids "
                f"for other files, e.g. {image_id!r} from {there}, not {here}"
            )


def select_items(
    items: Sequence[ImageItem], partition: tuple[int, int], limit: int | None
) -> list[ImageItem]:
    """This process's share of the images (a stable hash of the id picks the partition), then
    the first `limit` of them."""
    index, count = partition
    if count > 1:
        items = [item for item in items if _partition_of(item.image_id, count) == index]
    return list(items[:limit] if limit is not None else items)


def _partition_of(image_id: str, count: int) -> int:
    digest = hashlib.sha256(image_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def pending_items(
    store: PriorStore, prior_set_id: str, items: list[ImageItem], retry_failed: bool = False
) -> list[ImageItem]:
    """The items the store holds neither priors nor (unless `retry_failed`) a failure for, in
    source order."""
    done = _done_by_partition(store, prior_set_id, items, failed_count=not retry_failed)
    return [item for item in items if item.image_id not in done[item.dataset, item.split]]


def failed_items(store: PriorStore, prior_set_id: str, pending: list[ImageItem]) -> set[str]:
    """Ids of the `pending` items (none has priors) that the store holds a failure for."""
    done = _done_by_partition(store, prior_set_id, pending, failed_count=True)
    return {item.image_id for item in pending if item.image_id in done[item.dataset, item.split]}


def _done_by_partition(
    store: PriorStore, prior_set_id: str, items: list[ImageItem], failed_count: bool
) -> dict[tuple[str, str], set[str]]:
    partitions = {(item.dataset, item.split) for item in items}
    return {
        (dataset, split): store.done_image_ids(prior_set_id, dataset, split, failed_count)
        for dataset, split in partitions
    }


def make_shards(items: Sequence[ImageItem], shard_size: int) -> Iterator[Shard]:
    """Consecutive runs of one dataset split, cut every `shard_size` images."""
    for (dataset, split), group in groupby(items, key=lambda item: (item.dataset, item.split)):
        for chunk in batched(group, shard_size):
            yield Shard(dataset, split, chunk)


def batched(values: Iterable, size: int) -> Iterator[tuple]:
    """Consecutive tuples of `size` values, the last one shorter (Python 3.12's batched)."""
    iterator = iter(values)
    while chunk := tuple(islice(iterator, size)):
        yield chunk


def _load(item: ImageItem, max_pixels: int) -> LoadedImage | InvalidImageError:
    try:
        return load_image(item.path, max_pixels)
    except InvalidImageError as error:
        return error


class _ShardWorker:
    """Runs shards through validate -> caption -> parse -> write, loads and writes overlapped."""

    def __init__(
        self,
        captioner: Captioner,
        parser: CaptionParser,
        store: PriorStore,
        prior_set_id: str,
        config: ExtractionConfig,
        advance: Callable[[int], None],
        retried: set[str],
    ) -> None:
        self.captioner = captioner
        self.parser = parser
        self.store = store
        self.prior_set_id = prior_set_id
        self.config = config
        self.advance = advance
        self.retried = retried

    def run(
        self,
        shards: list[Shard],
        stop: threading.Event,
        summary: ExtractionSummary,
        on_shard: ShardCallback | None,
    ) -> bool:
        """Process shards in order; returns True when a stop request ended the run early."""
        with (
            ThreadPoolExecutor(self.config.load_workers, "llmformer-load") as loader,
            ThreadPoolExecutor(1, "llmformer-write") as writer,
        ):
            loads = self._submit_loads(loader, shards[0]) if shards else []
            written: Future[None] | None = None
            for index, shard in enumerate(shards):
                loaded = [future.result() for future in loads]
                if index + 1 < len(shards):
                    loads = self._submit_loads(loader, shards[index + 1])
                records, captioned = self.caption_shard(shard, loaded)
                if written is not None:
                    written.result()
                written = writer.submit(self._finish, shard, records, captioned, summary, on_shard)
                if stop.is_set():
                    _cancel(loads)
                    break
            if written is not None:
                written.result()
        return stop.is_set() and summary.remaining > 0

    def _submit_loads(self, loader: ThreadPoolExecutor, shard: Shard) -> list[Future]:
        return [loader.submit(_load, item, self.config.max_pixels) for item in shard.items]

    def caption_shard(
        self, shard: Shard, loaded: list[LoadedImage | InvalidImageError]
    ) -> tuple[ShardRecords, list[Captioned]]:
        """Caption the valid images in batches; invalid images and caption failures become rows."""
        records = ShardRecords()
        valid: list[tuple[ImageItem, LoadedImage]] = []
        for item, result in zip(shard.items, loaded, strict=True):
            if isinstance(result, InvalidImageError):
                records.add_failure(item, "validate", result.error_class, result.message)
            else:
                valid.append((item, result))
        self.advance(len(shard.items) - len(valid))
        return records, self._caption(valid, records)

    def _caption(
        self, valid: list[tuple[ImageItem, LoadedImage]], records: ShardRecords
    ) -> list[Captioned]:
        captioned = []
        for batch in batched(valid, self.config.batch_size):
            requests = [CaptionRequest(item.image_id, image.image) for item, image in batch]
            results = self.captioner.caption(requests)
            if len(results) != len(batch):
                raise RuntimeError(
                    f"captioner {self.captioner.name} returned {len(results)} captions "
                    f"for {len(batch)} images"
                )
            for (item, image), result in zip(batch, results, strict=True):
                if isinstance(result, CaptionFailure):
                    records.add_failure(item, "caption", result.error_class, result.message, image)
                else:
                    captioned.append((item, image, result))
            self.advance(len(batch))
        return captioned

    def _finish(
        self,
        shard: Shard,
        records: ShardRecords,
        captioned: list[Captioned],
        summary: ExtractionSummary,
        on_shard: ShardCallback | None,
    ) -> None:
        """Parse the shard's captions and publish it (in the writer thread, overlapping the
        captioning of the next shard)."""
        parsed = self.parser.parse_many(caption for _, _, caption in captioned)
        for (item, image, caption), priors in zip(captioned, parsed, strict=True):
            records.add_priors(item, image, ImagePriors(item.image_id, caption, **priors.to_dict()))
        self.store.write_shard(
            self.prior_set_id,
            shard.dataset,
            shard.split,
            shard.key,
            images=records.images,
            priors=records.priors,
            failures=records.failures,
            retried=[item.image_id for item in shard.items if item.image_id in self.retried],
        )
        summary.captioned += len(records.priors)
        summary.failed += len(records.failures)
        missing = FAILURES_SHOWN - len(summary.first_failures)
        summary.first_failures.extend(records.failures[:missing])
        summary.without_objects += sum(1 for priors in records.priors if not priors.objects)
        if on_shard is not None:
            on_shard(shard, summary)


def _cancel(futures: list[Future]) -> None:
    for future in futures:
        future.cancel()


class _RateColumn(ProgressColumn):
    """Images per second, averaged by rich over its speed window."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        label = f"{speed:.1f} images/s" if speed else "-- images/s"
        return Text(label, style="progress.data.speed")


@contextlib.contextmanager
def _progress(
    source: ImageSource, summary: ExtractionSummary, visible: bool
) -> Iterator[Callable[[int], None]]:
    """A progress bar over the images this run does; yields the function that advances it."""
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not visible,
    )
    pending = summary.total - summary.already_done
    description = f"{source.describe()} ({summary.already_done} already there)"
    with progress:
        task = progress.add_task(description, total=pending)
        yield lambda count: progress.advance(task, count)


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """The first Ctrl-C (or SIGTERM) sets `stop`: the shard in hand is finished if that takes at
    most `STOP_GRACE_S`, else abandoned (resume redoes it); a second signal interrupts at once.

    The grace is a timer thread that, when it runs out, sends the main thread SIGINT (the second
    signal); the process's one real-time timer (`signal.alarm`, `setitimer`) is left to others.
    Signal handlers can only be installed from the main thread; elsewhere (a Prefect worker
    thread) the signals keep their usual meaning.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    grace = threading.Timer(STOP_GRACE_S, _interrupt_main_thread)
    grace.name, grace.daemon = "llmformer-stop-grace", True

    def request_stop(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        grace.start()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        try:
            grace.cancel()
            if grace.is_alive():
                grace.join(STOP_GRACE_S)
        finally:
            for sig, handler in previous.items():  # SIGINT last: the timer may just have fired
                signal.signal(sig, handler)


def _interrupt_main_thread() -> None:
    """SIGINT to the main thread itself, so that a blocking call there (a sleep, a socket read)
    is interrupted too; `_thread.interrupt_main` would wait for it to return."""
    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
