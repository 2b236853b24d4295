"""Extraction runs against the real parser and store: broken files end in `failures`, runs resume,
Ctrl-C finishes the shard in hand, SIGKILL loses nothing and duplicates nothing, and the CLI."""

from __future__ import annotations

import logging
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from PIL import Image
from typer.testing import CliRunner

import prior_extraction.run as run_module
from flows.cli import app
from prior_extraction import parsing
from prior_extraction.captioners import CaptionRequest
from prior_extraction.captioners.file import FileCaptioner
from prior_extraction.images import load_image
from prior_extraction.parsing import WORKER_EXIT_GRACE_S, CaptionParser, ParserWorkerError
from prior_extraction.run import (
    ExtractionConfig,
    ExtractionConfigError,
    make_shards,
    parse_partition,
    run_extraction,
    select_items,
)
from prior_extraction.sources import FolderSource, ImageItem
from storage import ConcurrentWriteError, PriorStore
from storage.schema import SHARD_TABLES

runner = CliRunner()


@pytest.fixture(scope="module")
def parser() -> CaptionParser:
    return CaptionParser()


def _config(**overrides) -> ExtractionConfig:
    return ExtractionConfig(
        **{"batch_size": 2, "shard_size": 4, "show_progress": False, **overrides}
    )


def _rows(store: PriorStore, sql: str, prior_set_id: str) -> list[tuple]:
    return store.connect().execute(sql, [prior_set_id]).fetchall()


def _id_counts(store: PriorStore, table: str, prior_set_id: str) -> dict[str, int]:
    sql = f"SELECT image_id, count(*) FROM {table} WHERE prior_set_id = ? GROUP BY image_id"
    return dict(_rows(store, sql, prior_set_id))


def test_broken_files_end_in_failures_and_good_ones_are_captioned(
    tmp_path, mixed_folder, captions_for, parser
) -> None:
    folder, good_ids, broken = mixed_folder
    every_id = good_ids | set(broken)
    captions = captions_for(
        tmp_path / "c.jsonl", {i: "A red car is next to a tree." for i in every_id}
    )
    store = PriorStore(tmp_path / "store")
    summary = run_extraction(
        FolderSource(folder), FileCaptioner(captions), parser, store, _config()
    )
    assert (summary.total, summary.captioned, summary.failed) == (10, 6, 4)
    assert not summary.interrupted and summary.remaining == 0

    priors = store.read_priors(summary.prior_set_id, every_id)
    assert set(priors) == good_ids
    assert {"car", "tree"} <= {obj["name"] for obj in priors["cmyk.jpg"].objects}
    failures = _rows(
        store,
        "SELECT image_id, stage, error_class FROM failures WHERE prior_set_id = ?",
        summary.prior_set_id,
    )
    assert {row[0]: row[1:] for row in failures} == {
        name: ("validate", error_class) for name, error_class in broken.items()
    }
    images = _rows(
        store,
        "SELECT image_id, width, height, status, path FROM images WHERE prior_set_id = ?",
        summary.prior_set_id,
    )
    by_id = {row[0]: row[1:] for row in images}
    assert by_id["cmyk.jpg"] == (16, 16, "ok", os.path.abspath(folder / "cmyk.jpg"))
    assert by_id["nested/gray.png"][:3] == (10, 10, "ok")
    assert by_id["bomb.png"][:3] == (None, None, "failed")


def test_second_run_resumes_with_nothing_left(tmp_path, noise_folder, parser) -> None:
    folder, captions = noise_folder(9)
    store = PriorStore(tmp_path / "store")
    first = run_extraction(FolderSource(folder), FileCaptioner(captions), parser, store, _config())
    second = run_extraction(FolderSource(folder), FileCaptioner(captions), parser, store, _config())
    assert (first.captioned, first.already_done) == (9, 0)
    assert (second.captioned, second.failed, second.already_done) == (0, 0, 9)
    assert second.prior_set_id == first.prior_set_id
    assert set(_id_counts(store, "captions", first.prior_set_id).values()) == {1}


