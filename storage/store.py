"""`PriorStore`: the prior store, a set of Delta Lake tables under one root (a local folder or
`s3://bucket/prefix`), written by delta-rs and read by DuckDB; layout: storage/README.md.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
from deltalake import DeltaTable, WriterProperties
from deltalake.exceptions import DeltaError
from deltalake.fs import DeltaStorageHandler
from pyarrow.fs import FileType, PyFileSystem

from storage import tables
from storage.records import (
    EvalImageClass,
    EvalResult,
    EvalRun,
    FailureRecord,
    ImagePriors,
    ImageRecord,
    PriorSetSpec,
)
from storage.rows import ShardKey, embeddings_table, priors_rows, to_table, vectors_from_table
from storage.schema import (
    DELTA_TABLES,
    PRIORS,
    PRIORS_SCHEMA,
    ROLLED_RELATIONS,
    ROLLUP_TABLES,
    TABLE_COLUMN,
)
from storage.tables import AsOf, StoreError, StoreLocation, sql_list, sql_literal

QUARANTINE_DIR = "_quarantine"
"""Where `repair` moves damaged files: under the root, beside the tables."""
_OPTIMIZE_OPTIONS = {
    "target_size": 128 * 2**20,  # bytes per file compaction writes
    "max_concurrent_tasks": 1,  # one file's rows in memory at a time
    "max_spill_size": 256 * 2**20,  # Z-order's sort spills to disk past this
    "writer_properties": tables.WRITER_PROPERTIES,
}
"""How compaction runs delta-rs's OPTIMIZE (compact and Z-order): memory bounded whatever the
table's size."""
_COUNTS_WRITER = WriterProperties(compression="ZSTD", max_row_group_size=500_000)
"""The compacted count tables, which the statistics read whole: few row groups to decode."""
ROLLUP_MEMORY_LIMIT = "256MB"
"""What compaction's triple counting may hold in memory; DuckDB spills the rest to disk."""
CONFLICT_ATTEMPTS = 5
"""Times a write whose commit conflicts with a concurrent one is redone over the newer version
(delta-rs itself retries commits that do not conflict)."""
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_DONE_TABLES = ("captions", "failures")
_RELATIONS = ("relations", ROLLED_RELATIONS)  # the partitions of the relations table
_PRIOR_TABLES = ("captions", "objects", "attributes", *_RELATIONS)  # what read_priors reads
_PER_IMAGE_TABLES = ("images", "failures", *_PRIOR_TABLES)  # compaction sorts them by image_id
_FAILED_IMAGE_TABLES = ("images", "failures")  # a failed image has rows in these only
_SHARD_NAMES = ("dataset", "split", "shard")  # a shard within its prior set


class SchemaVersionError(StoreError):
    """The store was written with a layout or schema version this code does not read."""


@dataclass(frozen=True)
class CompactionReport:
    """How many Parquet files the compacted tables held before compaction and after it."""

    files_before: int
    files_after: int


