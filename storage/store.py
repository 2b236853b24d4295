"""`PriorStore`: the Parquet prior store on disk, written atomically, read in batches.

Layout: `ROOT/<table>/dataset=<d>/split=<s>/<prior_set_id>-<shard>.parquet` for the per-image
tables, `ROOT/prior_sets/<id>.parquet`, `ROOT/text_embeddings/<encoder>-<content>.parquet`,
`ROOT/class_names/<dataset>.parquet`, `ROOT/eval_results/<content>.parquet`,
`ROOT/eval_images/dataset=<d>/<evaluation>.parquet` (a re-run evaluation replaces its file),
`ROOT/relation_counts/dataset=<d>/<prior_set_id>.parquet`; every table also holds a zero-row
`schema.parquet` so DuckDB can read it before anything was written. Shard files are named
`<prior_set_id>-s<hash>.parquet`, compacted ones `<prior_set_id>-c<hash>.parquet`; the triples of
compacted relation files are counted in `relation_counts`, rebuilt whenever those files change.
`ROOT/store.json` names the schema version; `ROOT/views.sql` serves the plain `duckdb` CLI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from storage import publish
from storage.damage import DamagedFile, damage_of, find_damaged
from storage.records import (
    EvalImageClass,
    EvalResult,
    EvalRun,
    FailureRecord,
    ImagePriors,
    ImageRecord,
    PriorSetSpec,
    stable_hash,
)
from storage.rows import (
    ShardKey,
    embeddings_table,
    shard_tables,
    to_table,
    vectors_from_table,
)
from storage.schema import (
    COMPRESSION,
    ROLLUP_ROW_GROUP_ROWS,
    ROW_GROUP_ROWS,
    SCHEMA_VERSION,
    SHARD_TABLES,
    TABLES,
    schema_of,
)

if TYPE_CHECKING:
    import duckdb

MANIFEST = "store.json"
ANCHOR = "schema.parquet"
QUARANTINE_DIR = "_quarantine"
"""Where `repair` moves damaged files: under the root, outside every table's glob."""
VIEWS_SQL = Path(__file__).with_name("views.sql")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")
"""`s3://...`, also as `s3:/...` once a Path has collapsed its slashes."""
GLOB_CHARACTERS = "[]*?"


class StoreError(Exception):
    """A problem with the store a user can fix; the message is one line."""


class SchemaVersionError(StoreError):
    """The store on disk was written with a schema version this code does not read."""


@dataclass(frozen=True)
class CompactionReport:
    """How many Parquet files compaction merged and how many it wrote."""

    files_before: int
    files_after: int


@dataclass(frozen=True)
class RepairReport:
    """What `repair` did: files moved into `quarantine`, files rebuilt in place (zero-row anchors,
    relation rollups), and how many images the moved shards held (now undone)."""

    quarantine: Path
    moved: tuple[Path, ...]
    rebuilt: tuple[Path, ...]
    images_undone: int


def write_parquet(table: pa.Table, path: Path, row_group_rows: int = ROW_GROUP_ROWS) -> None:
    """Write one Parquet file the way every store file is written (zstd, large row groups)."""
    pq.write_table(table, path, compression=COMPRESSION, row_group_size=row_group_rows)