def test_an_image_without_a_caption_is_a_caption_failure(
    tmp_path, noise_folder, captions_for, parser
) -> None:
    folder, _ = noise_folder(3)
    captions = captions_for(
        tmp_path / "partial.jsonl", {"0000.png": "A cat.", "0002.png": "A dog."}
    )
    store = PriorStore(tmp_path / "store")
    summary = run_extraction(
        FolderSource(folder), FileCaptioner(captions), parser, store, _config()
    )
    assert (summary.captioned, summary.failed) == (2, 1)
    row = _rows(
        store,
        "SELECT f.stage, f.error_class, i.width, i.status FROM failures f "
        "JOIN images i USING (prior_set_id, image_id) WHERE f.prior_set_id = ?",
        summary.prior_set_id,
    )
    assert row == [("caption", "MissingCaptionError", 32, "failed")]


def test_captions_naming_no_object_give_empty_priors_counted_in_the_summary(
    tmp_path, noise_folder, captions_for, parser
) -> None:
    folder, _ = noise_folder(3)
    texts = {
        "0000.png": "A red car is parked next to a tree.",
        "0001.png": "The overall atmosphere is calm and inviting.",
        "0002.png": "It is a lovely moment, full of charm.",
    }
    captions = captions_for(tmp_path / "c.jsonl", texts)
    store = PriorStore(tmp_path / "store")
    summary = run_extraction(
        FolderSource(folder), FileCaptioner(captions), parser, store, _config()
    )
    assert (summary.captioned, summary.failed, summary.without_objects) == (3, 0, 2)
    assert store.done_image_ids(summary.prior_set_id) == set(texts)
    objects = _id_counts(store, "objects", summary.prior_set_id)
    assert set(objects) == {"0000.png"}


def test_limit_takes_the_first_images_and_partitions_split_the_rest() -> None:
    items = [ImageItem(f"{i}.png", Path(f"{i}.png"), "d", "all") for i in range(50)]
    assert [item.image_id for item in select_items(items, (0, 1), 3)] == ["0.png", "1.png", "2.png"]
    halves = [select_items(items, (index, 2), None) for index in (0, 1)]
    assert sorted(halves[0] + halves[1], key=items.index) == items
    assert 10 < len(halves[0]) < 40
    assert parse_partition("1/4") == (1, 4)
    with pytest.raises(ExtractionConfigError, match="expected I/N"):
        parse_partition("1-4")
    with pytest.raises(ExtractionConfigError, match="partition 4/4: need 0 <= index < count"):
        ExtractionConfig(partition=(4, 4))
    with pytest.raises(ExtractionConfigError, match="batch_size must be at least 1"):
        ExtractionConfig(batch_size=0)


def test_shards_never_mix_splits_and_have_content_keys() -> None:
    items = [ImageItem(f"{i}", Path("x"), "d", "train" if i < 5 else "val") for i in range(7)]
    shards = list(make_shards(items, 2))
    assert [(shard.split, len(shard.items)) for shard in shards] == [
        ("train", 2),
        ("train", 2),
        ("train", 1),
        ("val", 2),
    ]
    assert len({shard.key for shard in shards}) == 4
    assert shards[0].key == next(make_shards(items[:2], 2)).key


class _CtrlCCaptioner(FileCaptioner):
    """Presses Ctrl-C (SIGINT to this process) while its `at_call`-th batch is being captioned."""

    def __init__(self, captions: Path, at_call: int) -> None:
        super().__init__(captions)
        self.calls, self.at_call = 0, at_call

    def caption(self, batch):
        self.calls += 1
        if self.calls == self.at_call:
            os.kill(os.getpid(), signal.SIGINT)
        return super().caption(batch)


def test_ctrl_c_finishes_the_shard_in_hand_then_resume_completes(
    tmp_path, noise_folder, parser
) -> None:
    folder, captions = noise_folder(12)
    store = PriorStore(tmp_path / "store")
    shards_seen = []
    handler_before = signal.getsignal(signal.SIGINT)
    summary = run_extraction(
        FolderSource(folder),
        _CtrlCCaptioner(captions, at_call=3),
        parser,
        store,
        _config(),
        on_shard=lambda shard, progress: shards_seen.append((shard.key, progress.processed)),
    )
    assert summary.interrupted
    assert (summary.captioned, summary.remaining) == (8, 4)
    assert [processed for _, processed in shards_seen] == [4, 8]
    assert len(store.done_image_ids(summary.prior_set_id)) == 8
    assert signal.getsignal(signal.SIGINT) is handler_before

    resumed = run_extraction(
        FolderSource(folder), FileCaptioner(captions), parser, store, _config()
    )
    assert (resumed.already_done, resumed.captioned, resumed.interrupted) == (8, 4, False)
    assert _id_counts(store, "captions", summary.prior_set_id) == {
        f"{i:04d}.png": 1 for i in range(12)
    }