@dataclass(frozen=True)
class DamagedFile:
    """A file of the current version that is missing or not as its commit recorded it."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path} ({self.reason})"


@dataclass(frozen=True)
class RepairReport:
    """What `repair` did: damaged files moved into `quarantine` and dropped from their tables,
    and how many images their shards held (dropped as well, so the next extract redoes them)."""

    quarantine: str
    moved: tuple[str, ...]
    images_undone: int


class PriorStore:
    """The prior store at `root` (a folder or `s3://bucket/prefix`), created if missing unless
    `create=False`; layout: storage/README.md."""

    def __init__(self, root: str | Path, create: bool = True) -> None:
        from storage.upgrade import refuse_legacy_layout

        self.location = StoreLocation.parse(root)
        self.root: Path | str = self.location.local or self.location.uri
        self._reader: duckdb.DuckDBPyConnection | None = None
        self._reader_pid = 0
        local = self.location.local
        if local is not None and local.exists() and not local.is_dir():
            raise StoreError(f"{local} is a file, not a prior store folder")
        refuse_legacy_layout(self.location)
        if tables.exists(self.location):
            return
        if not create:
            raise StoreError(f"no prior store at {self.root} (it has no {PRIORS} table)")
        if local is not None and local.is_dir() and not _only_tables(local):
            raise StoreError(f"{local} is not empty and holds no prior store")
        tables.create_tables(self.location)

    @staticmethod
    def exists(root: str | Path) -> bool:
        """Whether a store of this or an older layout is at `root` (an unusable root has none)."""
        from storage.upgrade import LEGACY_MANIFEST

        try:
            location = StoreLocation.parse(root)
        except StoreError:
            return False
        local = location.local
        return tables.exists(location) or (local is not None and (local / LEGACY_MANIFEST).exists())

    @classmethod
    def upgrade(cls, root: str | Path) -> PriorStore:
        """Convert a store of an older layout (Parquet folders, schema versions 1-3) into Delta
        tables, then open it; a store already at this version is only opened."""
        from storage.upgrade import convert_legacy_store

        location = StoreLocation.parse(root)
        convert_legacy_store(location)
        return cls(location.uri, create=False)

    # -- prior sets -----------------------------------------------------------------------------

    def register_prior_set(self, spec: PriorSetSpec) -> str:
        """Record a prior set once and return its stable id (the same spec gives the same id,
        also when several processes register it at once)."""
        try:
            sampling = json.dumps(spec.sampling, sort_keys=True)
        except TypeError as error:
            raise StoreError(f"sampling parameters must be JSON values: {error}") from None
        prior_set_id = spec.prior_set_id
        if prior_set_id in self.prior_set_ids():
            return prior_set_id
        row = {**asdict(spec), "sampling": sampling, "prior_set_id": prior_set_id}
        row["created_at"] = datetime.now(UTC)
        table = to_table("prior_sets", [row])
        where = f"prior_set_id = {sql_literal(prior_set_id)}"
        self._add_new("prior_sets", table, where, lambda: table.slice(0, 0))
        return prior_set_id

    def prior_set_ids(self) -> list[str]:
        """The ids of the registered prior sets, oldest first."""
        rows = self._read("prior_sets", columns=["prior_set_id", "created_at"])
        return rows.sort_by("created_at")["prior_set_id"].to_pylist()

    def _require_prior_set(self, prior_set_id: str) -> None:
        if not _SAFE_NAME.match(prior_set_id) or prior_set_id not in self.prior_set_ids():
            raise StoreError(f"unknown prior set {prior_set_id!r}; register it first")

    def delete_prior_set(self, prior_set_id: str) -> int:
        """Delete a prior set's rows (one commit) and then its registration; returns the files
        the first commit removed."""
        self._require_prior_set(prior_set_id)
        where = f"prior_set_id = {sql_literal(prior_set_id)}"
        metrics = self._table(PRIORS).delete(where)
        self._table("prior_sets").delete(where)
        return int(metrics.get("num_removed_files", 0)) + 1

    # -- shards ---------------------------------------------------------------------------------

    def write_shard(
        self,
        prior_set_id: str,
        dataset: str,
        split: str,
        shard_key: str,
        images: Sequence[ImageRecord],
        priors: Sequence[ImagePriors],
        failures: Sequence[FailureRecord],
        retried: Collection[str] = (),
    ) -> None:
        """Publish one shard's rows in all tables in one commit; the same shard_key replaces
        itself.

        `retried` names images of this shard that earlier shards recorded as failed: their rows
        there are cut in the same commit, so each image keeps one record.
        """
        self._require_prior_set(prior_set_id)
        _require_safe_names(dataset=dataset, split=split)
        key = ShardKey(prior_set_id, dataset, split, shard_key)
        rows = priors_rows(key, images, priors, failures)
        replaced = f"shard = {sql_literal(shard_key)}"
        if retried:
            replaced += (
                f" OR ({TABLE_COLUMN} IN {sql_list(list(_FAILED_IMAGE_TABLES))}"
                f" AND image_id IN {sql_list(sorted(retried))})"
            )
        where = f"dataset = {sql_literal(dataset)} AND split = {sql_literal(split)}"
        where += f" AND ({replaced})"
        for attempt in range(CONFLICT_ATTEMPTS):
            snapshot = self._table(PRIORS)
            try:
                if (dataset, split, shard_key) in self._rolled_shards(snapshot, prior_set_id):
                    # compaction counted this shard's old relations: count them all afresh
                    self._rewrite_relations(snapshot, prior_set_id, False, (key, rows, where))
                else:
                    where_in_set = f"prior_set_id = {sql_literal(prior_set_id)} AND {where}"
                    tables.write(self.location, PRIORS, rows, where_in_set, snapshot)
                return
            except tables.ConcurrentWriteError:
                if attempt == CONFLICT_ATTEMPTS - 1:
                    raise

    def _rolled_shards(self, snapshot: DeltaTable, prior_set_id: str) -> set[tuple[str, str, str]]:
        """(dataset, split, shard) of the shards whose relations compaction has counted."""
        where = (ds.field("prior_set_id") == prior_set_id) & (
            ds.field(TABLE_COLUMN) == "rolled_shards"
        )
        rolled = tables.dataset(snapshot, PRIORS, _partitions(prior_set_id, ["rolled_shards"]))
        rows = rolled.to_table(["dataset", "split", "shard"], where)
        return set(zip(*(rows[name].to_pylist() for name in rows.column_names), strict=True))

    def _rewrite_relations(
        self,
        snapshot: DeltaTable,
        prior_set_id: str,
        roll_up: bool,
        shard: tuple[ShardKey, pa.Table, str] | None = None,
    ) -> None:
        """In one commit over `snapshot`: with `roll_up`, count the prior set's relation triples
        into relation_counts, note the shards counted, and move the relations to the
        rolled_relations partition; without, drop those counts and move every relation back to
        `relations`. `shard` is a shard's key, rows and the condition (within the prior set) of
        the rows they replace, committed together (its old relations are dropped)."""
        from storage.query import connect_unlocked

        rewritten = ("relations", ROLLED_RELATIONS, *ROLLUP_TABLES)
        where = f"{TABLE_COLUMN} IN {sql_list(list(rewritten))}"
        moved = _MOVED_RELATIONS_SQL.format(table=ROLLED_RELATIONS if roll_up else "relations")
        parts: list[Iterable[pa.Table | pa.RecordBatch]] = []
        if shard is not None:
            key, rows, replaced = shard
            where += f" OR ({replaced})"
            parts.append([rows])
            same_shard = (f"{name} = {sql_literal(getattr(key, name))}" for name in _SHARD_NAMES)
            moved += f" AND NOT ({' AND '.join(same_shard)})"
        source = tables.source(
            self.location, snapshot, PRIORS, _partitions(prior_set_id, rewritten)
        )
        connection = connect_unlocked({PRIORS: source}, views=False)
        connection.execute("SET memory_limit = ?", [ROLLUP_MEMORY_LIMIT])
        where = f"prior_set_id = {sql_literal(prior_set_id)} AND ({where})"
        with tempfile.TemporaryDirectory(prefix="rollup-") as spill:
            connection.execute("SET temp_directory = ?", [spill])
            queries = [_ROLLED_SHARDS_SQL, _ROLLUP_SQL, moved] if roll_up else [moved]
            parts.append(_results(connection, queries, [prior_set_id]))
            tables.write(
                self.location, PRIORS, itertools.chain.from_iterable(parts), where, snapshot
            )

    def done_image_ids(
        self,
        prior_set_id: str,
        dataset: str | None = None,
        split: str | None = None,
        failed_count: bool = True,
    ) -> set[str]:
        """Images of a prior set with priors or (unless not `failed_count`) a recorded failure:
        a resumed run skips them."""
        _require_safe_names(prior_set=prior_set_id, dataset=dataset, split=split)
        wanted = list(_DONE_TABLES if failed_count else _DONE_TABLES[:1])
        where = (ds.field("prior_set_id") == prior_set_id) & ds.field(TABLE_COLUMN).isin(wanted)
        for column, value in (("dataset", dataset), ("split", split)):
            if value is not None:
                where &= ds.field(column) == value
        files = _partitions(prior_set_id, wanted)
        rows = self._dataset(PRIORS, files).to_table(columns=["image_id"], filter=where)
        return set(rows["image_id"].to_pylist())

    def image_paths(
        self, dataset: str, split: str, image_ids: Iterable[str]
    ) -> dict[str, set[str]]:
        """The files the store's images of a dataset split with these ids were read from, in
        any prior set."""
        _require_safe_names(dataset=dataset, split=split)
        where = (
            (ds.field(TABLE_COLUMN) == "images")
            & (ds.field("dataset") == dataset)
            & (ds.field("split") == split)
            & ds.field("image_id").isin(pa.array(sorted(set(image_ids)), pa.string()))
        )
        files = f"{TABLE_COLUMN} = 'images'"
        rows = self._dataset(PRIORS, files).to_table(columns=["image_id", "path"], filter=where)
        rows = rows.group_by("image_id").aggregate([("path", "distinct")]).to_pydict()
        return dict(zip(rows["image_id"], map(set, rows["path_distinct"]), strict=True))

    def read_priors(self, prior_set_id: str, image_ids: Iterable[str]) -> dict[str, ImagePriors]:
        """Priors of the given images (those that have some), fetched in one batched read of
        the row groups whose image_id statistics can hold them (compaction Z-orders the rows
        by image_id, so a few images touch a few row groups)."""
        from storage.query import new_connection, read_priors

        wanted = sorted(set(image_ids))
        if not wanted:
            return {}
        if self._reader is None or self._reader_pid != os.getpid():
            self._reader = new_connection()  # one per process: opening costs ~0.1 s
            self._reader_pid = os.getpid()
        rows = self._prior_rows(prior_set_id, wanted)
        return {row["image_id"]: ImagePriors(**row) for row in read_priors(self._reader, rows)}

    def _prior_rows(self, prior_set_id: str, wanted: list[str]) -> pa.Table:
        """The rows `read_priors` needs of these images in the latest version, read by DuckDB
        (decoding only the matching rows' other columns) or, where it cannot, by Arrow."""
        from storage.query import PRIOR_COLUMNS

        files = _partitions(prior_set_id, _PRIOR_TABLES)
        source = tables.source(self.location, self._table(PRIORS), PRIORS, files)
        if isinstance(source, ds.Dataset):
            wanted_ids = ds.field("image_id").isin(pa.array(wanted, pa.string()))
            return source.to_table(columns=list(PRIOR_COLUMNS), filter=wanted_ids)
        if not source:
            return PRIORS_SCHEMA.empty_table().select(list(PRIOR_COLUMNS))
        sql = (
            f"SELECT {', '.join(PRIOR_COLUMNS)} FROM read_parquet($files, hive_partitioning = "
            "true, hive_types_autocast = false) WHERE image_id IN (SELECT unnest($ids))"
        )
        return self._reader.sql(sql, params={"files": source, "ids": wanted}).to_arrow_table()

    # -- compaction -----------------------------------------------------------------------------

    def compact(
        self, prior_set_id: str | None = None, retention_hours: int | None = None
    ) -> CompactionReport:
        """Merge small files (of one prior set's partitions, or of every table) with Delta's
        OPTIMIZE, one target-size file at a time, then VACUUM files no version within
        `retention_hours` (default: the table's, 7 days) reads and checkpoint the log."""
        if prior_set_id is not None:
            self._require_prior_set(prior_set_id)
        if error := self.damage_error():
            raise error
        compacted = (PRIORS, "text_embeddings") if prior_set_id else DELTA_TABLES
        before = self._data_files(compacted, prior_set_id)
        for prior_set in [prior_set_id] if prior_set_id else self.prior_set_ids():
            self._roll_up_relations(prior_set)
        in_set = [("prior_set_id", "=", prior_set_id)] if prior_set_id else []
        for table in compacted:
            delta = self._table(table)
            if table == PRIORS:
                for partition in _unsorted_partitions(delta, prior_set_id):
                    delta.optimize.z_order(["image_id"], partition, **_OPTIMIZE_OPTIONS)
                others = [*in_set, (TABLE_COLUMN, "not in", list(_PER_IMAGE_TABLES))]
                delta.optimize.compact(
                    others, **{**_OPTIMIZE_OPTIONS, "writer_properties": _COUNTS_WRITER}
                )
            else:
                delta.optimize.compact(**_OPTIMIZE_OPTIONS)
            delta.vacuum(
                retention_hours,
                dry_run=False,
                enforce_retention_duration=retention_hours is None,
            )
            delta.create_checkpoint()
            delta.cleanup_metadata()
        return CompactionReport(before, self._data_files(compacted, prior_set_id))

    def _data_files(self, compacted: Sequence[str], prior_set_id: str | None) -> int:
        """Data files of the latest versions of these tables (of `priors`: of the prior set's
        partitions, if given)."""
        predicates = {PRIORS: f"prior_set_id = {sql_literal(prior_set_id)}"} if prior_set_id else {}
        return sum(
            len(self._table(table).file_uris(file_pruning_predicate=predicates.get(table)))
            for table in compacted
        )

    def _roll_up_relations(self, prior_set_id: str) -> None:
        """Count the prior set's relations written since the last rollup into relation_counts
        (one commit; redone over a newer version when a concurrent commit conflicts)."""
        fresh = (ds.field("prior_set_id") == prior_set_id) & (ds.field(TABLE_COLUMN) == "relations")
        for attempt in range(CONFLICT_ATTEMPTS):
            snapshot = self._table(PRIORS)
            if not tables.dataset(snapshot, PRIORS).count_rows(filter=fresh):
                return
            try:
                self._rewrite_relations(snapshot, prior_set_id, roll_up=True)
                return
            except tables.ConcurrentWriteError:
                if attempt == CONFLICT_ATTEMPTS - 1:
                    raise

    # -- text embeddings ------------------------------------------------------------------------

    def read_text_embeddings(self, encoder: str, texts: Iterable[str]) -> dict[str, np.ndarray]:
        """Cached float32 vectors of `texts` under `encoder`; texts not cached are absent."""
        wanted = pa.array(set(texts), pa.string())
        where = (ds.field("encoder") == encoder) & ds.field("text").isin(wanted)
        return vectors_from_table(self._read("text_embeddings", where=where))

    def write_text_embeddings(self, encoder: str, vectors: Mapping[str, np.ndarray]) -> None:
        """Add vectors to the cache; texts already cached for `encoder` are left as they are."""

        def missing() -> pa.Table:
            cached = self.read_text_embeddings(encoder, vectors)
            new = {text: vector for text, vector in vectors.items() if text not in cached}
            return embeddings_table(encoder, new)

        rows = missing()
        if rows.num_rows:
            where = (
                f"encoder = {sql_literal(encoder)} AND text IN {sql_list(rows['text'].to_pylist())}"
            )
            self._add_new("text_embeddings", rows, where, missing)

    # -- vocabularies and evaluation ------------------------------------------------------------

    def write_class_names(self, dataset: str, classes: Sequence[Sequence[str]]) -> None:
        """Record a dataset's classes (each: name first, then synonyms) for the coverage views;
        they replace the dataset's earlier ones."""
        _require_safe_names(dataset=dataset)
        rows = [
            {"dataset": dataset, "class_index": index, "class_name": names[0], "synonym": synonym}
            for index, names in enumerate(classes)
            for synonym in dict.fromkeys(name.strip().lower() for name in names)
        ]
        where = f"dataset = {sql_literal(dataset)}"
        tables.write(self.location, "class_names", to_table("class_names", rows), where)

    def write_eval_results(self, rows: Iterable[EvalResult | Mapping[str, Any]]) -> None:
        """Append evaluation rows (one per checkpoint and dataset) to `eval_results`."""
        try:
            results = [row if isinstance(row, EvalResult) else EvalResult(**row) for row in rows]
        except TypeError as error:
            raise StoreError(f"bad evaluation row: {error}") from None
        created_at = datetime.now(UTC)
        rows = [{**asdict(result), "created_at": created_at} for result in results]
        tables.write(self.location, "eval_results", to_table("eval_results", rows))

    def write_eval_images(self, evaluation: EvalRun, counts: Sequence[EvalImageClass]) -> str:
        """Publish one evaluation's per-image class counts; the same evaluation (all fields of
        `evaluation`) evaluated again replaces its rows. Returns the table written."""
        _require_safe_names(dataset=evaluation.dataset)
        bad = [c for c in counts if not 0 <= c.intersection <= min(c.gt_pixels, c.pred_pixels)]
        if bad:
            raise StoreError(f"eval_images: intersection outside 0..min(gt, pred) in {bad[0]}")
        created_at = datetime.now(UTC)
        rows = [{**asdict(evaluation), **asdict(row), "created_at": created_at} for row in counts]
        where = " AND ".join(
            f"{name} = {str(value).lower() if isinstance(value, bool) else sql_literal(value)}"
            for name, value in asdict(evaluation).items()
        )
        tables.write(
            self.location, "eval_images", to_table("eval_images", rows), replace_where=where
        )
        return self.location.table_uri("eval_images")

    # -- DuckDB -----------------------------------------------------------------------------------

    def connect(
        self, memory_limit: str | None = None, as_of: AsOf = None
    ) -> duckdb.DuckDBPyConnection:
        """A sandboxed DuckDB connection with every table and statistics view of one version of
        the store: the latest, or `as_of` (a version of `priors`, or a time); see
        `storage.query.connect`."""
        from storage.query import DEFAULT_MEMORY_LIMIT, connect

        readable = self.location.local if self.location.duckdb_reads_files else None
        return connect(self.snapshot(as_of), memory_limit or DEFAULT_MEMORY_LIMIT, readable)

    def snapshot(self, as_of: AsOf = None) -> dict[str, tables.Source]:
        """Each Delta table of one version as DuckDB reads it: `priors` at `as_of`, the others
        as they were when that version was committed (all latest when `as_of` is None)."""
        try:
            priors = tables.open_table(self.location, PRIORS, as_of)
        except DeltaError as error:
            raise StoreError(
                f"the store has no version {as_of}: {tables.one_line(error)}"
            ) from None
        when = None if as_of is None else tables.commit_time(priors)
        return {
            table: tables.source(
                self.location,
                priors if table == PRIORS else tables.open_table(self.location, table, when),
                table,
            )
            for table in DELTA_TABLES
        }

    def version(self) -> int:
        """The latest version of the `priors` table (the store's version for `--as-of`)."""
        return self._table(PRIORS).version()

    # -- damage ---------------------------------------------------------------------------------

    def damaged_files(self) -> list[DamagedFile]:
        """Files of the current versions that are missing or whose size is not the one their
        commit recorded (only outside damage makes one: every commit is atomic)."""
        return [found for table in DELTA_TABLES for found, _ in self._damaged_in(table)]

    def damage_error(self) -> StoreError | None:
        """A one-line error naming the damaged files and the command that repairs them, or None
        when there are none (what a read or a compaction that failed on a file reports)."""
        if not (damaged := self.damaged_files()):
            return None
        return StoreError(
            f"the store has {len(damaged)} damaged file(s), first {damaged[0]}; "
            f"run: llmformer priors repair --store {self.root}"
        )

    def _damaged_in(self, table: str) -> list[tuple[DamagedFile, dict[str, Any]]]:
        delta = self._table(table)
        actions = pa.table(delta.get_add_actions(flatten=True)).to_pylist()
        files = PyFileSystem(DeltaStorageHandler(delta.table_uri))
        infos = files.get_file_info([action["path"] for action in actions])
        found = []
        for action, info in zip(actions, infos, strict=True):
            if info.type == FileType.NotFound:
                reason = "missing"
            elif info.size != action["size_bytes"]:
                reason = f"{info.size} bytes, its commit recorded {action['size_bytes']}"
            else:
                continue
            found.append((DamagedFile(f"{table}/{action['path']}", reason), action))
        return found

    def repair(self) -> RepairReport:
        """Move each damaged file to `ROOT/_quarantine/<time>/` and drop it from its table (Delta's
        FSCK), then drop the rest of the shards it held, so no shard is left in part; the next
        extract redoes their images."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        quarantine = f"{self.location.uri}/{QUARANTINE_DIR}/{stamp}"
        files = PyFileSystem(DeltaStorageHandler(self.location.uri))
        moved, undone = [], 0
        for table in DELTA_TABLES:
            damaged = self._damaged_in(table)
            for found, _ in damaged:
                target = f"{QUARANTINE_DIR}/{stamp}/{found.path}"
                files.create_dir(target.rsplit("/", 1)[0])
                try:
                    files.move(found.path, target)
                    moved.append(found.path)
                except FileNotFoundError:
                    pass
            if damaged:
                self._table(table).repair()
            if table == PRIORS:
                undone += self._drop_shards_of([action for _, action in damaged])
        return RepairReport(quarantine, tuple(moved), undone)

    def _drop_shards_of(self, actions: list[dict[str, Any]]) -> int:
        """Delete every row of the shards whose rows lay in these (dropped) files, from the
        shard range their commits recorded; returns how many images the rest of them names."""
        from storage.query import connect_unlocked

        spans = " OR ".join(
            f"(prior_set_id = {sql_literal(action['partition.prior_set_id'])} AND shard BETWEEN "
            f"{sql_literal(action['min.shard'])} AND {sql_literal(action['max.shard'])})"
            for action in actions
            if action.get("min.shard") is not None
        )
        if not spans:
            return 0
        connection = connect_unlocked({PRIORS: self._dataset(PRIORS)}, views=False)
        [(named,)] = connection.sql(
            f"SELECT count(DISTINCT image_id) FROM {PRIORS} WHERE {spans}"
        ).fetchall()
        self._table(PRIORS).delete(spans)
        for prior_set_id in sorted({action["partition.prior_set_id"] for action in actions}):
            snapshot = self._table(PRIORS)
            if self._rolled_shards(snapshot, prior_set_id):  # its triple counts are stale now
                self._rewrite_relations(snapshot, prior_set_id, roll_up=False)
        return named

    # -- Delta access -----------------------------------------------------------------------------

    def _table(self, table: str) -> DeltaTable:
        return DeltaTable(self.location.table_uri(table))

    def _dataset(self, table: str, files: str | None = None) -> ds.Dataset:
        return tables.dataset(self._table(table), table, files)

    def _read(
        self, table: str, columns: list[str] | None = None, where: ds.Expression | None = None
    ) -> pa.Table:
        return self._dataset(table).to_table(columns=columns, filter=where)

    def _add_new(
        self, table: str, rows: pa.Table, where: str, read_new: Callable[[], pa.Table]
    ) -> None:
        """Add `rows`, which `where` matches (and no row of the table should yet), in a commit
        that conflicts with a concurrent one adding such rows; after such a conflict, add what
        `read_new` says is still missing."""
        for attempt in range(2):
            try:
                tables.write(self.location, table, rows, replace_where=where)
                return
            except tables.ConcurrentWriteError:
                if attempt:
                    raise
                rows = read_new()
                if not rows.num_rows:
                    return


# The rows compaction writes for one prior set ($1): its relation triple counts per dataset,
# most mentioned first (so a top-N read skips most row groups), and the shards they count.
_ROLLUP_SQL = f"""
    SELECT 'relation_counts' AS {TABLE_COLUMN}, prior_set_id, dataset, '' AS split, '' AS shard,
           subject_name AS subject, predicate, object_name AS object, count(*) AS mentions
    FROM {PRIORS} WHERE prior_set_id = $1 AND {TABLE_COLUMN} IN {sql_list(list(_RELATIONS))}
    GROUP BY ALL
    ORDER BY dataset, mentions DESC"""
_ROLLED_SHARDS_SQL = f"""
    SELECT DISTINCT 'rolled_shards' AS {TABLE_COLUMN}, prior_set_id, dataset, split, shard
    FROM {PRIORS} WHERE prior_set_id = $1 AND {TABLE_COLUMN} IN {sql_list(list(_RELATIONS))}"""
_MOVED_RELATIONS_SQL = f"""
    SELECT * REPLACE ('{{table}}' AS {TABLE_COLUMN})
    FROM {PRIORS} WHERE prior_set_id = $1 AND {TABLE_COLUMN} IN {sql_list(list(_RELATIONS))}"""


def _files_per_partition(snapshot: DeltaTable) -> Counter[tuple[str, str]]:
    """How many files each (prior set, table) partition of `priors` holds in `snapshot`."""
    actions = pa.table(snapshot.get_add_actions(flatten=True)).to_pylist()
    return Counter((a["partition.prior_set_id"], a[f"partition.{TABLE_COLUMN}"]) for a in actions)


def _results(
    connection: duckdb.DuckDBPyConnection, queries: list[str], params: list[str]
) -> Iterator[pa.RecordBatch]:
    """The rows of each query in turn, streamed: a query runs once the previous one is read."""
    for sql in queries:
        yield from connection.sql(sql, params=params).to_arrow_reader(tables.ROW_GROUP_ROWS)


def _unsorted_partitions(delta: DeltaTable, prior_set_id: str | None) -> list[list[tuple]]:
    """The per-image partitions of `priors` (of one prior set, or all) that hold more than one
    file: compaction Z-orders each by image_id into files of disjoint id ranges (a partition
    of one file, Z-ordered or a single shard's, is left as it is)."""
    return [
        [("prior_set_id", "=", prior_set), (TABLE_COLUMN, "=", table)]
        for (prior_set, table), count in sorted(_files_per_partition(delta).items())
        if count > 1 and table in _PER_IMAGE_TABLES and prior_set_id in (None, prior_set)
    ]


def _partitions(prior_set_id: str, shard_tables: Sequence[str]) -> str:
    """A predicate that keeps the files of these tables of one prior set in `priors`."""
    tables_in = sql_list(list(shard_tables))
    return f"prior_set_id = {sql_literal(prior_set_id)} AND {TABLE_COLUMN} IN {tables_in}"


def _only_tables(folder: Path) -> bool:
    """Whether every entry of `folder` is a table folder of a store (one being created)."""
    return all(path.name in DELTA_TABLES for path in folder.iterdir())


def _require_safe_names(**names: str | None) -> None:
    """Names that become partition values and literals must be plain (no '/', '*', '=' ...)."""
    for what, value in names.items():
        if value is not None and not _SAFE_NAME.match(value):
            raise StoreError(f"{what.replace('_', ' ')} {value!r} must match {_SAFE_NAME.pattern}")