class PriorStore:
    """The prior store at `root`, created if missing unless `create=False`; layout: module doc."""

    def __init__(self, root: str | Path, create: bool = True) -> None:
        self._locate(root, create)
        self.root.mkdir(parents=True, exist_ok=True)
        publish.recover(self.root)
        self._open_or_initialise()

    @classmethod
    def upgrade(cls, root: str | Path) -> PriorStore:
        """Bring an older store to this schema version, one transaction per version, then open it.

        Version 2 added `relation_counts`: the rollup of every prior set and dataset with
        compacted relation files is written. Version 3 added `eval_images` (its anchor). A store
        already at this version is only opened.
        """
        store = cls.__new__(cls)
        store._locate(root, create=False)
        publish.recover(store.root)
        manifest = store.root / MANIFEST
        while (version := store._read_version(manifest)) in cls._UPGRADES:
            cls._UPGRADES[version](store, manifest)
        return cls(store.root, create=False)

    # -- opening --------------------------------------------------------------------------------

    def _locate(self, root: str | Path, create: bool) -> None:
        """Point at `root` without reading it; unless `create`, a store must already be there."""
        _require_local_plain_path(str(root))
        self.root = Path(root).expanduser().resolve()
        _require_local_plain_path(str(self.root))
        self._reader: duckdb.DuckDBPyConnection | None = None
        self._reader_pid = 0
        self.damaged: list[DamagedFile] = []
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"{self.root} is a file, not a prior store folder")
        if not create and not (self.root / MANIFEST).exists():
            raise StoreError(f"no prior store at {self.root} (it has no {MANIFEST})")

    def _open_or_initialise(self) -> None:
        manifest = self.root / MANIFEST
        if manifest.exists():
            self._check_version(manifest)
            self._refresh_views_sql()
            return
        if any(path.name != publish.STAGING_DIR for path in self.root.iterdir()):
            raise StoreError(f"{self.root} is not empty and has no {MANIFEST}: not a prior store")
        with publish.transaction(self.root) as txn:
            for table in TABLES:
                write_parquet(schema_of(table).empty_table(), txn.stage(self._anchor(table)))
            txn.stage(self.root / VIEWS_SQL.name).write_text(VIEWS_SQL.read_text())
            txn.stage(manifest).write_text(json.dumps({"schema_version": SCHEMA_VERSION}))

    def _read_version(self, manifest: Path) -> int:
        """The schema version `manifest` names: a whole number, or a StoreError."""
        try:
            version = json.loads(manifest.read_text())["schema_version"]
        except (ValueError, KeyError, TypeError) as error:  # TypeError: not a JSON object
            raise StoreError(
                f"{manifest} is unreadable ({error}); is this a prior store?"
            ) from None
        if not isinstance(version, int) or isinstance(version, bool):
            raise StoreError(f"{manifest} names schema version {version!r}, not a whole number")
        return version

    def _check_version(self, manifest: Path) -> None:
        version = self._read_version(manifest)
        if version == SCHEMA_VERSION:
            return
        remedy = (
            f"run: llmformer priors upgrade --store {self.root}"
            if version in self._UPGRADES
            else "write a new store or use a matching llmformer release"
        )
        raise SchemaVersionError(
            f"the store at {self.root} has schema version {version}, but this llmformer "
            f"reads schema version {SCHEMA_VERSION}; {remedy}"
        )

    def _upgrade_from_version_1(self, manifest: Path) -> None:
        """Add `relation_counts` (its anchor and every rollup) and the views that read it."""
        compacted = (self.root / "relations").glob("dataset=*/split=*/*-c*.parquet")
        rollups = {(path.name.split("-")[0], _dataset_of(path)) for path in compacted}
        with publish.transaction(self.root) as txn:
            txn.expect_unchanged(manifest)
            anchor = self._anchor("relation_counts")
            write_parquet(schema_of("relation_counts").empty_table(), txn.stage(anchor))
            for prior_set_id, dataset in sorted(rollups):
                self._stage_relation_rollup(txn, prior_set_id, dataset)
            self._stage_version(txn, manifest, 2)

    def _upgrade_from_version_2(self, manifest: Path) -> None:
        """Add the `eval_images` table (its anchor) and the views that read it."""
        with publish.transaction(self.root) as txn:
            txn.expect_unchanged(manifest)
            anchor = self._anchor("eval_images")
            write_parquet(schema_of("eval_images").empty_table(), txn.stage(anchor))
            self._stage_version(txn, manifest, 3)

    # The step from each older schema version to the next one.
    _UPGRADES: ClassVar[dict[int, Callable[[PriorStore, Path], None]]] = {
        1: _upgrade_from_version_1,
        2: _upgrade_from_version_2,
    }

    def _stage_version(self, txn: publish.Transaction, manifest: Path, version: int) -> None:
        """Stamp the store with `version` and this release's views.sql."""
        txn.stage(self.root / VIEWS_SQL.name).write_text(VIEWS_SQL.read_text())
        txn.stage(manifest).write_text(json.dumps({"schema_version": version}))

    def _refresh_views_sql(self) -> None:
        """Keep the store's views.sql in step with this release when the store is writable."""
        copy = self.root / VIEWS_SQL.name
        current = VIEWS_SQL.read_text()
        if (copy.exists() and copy.read_text() == current) or not os.access(self.root, os.W_OK):
            return
        with publish.transaction(self.root) as txn:
            txn.stage(copy).write_text(current)

    def _anchor(self, table: str) -> Path:
        return self.root / table / ANCHOR

    # -- prior sets -----------------------------------------------------------------------------

    def register_prior_set(self, spec: PriorSetSpec) -> str:
        """Record a prior set once and return its stable id (the same spec gives the same id)."""
        try:
            sampling = json.dumps(spec.sampling, sort_keys=True)
        except TypeError as error:
            raise StoreError(f"sampling parameters must be JSON values: {error}") from None
        prior_set_id = spec.prior_set_id
        path = self._prior_set_path(prior_set_id)
        if path.exists():
            return prior_set_id
        row = {**asdict(spec), "sampling": sampling, "prior_set_id": prior_set_id}
        row["created_at"] = datetime.now(UTC)
        table = to_table(
            "prior_sets", {name: [row[name]] for name in schema_of("prior_sets").names}
        )
        with publish.transaction(self.root) as txn:
            write_parquet(table, txn.stage(path))
        return prior_set_id

    def prior_set_ids(self) -> list[str]:
        """The ids of the registered prior sets, sorted."""
        files = (self.root / "prior_sets").glob("*.parquet")
        return sorted(path.stem for path in files if path.name != ANCHOR)

    def _prior_set_path(self, prior_set_id: str) -> Path:
        return self.root / "prior_sets" / f"{prior_set_id}.parquet"

    def _require_prior_set(self, prior_set_id: str) -> None:
        if not _SAFE_NAME.match(prior_set_id) or not self._prior_set_path(prior_set_id).exists():
            raise StoreError(f"unknown prior set {prior_set_id!r}; register it first")

    def delete_prior_set(self, prior_set_id: str) -> int:
        """Delete a prior set and all its rows in one transaction; returns the files removed."""
        self._require_prior_set(prior_set_id)
        files = [path for table in SHARD_TABLES for path in self._shard_files(table, prior_set_id)]
        files += sorted((self.root / "relation_counts").glob(f"dataset=*/{prior_set_id}.parquet"))
        files.append(self._prior_set_path(prior_set_id))
        with publish.transaction(self.root) as txn:
            for path in files:
                txn.delete(path)
        return len(files)

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
        """Publish one shard's rows in all tables at once; the same shard_key replaces itself.

        `retried` names images of this shard that earlier shards recorded as failed: their rows
        there are cut in the same transaction, so each image keeps one record.
        """
        self._require_prior_set(prior_set_id)
        _require_safe_names(dataset=dataset, split=split)
        key = ShardKey(prior_set_id, dataset, split, shard_key)
        tables = shard_tables(key, images, priors, failures)
        file_name = f"{prior_set_id}-s{stable_hash(shard_key)}.parquet"
        with publish.transaction(self.root) as txn:
            for table, rows in tables.items():
                partition = self._partition(table, dataset, split)
                write_parquet(rows, txn.stage(partition / file_name))
                cut_from_compacted = self._drop_from_compacted(txn, partition, key)
                if cut_from_compacted and table == "relations":
                    self._stage_relation_rollup(txn, prior_set_id, dataset)
                if retried and table in _FAILED_IMAGE_TABLES:
                    self._drop_retried(txn, partition / file_name, key, retried)

    def _partition(self, table: str, dataset: str, split: str) -> Path:
        return self.root / table / f"dataset={dataset}" / f"split={split}"

    def _drop_from_compacted(
        self, txn: publish.Transaction, partition: Path, key: ShardKey
    ) -> bool:
        """Cut a re-written shard out of the merged files of compaction; True if it was there."""
        changed = False
        for path in sorted(partition.glob(f"{key.prior_set_id}-c*.parquet")):
            txn.expect_unchanged(path)
            merged = pq.read_table(path)
            kept = merged.filter(pc.not_equal(merged["shard"], key.shard))
            if kept.num_rows == merged.num_rows:
                continue
            changed = True
            if kept.num_rows:
                write_parquet(kept, txn.stage(path))
            else:
                txn.delete(path)
        return changed

    def _drop_retried(
        self, txn: publish.Transaction, written: Path, key: ShardKey, retried: Collection[str]
    ) -> None:
        """Cut the rows of `retried` images from the partition's other files of one table (from
        their staged content where this transaction already rewrote them)."""
        wanted = pa.array(list(retried), pa.string())
        staged = {destination: source for source, destination in txn.moves}
        for path in sorted(written.parent.glob(f"{key.prior_set_id}-*.parquet")):
            if path == written or path in txn.deletions:
                continue
            if path not in staged:
                txn.expect_unchanged(path)
            rows = pq.read_table(staged.get(path, path))
            kept = rows.filter(pc.invert(pc.is_in(rows["image_id"], value_set=wanted)))
            if kept.num_rows < rows.num_rows:
                write_parquet(kept, txn.stage(path))

    def _shard_files(
        self, table: str, prior_set_id: str, dataset: str | None = None, split: str | None = None
    ) -> list[Path]:
        """A prior set's files of `table` (all datasets and splits where those are None)."""
        _require_safe_names(prior_set=prior_set_id, dataset=dataset, split=split)
        pattern = f"dataset={dataset or '*'}/split={split or '*'}/{prior_set_id}-*.parquet"
        return sorted((self.root / table).glob(pattern))

    def done_image_ids(
        self,
        prior_set_id: str,
        dataset: str | None = None,
        split: str | None = None,
        failed_count: bool = True,
    ) -> set[str]:
        """Images of a prior set with priors or (unless not `failed_count`) a recorded failure:
        a resumed run skips them."""
        done: set[str] = set()
        for table in ("captions", "failures") if failed_count else ("captions",):
            for path in self._shard_files(table, prior_set_id, dataset, split):
                done.update(_image_ids(path))
        return done

    def image_paths(
        self, dataset: str, split: str, image_ids: Iterable[str]
    ) -> dict[str, set[str]]:
        """The files the store's images of a dataset split with these ids were read from, in
        any prior set (damaged files left out)."""
        _require_safe_names(dataset=dataset, split=split)
        wanted = pa.array(sorted(set(image_ids)), pa.string())
        paths: dict[str, set[str]] = {}
        for path in sorted(self._partition("images", dataset, split).glob("*.parquet")):
            try:
                rows = pq.read_table(path, columns=["image_id", "path"])
            except (pa.ArrowInvalid, OSError):
                continue
            rows = rows.filter(pc.is_in(rows["image_id"], value_set=wanted))
            for image_id, image_path in zip(*rows.to_pydict().values(), strict=True):
                paths.setdefault(image_id, set()).add(image_path)
        return paths

    def read_priors(self, prior_set_id: str, image_ids: Iterable[str]) -> dict[str, ImagePriors]:
        """Priors of the given images (those that have some), fetched in one batched query."""
        from storage.query import read_priors

        files = {
            table: [
                *(p for p in self._shard_files(table, prior_set_id) if damage_of(p) is None),
                self._anchor(table),
            ]
            for table in ("captions", "objects", "attributes", "relations")
        }
        rows = read_priors(self._read_connection(), files, prior_set_id, list(image_ids))
        return {row["image_id"]: ImagePriors(**row) for row in rows}

    def _read_connection(self) -> duckdb.DuckDBPyConnection:
        """One in-memory DuckDB per process for batched reads (opening one costs ~0.1 s)."""
        if self._reader is None or self._reader_pid != os.getpid():
            import duckdb

            self._reader, self._reader_pid = duckdb.connect(":memory:"), os.getpid()
        return self._reader

    # -- compaction -----------------------------------------------------------------------------

    def compact(self, prior_set_id: str | None = None) -> CompactionReport:
        """Merge each partition's shard files of a prior set (and the embedding cache) into one.

        Merged relation files are published with their prior set's and dataset's relation-triple
        rollup (`relation_counts`), so the relation statistics need not group every relation.
        """
        if prior_set_id is not None:
            self._require_prior_set(prior_set_id)
        if damaged := self.damaged_files():
            raise StoreError(
                f"{len(damaged)} damaged file(s) in the store, first {damaged[0]}; "
                f"run: llmformer priors repair --store {self.root}"
            )
        before = after = 0
        for table in SHARD_TABLES:
            for (prior_set, dataset), groups in self._compaction_groups(table, prior_set_id):
                with publish.transaction(self.root) as txn:
                    for group in groups:
                        self._stage_merge(txn, group, "c")
                    if table == "relations":
                        self._stage_relation_rollup(txn, prior_set, dataset)
                before, after = before + sum(map(len, groups)), after + len(groups)
        for group in self._embedding_groups():
            with publish.transaction(self.root) as txn:
                self._stage_merge(txn, group, "", dedupe="text")
            before, after = before + len(group), after + 1
        return CompactionReport(before, after)

    def _compaction_groups(
        self, table: str, prior_set_id: str | None
    ) -> list[tuple[tuple[str, str], list[list[Path]]]]:
        """Per prior set and dataset, the file lists of its partitions that hold several files."""
        partitions: dict[Path, list[Path]] = {}
        for path in sorted(
            (self.root / table).glob(f"dataset=*/split=*/{prior_set_id or '*'}-*.parquet")
        ):
            partitions.setdefault(path.with_name(path.name.split("-")[0]), []).append(path)
        groups: dict[tuple[str, str], list[list[Path]]] = {}
        for prefix, files in partitions.items():
            if len(files) > 1:
                groups.setdefault((prefix.name, _dataset_of(prefix)), []).append(files)
        return list(groups.items())

    def _embedding_groups(self) -> list[list[Path]]:
        groups: dict[str, list[Path]] = {}
        for path in sorted((self.root / "text_embeddings").glob("*-*.parquet")):
            groups.setdefault(path.name.split("-")[0], []).append(path)
        return [files for files in groups.values() if len(files) > 1]

    def _stage_merge(
        self, txn: publish.Transaction, files: list[Path], tag: str, dedupe: str | None = None
    ) -> None:
        """Replace `files` by one file named from their names, keeping rows in file order."""
        prefix = files[0].name.split("-")[0]
        target = files[0].with_name(f"{prefix}-{tag}{stable_hash([f.name for f in files])}.parquet")
        for path in files:
            txn.expect_unchanged(path)
        merged = pa.concat_tables([pq.read_table(path) for path in files])
        if dedupe:
            merged = _first_of_each(merged, dedupe)
        write_parquet(merged, txn.stage(target))
        for path in files:
            if path != target:
                txn.delete(path)

    def _stage_relation_rollup(
        self, txn: publish.Transaction, prior_set_id: str, dataset: str
    ) -> None:
        """Stage the triple counts of the prior set's compacted relations in `dataset`.

        Counts the files as they will be once `txn` commits (the relation views add the
        uncompacted shards). Every change to those files rewrites the rollup, so expecting it
        unchanged (or still absent) makes a commit fail if another writer changed them meanwhile.
        """
        from storage.query import relation_rollup

        target = self.root / "relation_counts" / f"dataset={dataset}" / f"{prior_set_id}.parquet"
        txn.expect_unchanged(target)
        sources = txn.files_after_commit(
            self.root / "relations", f"dataset={dataset}/split=*/{prior_set_id}-c*.parquet"
        )
        if sources:
            rollup = relation_rollup(self._read_connection(), sources)
            write_parquet(rollup, txn.stage(target), ROLLUP_ROW_GROUP_ROWS)
        elif target.exists():
            txn.delete(target)

    # -- text embeddings ------------------------------------------------------------------------

    def _embedding_files(self, encoder: str) -> list[Path]:
        return sorted((self.root / "text_embeddings").glob(f"{stable_hash(encoder, 12)}-*.parquet"))

    def read_text_embeddings(self, encoder: str, texts: Iterable[str]) -> dict[str, np.ndarray]:
        """Cached float32 vectors of `texts` under `encoder`; texts not cached are absent."""
        wanted = pa.array(set(texts), pa.string())
        found: dict[str, np.ndarray] = {}
        for path in self._embedding_files(encoder):
            table = pq.read_table(path)
            table = table.filter(
                pc.and_(
                    pc.equal(table["encoder"], encoder), pc.is_in(table["text"], value_set=wanted)
                )
            )
            found.update(vectors_from_table(table))
        return found

    def write_text_embeddings(self, encoder: str, vectors: Mapping[str, np.ndarray]) -> None:
        """Add vectors to the cache; texts already cached for `encoder` are left as they are."""
        cached = self.read_text_embeddings(encoder, vectors)
        new = {text: vector for text, vector in vectors.items() if text not in cached}
        if not new:
            return
        name = f"{stable_hash(encoder, 12)}-{stable_hash(sorted(new))}.parquet"
        with publish.transaction(self.root) as txn:
            write_parquet(
                embeddings_table(encoder, new), txn.stage(self.root / "text_embeddings" / name)
            )

    # -- vocabularies and evaluation ------------------------------------------------------------

    def write_class_names(self, dataset: str, classes: Sequence[Sequence[str]]) -> None:
        """Record a dataset's classes (each: name first, then synonyms) for the coverage views."""
        _require_safe_names(dataset=dataset)
        columns: dict[str, list[Any]] = {name: [] for name in schema_of("class_names").names}
        for index, names in enumerate(classes):
            for synonym in dict.fromkeys(name.strip().lower() for name in names):
                columns["dataset"].append(dataset)
                columns["class_index"].append(index)
                columns["class_name"].append(names[0])
                columns["synonym"].append(synonym)
        with publish.transaction(self.root) as txn:
            write_parquet(
                to_table("class_names", columns),
                txn.stage(self.root / "class_names" / f"{dataset}.parquet"),
            )

    def write_eval_results(self, rows: Iterable[EvalResult | Mapping[str, Any]]) -> None:
        """Append evaluation rows (one per checkpoint and dataset) to `eval_results`."""
        try:
            results = [row if isinstance(row, EvalResult) else EvalResult(**row) for row in rows]
        except TypeError as error:
            raise StoreError(f"bad evaluation row: {error}") from None
        created_at = datetime.now(UTC)
        columns = {name: [] for name in schema_of("eval_results").names}
        for result in results:
            for name, value in {**asdict(result), "created_at": created_at}.items():
                columns[name].append(value)
        name = f"{stable_hash([asdict(r) for r in results] + [created_at.isoformat()])}.parquet"
        with publish.transaction(self.root) as txn:
            write_parquet(
                to_table("eval_results", columns), txn.stage(self.root / "eval_results" / name)
            )

    def write_eval_images(self, evaluation: EvalRun, counts: Sequence[EvalImageClass]) -> Path:
        """Publish one evaluation's per-image class counts; the same evaluation (all fields of
        `evaluation`) evaluated again replaces its file. Returns the file."""
        _require_safe_names(dataset=evaluation.dataset)
        bad = [c for c in counts if not 0 <= c.intersection <= min(c.gt_pixels, c.pred_pixels)]
        if bad:
            raise StoreError(f"eval_images: intersection outside 0..min(gt, pred) in {bad[0]}")
        created_at = datetime.now(UTC)
        columns: dict[str, list[Any]] = {name: [] for name in schema_of("eval_images").names}
        for row in counts:
            for name, value in {
                **asdict(evaluation),
                **asdict(row),
                "created_at": created_at,
            }.items():
                columns[name].append(value)
        path = (
            self.root
            / "eval_images"
            / f"dataset={evaluation.dataset}"
            / f"{stable_hash(asdict(evaluation))}.parquet"
        )
        with publish.transaction(self.root) as txn:
            write_parquet(to_table("eval_images", columns), txn.stage(path))
        return path

    # -- DuckDB -----------------------------------------------------------------------------------

    def connect(self, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
        """A sandboxed DuckDB connection with every table and statistics view of the store
        (see `storage.query.connect`); damaged files are left out and listed in `self.damaged`."""
        from storage.query import DEFAULT_MEMORY_LIMIT, connect

        publish.recover(self.root)
        self.damaged = self.damaged_files()
        skip = {damaged.path for damaged in self.damaged}
        return connect(self.root, skip, memory_limit or DEFAULT_MEMORY_LIMIT)

    # -- damage ---------------------------------------------------------------------------------

    def damaged_files(self) -> list[DamagedFile]:
        """Store files no reader can open (only outside damage makes one: publishing is atomic)."""
        return find_damaged(self.root, TABLES)

    def repair(self) -> RepairReport:
        """Move each damaged file, with the other tables' files of its shard, to
        `ROOT/_quarantine/<time>/`, and rebuild damaged anchors and affected relation rollups, in
        one transaction. The moved shards' images are then undone: the next extract redoes them."""
        damaged = [found.path for found in self.damaged_files()]
        rebuilt = [path for path in damaged if self._is_derived(path)]
        anchors = [path for path in rebuilt if path.name == ANCHOR]
        moved = list(
            dict.fromkeys(
                sibling
                for path in damaged
                if path not in rebuilt
                for sibling in self._shard_siblings(path)
            )
        )
        rollups = {_rollup_key(path) for path in rebuilt if path not in anchors}
        rollups |= {_rollup_key_of_relations(p) for p in moved if self._is_compacted_relations(p)}
        undone = {
            image_id
            for path in moved
            if _table_of(self.root, path) in _DONE_TABLES
            for image_id in _image_ids(path)
        }
        quarantine = self.root / QUARANTINE_DIR / datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        with publish.transaction(self.root) as txn:
            for path in moved:
                txn.expect_unchanged(path)
                shutil.copyfile(path, txn.stage(quarantine / path.relative_to(self.root)))
                txn.delete(path)
            for anchor in anchors:
                empty = schema_of(_table_of(self.root, anchor)).empty_table()
                write_parquet(empty, txn.stage(anchor))
            for prior_set_id, dataset in sorted(rollups):
                self._stage_relation_rollup(txn, prior_set_id, dataset)
        return RepairReport(quarantine, tuple(moved), tuple(rebuilt), len(undone))

    def _is_derived(self, path: Path) -> bool:
        """A file `repair` rebuilds rather than moves: an anchor or a relation rollup."""
        return path.name == ANCHOR or _table_of(self.root, path) == "relation_counts"

    def _is_compacted_relations(self, path: Path) -> bool:
        """A merged relations file, whose triples its prior set's and dataset's rollup counts."""
        return _table_of(self.root, path) == "relations" and path.name.split("-")[1][:1] == "c"

    def _shard_siblings(self, path: Path) -> list[Path]:
        """`path` and, for a shard table's file, the files of the same name in the same partition
        of the other shard tables (one shard writes one file in each)."""
        table = _table_of(self.root, path)
        if table not in SHARD_TABLES:
            return [path]
        partition = path.parent.relative_to(self.root / table)
        siblings = (self.root / other / partition / path.name for other in SHARD_TABLES)
        return [sibling for sibling in siblings if sibling.exists()]


def _require_local_plain_path(root: str) -> None:
    """A store is a local folder whose path DuckDB's globs read literally: a URL (`s3://...`)
    would otherwise become a folder named after its scheme, and `[`, `*` or `?` would make the
    views match other files or none."""
    if URL_SCHEME.match(root):
        raise StoreError(
            f"{root}: prior stores are local folders; object-store URLs are not supported yet"
        )
    if found := sorted(set(GLOB_CHARACTERS) & set(root)):
        raise StoreError(
            f"{root}: a prior store path must not hold {' '.join(found)} "
            "(DuckDB would read them as a glob pattern); choose another folder"
        )


def _require_safe_names(**names: str | None) -> None:
    """Names that become parts of paths and globs must be plain (no '/', '*', '=' ...)."""
    for what, value in names.items():
        if value is not None and not _SAFE_NAME.match(value):
            raise StoreError(f"{what.replace('_', ' ')} {value!r} must match {_SAFE_NAME.pattern}")


_DONE_TABLES = ("images", "captions", "failures")
_FAILED_IMAGE_TABLES = ("images", "failures")  # a failed image has rows in these only


def _table_of(root: Path, path: Path) -> str:
    """The table a store file belongs to: its first folder under the root."""
    return path.relative_to(root).parts[0]


def _rollup_key(path: Path) -> tuple[str, str]:
    """(prior set, dataset) of a `relation_counts/dataset=<d>/<prior_set_id>.parquet` rollup."""
    return path.stem, path.parent.name.removeprefix("dataset=")


def _rollup_key_of_relations(path: Path) -> tuple[str, str]:
    """(prior set, dataset) of a compacted relations file, whose triples a rollup counts."""
    return path.name.split("-")[0], _dataset_of(path)


def _image_ids(path: Path) -> list[str]:
    """The image ids of a shard table's file; none for a damaged one (`repair` undoes it)."""
    try:
        return pq.read_table(path, columns=["image_id"])["image_id"].to_pylist()
    except (pa.ArrowInvalid, OSError):
        return []


def _dataset_of(path: Path) -> str:
    """The dataset of a file in a `<table>/dataset=<d>/split=<s>/` partition."""
    return path.parent.parent.name.removeprefix("dataset=")


def _first_of_each(table: pa.Table, column: str) -> pa.Table:
    """Rows of `table` with the first occurrence of each value of `column` (stable order)."""
    rows = pa.table({column: table[column], "row": pa.array(range(table.num_rows))})
    first = rows.group_by(column, use_threads=False).aggregate([("row", "min")])
    return table.take(np.sort(first["row_min"].to_numpy()))