class _StuckCaptioner(FileCaptioner):
    """Sends `signum` to this process at its first batch, then takes far longer than any grace."""

    def __init__(self, captions: Path, signum: int) -> None:
        super().__init__(captions)
        self.signum = signum

    def caption(self, batch):
        os.kill(os.getpid(), self.signum)
        time.sleep(60)
        return super().caption(batch)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_ends_a_stuck_shard_within_the_grace(
    tmp_path, noise_folder, parser, monkeypatch, signum
) -> None:
    folder, captions = noise_folder(4)
    monkeypatch.setattr(run_module, "STOP_GRACE_S", 0.5)
    store = PriorStore(tmp_path / "store")
    handlers_before = {sig: signal.getsignal(sig) for sig in STOP_AND_ALARM_SIGNALS}
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_extraction(FolderSource(folder), _StuckCaptioner(captions, signum), parser, store)
    assert time.monotonic() - started < 10
    assert {sig: signal.getsignal(sig) for sig in handlers_before} == handlers_before
    assert "llmformer-stop-grace" not in {thread.name for thread in threading.enumerate()}


STOP_AND_ALARM_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGALRM)


def _ctrl_c_with_parser_processes(
    folder: Path, captions: Path, store: Path, workers: CaptionParser, reference: CaptionParser
) -> None:
    """Ctrl-C during the third caption batch of a 12-image run whose captions `workers` (a
    parser with two processes) parse: the run stops after two shards, and the workers still
    parse as `reference` (an in-process parser) does."""
    caption = "Two dogs run on the green grass next to a red car."
    summary = run_extraction(
        FolderSource(folder),
        _CtrlCCaptioner(captions, at_call=3),
        workers,
        PriorStore(store),
        _config(),
    )
    assert (summary.interrupted, summary.captioned) == (True, 8)
    assert workers.parse(caption) == reference.parse(caption)


def test_ctrl_c_leaves_parser_worker_processes_working(tmp_path, noise_folder, parser) -> None:
    folder, captions = noise_folder(12)
    handlers_before = {sig: signal.getsignal(sig) for sig in STOP_AND_ALARM_SIGNALS}
    with CaptionParser(n_process=2) as workers:
        _ctrl_c_with_parser_processes(folder, captions, tmp_path / "store", workers, parser)
    assert {sig: signal.getsignal(sig) for sig in handlers_before} == handlers_before


class _BusyThreads:
    """Threads that, until stopped, keep taking a lock and a queue's lock and logging, as the
    threads of a whole test suite do: a process forked meanwhile may copy a lock held."""

    def __init__(self, count: int) -> None:
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._churn, name=f"busy-{index}", daemon=True)
            for index in range(count)
        ]

    def _churn(self) -> None:
        chores: queue.Queue[int] = queue.Queue()
        log = logging.getLogger("tests.busy")
        while not self.stop.is_set():
            with self.lock:
                chores.put(1)
                chores.get()
                log.debug("churn")
            time.sleep(0.001)

    def __enter__(self) -> _BusyThreads:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(5)


STRESS_ROUNDS, RUNS_PER_ROUND = 5, 10
RUN_BOUND_S = 10.0


@pytest.mark.slow
@pytest.mark.timeout(STRESS_ROUNDS * RUNS_PER_ROUND * RUN_BOUND_S)
def test_ctrl_c_with_parser_processes_ends_every_time_with_other_threads_alive(
    tmp_path, noise_folder, parser
) -> None:
    """The scenario that once hung a whole test run, 50 times over, while four threads churn
    locks; each round of 10 starts its own two workers among those threads and stops them."""
    folder, captions = noise_folder(12)
    handlers_before = {sig: signal.getsignal(sig) for sig in STOP_AND_ALARM_SIGNALS}
    with _BusyThreads(4) as busy:
        for round_ in range(STRESS_ROUNDS):
            workers = CaptionParser(n_process=2)
            try:
                for run in range(RUNS_PER_ROUND):
                    started = time.monotonic()
                    store = tmp_path / f"store-{round_}-{run}"
                    _ctrl_c_with_parser_processes(folder, captions, store, workers, parser)
                    took = time.monotonic() - started
                    assert took < RUN_BOUND_S, f"round {round_} run {run} took {took:.1f} s"
            finally:
                started = time.monotonic()
                workers.close()
            assert time.monotonic() - started < 2 * WORKER_EXIT_GRACE_S
        assert all(thread.is_alive() for thread in busy.threads)
    assert {sig: signal.getsignal(sig) for sig in handlers_before} == handlers_before


@pytest.mark.parametrize("arm", ["alarm", "setitimer"])
def test_an_alarm_set_before_a_run_still_fires_after_it(
    tmp_path, noise_folder, parser, arm: str
) -> None:
    """The run's stop grace must leave the process's one real-time timer alone."""
    folder, captions = noise_folder(12)
    fired = threading.Event()

    def on_alarm(signum: int, frame: object) -> None:
        fired.set()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        if arm == "alarm":
            signal.alarm(4)
        else:
            signal.setitimer(signal.ITIMER_REAL, 4.0)
        summary = run_extraction(
            FolderSource(folder),
            _CtrlCCaptioner(captions, at_call=3),
            parser,
            PriorStore(tmp_path / "store"),
            _config(),
        )
        assert summary.interrupted
        assert signal.getsignal(signal.SIGALRM) is on_alarm
        deadline = time.monotonic() + 10
        while not fired.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)  # the handler runs in this thread, between sleeps
        assert fired.is_set()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


KILLED_RUN = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from prior_extraction.captioners.file import FileCaptioner
    from prior_extraction.parsing import CaptionParser
    from prior_extraction.run import ExtractionConfig, run_extraction
    from prior_extraction.sources import FolderSource
    from storage import PriorStore

    class KilledCaptioner(FileCaptioner):
        calls = 0

        def caption(self, batch):
            self.calls += 1
            if self.calls == int(sys.argv[4]):
                os.kill(os.getpid(), signal.SIGKILL)
            return super().caption(batch)

    folder, captions, store = sys.argv[1:4]
    config = ExtractionConfig(batch_size=2, shard_size=4, show_progress=False)
    run_extraction(
        FolderSource(Path(folder)), KilledCaptioner(Path(captions)), CaptionParser(),
        PriorStore(store), config,
    )
    """
)


def test_sigkill_then_restart_stores_every_image_exactly_once(
    tmp_path, noise_folder, parser
) -> None:
    folder, captions = noise_folder(12)
    script = tmp_path / "killed_run.py"
    script.write_text(KILLED_RUN)
    store_root = tmp_path / "store"
    # Killed while captioning shard 3: shard 1 is stored, shard 2 may be mid-publish.
    args = [sys.executable, str(script), str(folder), str(captions), str(store_root), "5"]
    killed = subprocess.run(args, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    store = PriorStore(store_root)
    prior_set_id = _only_prior_set(store)
    done_after_kill = len(store.done_image_ids(prior_set_id))
    assert done_after_kill in {4, 8}

    restarted = run_extraction(
        FolderSource(folder), FileCaptioner(captions), parser, store, _config()
    )
    assert (restarted.already_done, restarted.captioned) == (done_after_kill, 12 - done_after_kill)
    every_id = {f"{i:04d}.png": 1 for i in range(12)}
    for table in ("images", "captions"):
        assert _id_counts(store, table, prior_set_id) == every_id


def _only_prior_set(store: PriorStore) -> str:
    (row,) = store.connect().execute("SELECT prior_set_id FROM prior_sets").fetchall()
    return row[0]


def _extract_args(folder: Path, captions: Path, store: Path, *extra: str) -> list[str]:
    return [
        "priors",
        "extract",
        "--images",
        str(folder),
        "--captioner",
        "file",
        "--captions",
        str(captions),
        "--store",
        str(store),
        "--shard-size",
        "4",
        "--no-progress",
        *extra,
    ]


def _summary_rows(output: str) -> dict[str, str]:
    cells = [line.split("│")[1:3] for line in output.splitlines() if line.count("│") == 3]
    return {label.strip(): value.strip() for label, value in cells}


def test_cli_prints_a_summary_and_skips_done_images(tmp_path, noise_folder) -> None:
    folder, captions = noise_folder(5)
    store = tmp_path / "store"
    first = runner.invoke(app, _extract_args(folder, captions, store, "--limit", "3"))
    assert first.exit_code == 0, first.output
    rows = _summary_rows(first.output)
    assert (rows["images in source"], rows["done now"], rows["already there"]) == ("3", "3", "0")
    second = runner.invoke(app, _extract_args(folder, captions, store))
    assert second.exit_code == 0, second.output
    rows = _summary_rows(second.output)
    assert (rows["done now"], rows["already there"], rows["failed"]) == ("2", "3", "0")
    assert rows["no objects"] == "0"


@pytest.mark.parametrize(
    ("extra", "compacted"),
    [((), True), (("--no-compact",), False), (("--partition", "0/1"), True)],
)
def test_cli_compacts_the_prior_set_when_the_run_completes(
    tmp_path, noise_folder, extra: tuple[str, ...], compacted: bool
) -> None:
    folder, captions = noise_folder(10)
    store = tmp_path / "store"
    result = runner.invoke(app, _extract_args(folder, captions, store, *extra))
    assert result.exit_code == 0, result.output
    assert len(_data_files(store, "relations")) == (0 if compacted else 3)
    assert len(_data_files(store, "rolled_relations")) == (1 if compacted else 0)
    # every table but failures (no image failed) holds a file per shard; after compaction one,
    # and the relations' triple counts and the shards counted beside them
    tables = len(SHARD_TABLES) - 1
    report = f"compacted {3 * tables} files into {tables + 2}"
    assert (report in result.output) == compacted


def test_cli_a_failed_compaction_keeps_the_priors_and_names_the_fix(
    tmp_path, noise_folder, monkeypatch
) -> None:
    def refuse(store: PriorStore, prior_set_id: str | None = None) -> None:
        raise ConcurrentWriteError("another process changed the store")

    monkeypatch.setattr(PriorStore, "compact", refuse)
    folder, captions = noise_folder(5)
    result = runner.invoke(app, _extract_args(folder, captions, tmp_path / "store"))
    assert result.exit_code == 1
    prior_set_id = _only_prior_set(PriorStore(tmp_path / "store"))
    assert (
        "error: compaction failed (another process changed the store); the priors are saved, "
        f"finish it with: llmformer priors compact --store {tmp_path / 'store'} "
        f"--prior-set {prior_set_id}"
    ) in result.output
    assert len(PriorStore(tmp_path / "store").done_image_ids(prior_set_id)) == 5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--captioner", "file"], "error: give exactly one of --images, --manifest or --dataset"),
        (["--captioner", "file", "--dataset", "nope", "--data-root", "."], "unknown dataset"),
        (["--captioner", "file", "--images", "."], "error: the file captioner needs --captions"),
        (["--captioner", "gpt", "--images", "."], "error: unknown captioner 'gpt'"),
        (["--captioner", "file", "--images", ".", "--partition", "2/2"], "error: partition 2/2"),
    ],
)
def test_cli_user_errors_are_one_line_and_exit_2(tmp_path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["priors", "extract", "--store", str(tmp_path / "s"), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_transformers_run_stores_each_images_own_caption(
    tmp_path, noise_folder, tiny_captioner, parser
) -> None:
    folder, _ = noise_folder(7)
    captioner = tiny_captioner
    store = PriorStore(tmp_path / "store")
    config = _config(batch_size=3, shard_size=5)
    summary = run_extraction(FolderSource(folder), captioner, parser, store, config)
    assert (summary.captioned, summary.failed) == (7, 0)

    expected = {
        item.image_id: captioner.caption(
            [CaptionRequest(item.image_id, load_image(item.path).image)]
        )[0]
        for item in FolderSource(folder).items()
    }
    stored = store.read_priors(summary.prior_set_id, expected)
    assert {image_id: priors.caption for image_id, priors in stored.items()} == expected


def _data_files(store: Path, table: str) -> list[str]:
    """The data files of one shard table in the store's current version (paths under priors/)."""
    actions = pa.table(DeltaTable(str(store / "priors")).get_add_actions(flatten=True))
    return [row["path"] for row in actions.to_pylist() if row["partition.table_name"] == table]


def _each_image_once(store: Path) -> dict[str, int]:
    """How many rows each image has in `images`, `captions` and `failures` together, per table."""
    connection = PriorStore(store).connect()
    counts = {}
    for table in ("images", "captions", "failures"):
        counts[table] = connection.execute(
            f"SELECT count(*), count(DISTINCT image_id) FROM {table}"
        ).fetchall()[0]
    return counts


def test_cli_retry_failed_redoes_fixed_images_and_lists_failures(tmp_path, noise_folder) -> None:
    folder, captions = noise_folder(5)
    broken = folder / "9999.png"
    broken.write_bytes(b"\x89PNG not really")
    with captions.open("a") as lines:
        lines.write('{"id": "9999.png", "caption": "A red car on the road."}\n')
    store = tmp_path / "store"
    first = runner.invoke(app, _extract_args(folder, captions, store))
    assert first.exit_code == 0, first.output
    assert _summary_rows(first.output)["failed"] == "1"
    assert "first 1 of 1 failures:" in first.stdout
    assert f"  {broken.resolve()} (validate) UnidentifiedImageError: " in first.stdout
    prior_set_id = _only_prior_set(PriorStore(store))
    assert (
        f'all failures: llmformer priors query --store {store} "SELECT path, stage, error_class,'
        f" message FROM failures WHERE prior_set_id = '{prior_set_id}'\""
    ) in first.stdout
    Image.new("RGB", (32, 24), (10, 20, 30)).save(broken)
    resumed = runner.invoke(app, _extract_args(folder, captions, store))
    assert _summary_rows(resumed.output)["already there"] == "6"
    retried = runner.invoke(app, _extract_args(folder, captions, store, "--retry-failed"))
    assert retried.exit_code == 0, retried.output
    rows = _summary_rows(retried.output)
    assert (rows["done now"], rows["failed"], rows["retried (failed before)"]) == ("1", "0", "1")
    assert _each_image_once(store) == {"images": (6, 6), "captions": (6, 6), "failures": (0, 0)}


def test_cli_after_repair_the_next_extract_redoes_the_damaged_shard(tmp_path, noise_folder) -> None:
    folder, captions = noise_folder(10)
    store = tmp_path / "store"
    assert runner.invoke(app, _extract_args(folder, captions, store, "--no-compact")).exit_code == 0
    damaged = store / "priors" / sorted(_data_files(store, "captions"))[1]
    damaged.write_bytes(damaged.read_bytes()[:200])
    refused = runner.invoke(app, _extract_args(folder, captions, store))
    assert refused.exit_code == 2
    assert f"run: llmformer priors repair --store {store}, then extract again" in refused.stderr
    repaired = runner.invoke(app, ["priors", "repair", "--store", str(store)])
    assert repaired.exit_code == 0, repaired.output
    redone = runner.invoke(app, _extract_args(folder, captions, store))
    assert redone.exit_code == 0, redone.output
    rows = _summary_rows(redone.output)
    assert int(rows["done now"]) in (2, 4)  # the shard of four, or the last one of two
    assert int(rows["done now"]) + int(rows["already there"]) == 10
    assert _each_image_once(store) == {"images": (10, 10), "captions": (10, 10), "failures": (0, 0)}


def test_cli_reports_captions_that_name_no_image(tmp_path, noise_folder) -> None:
    folder, captions = noise_folder(2)
    with captions.open("a") as lines:
        for ghost in ("ghost-1.png", "ghost-2.png"):
            lines.write(f'{{"id": "{ghost}", "caption": "A cat."}}\n')
    result = runner.invoke(app, _extract_args(folder, captions, tmp_path / "store"))
    assert result.exit_code == 0, result.output
    assert (
        f"warning: 2 captions in {captions} name no image of" in result.stderr
        and "(first: 'ghost-1.png', 'ghost-2.png'); they are not used" in result.stderr
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--shard-size", "0"], "error: --shard-size must be at least 1, got 0"),
        (["--batch-size", "0"], "error: --batch-size must be at least 1, got 0"),
        (["--limit", "-1"], "error: --limit must be at least 0, got -1"),
        (["--parse-processes", "0"], "error: --parse-processes must be at least 1, got 0"),
    ],
)
def test_cli_count_options_are_named_by_their_flag(tmp_path, noise_folder, extra, message) -> None:
    folder, captions = noise_folder(1)
    result = runner.invoke(app, _extract_args(folder, captions, tmp_path / "store", *extra))
    assert result.exit_code == 2
    assert result.stderr.strip() == message
    assert not (tmp_path / "store").exists()


def test_cli_a_store_that_is_a_file_or_captions_not_utf8_are_one_line(
    tmp_path, noise_folder
) -> None:
    folder, captions = noise_folder(1)
    not_a_store = tmp_path / "store.txt"
    not_a_store.write_text("")
    result = runner.invoke(app, _extract_args(folder, captions, not_a_store))
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {not_a_store} is a file, not a prior store folder"
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes(captions.read_bytes() + '{"id": "x", "caption": "café"}\n'.encode("latin-1"))
    result = runner.invoke(app, _extract_args(folder, latin1, tmp_path / "store"))
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: {latin1}:2: not UTF-8 text (byte 0xe9 at column 28); "
        "save the captions file as UTF-8"
    )


GROUP_STOPPED_RUN = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from prior_extraction.captioners import file as file_captioner
    from flows.cli import main

    class HeldCaptioner(file_captioner.FileCaptioner):
        \"\"\"Its third batch (shard 2 of 3) says `ready`, then waits for the test's `sent`.\"\"\"

        calls = 0
        ready, sent = Path(sys.argv[1]), Path(sys.argv[2])

        def caption(self, batch):
            HeldCaptioner.calls += 1
            if HeldCaptioner.calls == 3:
                self.ready.touch()
                deadline = time.monotonic() + 60
                while not self.sent.exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
            return super().caption(batch)

    if __name__ == "__main__":
        file_captioner.FileCaptioner = HeldCaptioner
        sys.argv = ["llmformer", *sys.argv[3:]]
        main()
    """
)


def test_cli_sigterm_to_the_process_group_finishes_the_shard_in_hand(
    tmp_path, noise_folder
) -> None:
    """As a scheduler cancelling a job does: the parser workers get the SIGTERM too, and must
    leave the stop to the run, which finishes its shard and exits as for Ctrl-C."""
    folder, captions = noise_folder(12)
    script, ready, sent = tmp_path / "group_stopped.py", tmp_path / "ready", tmp_path / "sent"
    script.write_text(GROUP_STOPPED_RUN)
    store = tmp_path / "store"
    extract = _extract_args(folder, captions, store, "--batch-size", "2", "--parse-processes", "2")
    command = [sys.executable, str(script), str(ready), str(sent), *extract]
    run = subprocess.Popen(command, start_new_session=True, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists() and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), run.stderr.read() if run.poll() is not None else "not ready"
        os.killpg(run.pid, signal.SIGTERM)
        sent.touch()
        _, stderr = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait(10)
    assert run.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == (
        "interrupted: 4 images left; run the same command to resume"
    )
    assert len(PriorStore(store).done_image_ids(_only_prior_set(PriorStore(store)))) == 8


def test_cli_a_parser_worker_that_dies_is_one_line_and_the_written_shards_stay(
    tmp_path, noise_folder, monkeypatch
) -> None:
    class DyingParser(CaptionParser):
        """Its second batch meets a worker that was killed (as by the OOM killer)."""

        calls = 0

        def parse_many(self, texts):
            DyingParser.calls += 1
            if DyingParser.calls == 2:
                raise ParserWorkerError("parser worker llmformer-parser-0 exited (code -9)")
            return super().parse_many(texts)

    monkeypatch.setattr(parsing, "CaptionParser", DyingParser)
    folder, captions = noise_folder(12)
    store = tmp_path / "store"
    result = runner.invoke(app, _extract_args(folder, captions, store))
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: parser worker llmformer-parser-0 exited (code -9); the shards written are kept, "
        "run the same command to resume"
    )
    assert len(PriorStore(store).done_image_ids(_only_prior_set(PriorStore(store)))) == 4
