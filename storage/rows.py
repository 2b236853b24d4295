"""Records to Arrow tables: one table per store table, validated on the way in."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pyarrow as pa

from storage.records import FailureRecord, ImagePriors, ImageRecord
from storage.schema import TABLE_COLUMN, schema_of


class InvalidRecordError(ValueError):
    """A record handed to the store breaks the data contract; nothing was written."""


@dataclass(frozen=True)
class ShardKey:
    """Where a shard's rows belong: every row of the shard carries these four values."""

    prior_set_id: str
    dataset: str
    split: str
    shard: str


def _columns(table: str) -> dict[str, list[Any]]:
    return {name: [] for name in schema_of(table).names}


_KEY_NAMES = tuple(field.name for field in fields(ShardKey))


def _add_key(columns: dict[str, list[Any]], key: ShardKey, image_id: str) -> None:
    for name in _KEY_NAMES:
        columns[name].append(getattr(key, name))
    columns["image_id"].append(image_id)


def to_table(table: str, rows: dict[str, list[Any]] | list[dict[str, Any]]) -> pa.Table:
    """Columns (lists of Python values) or rows (dicts) to an Arrow table of `table`'s schema."""
    convert = pa.Table.from_pydict if isinstance(rows, dict) else pa.Table.from_pylist
    try:
        return convert(rows, schema=schema_of(table))
    except pa.ArrowException as error:
        raise InvalidRecordError(f"{table}: a value has the wrong type ({error})") from None


def priors_rows(
    key: ShardKey,
    images: Sequence[ImageRecord],
    priors: Sequence[ImagePriors],
    failures: Sequence[FailureRecord],
) -> pa.Table:
    """Every row of one shard as rows of the `priors` Delta table: each shard table's columns
    (the others are null there) and its name in `table_name`."""
    stacked = []
    for table, rows in shard_tables(key, images, priors, failures).items():
        names = pa.array([table] * rows.num_rows, pa.string())
        stacked.append(rows.append_column(TABLE_COLUMN, names))
    return pa.concat_tables(stacked, promote_options="default")


def shard_tables(
    key: ShardKey,
    images: Sequence[ImageRecord],
    priors: Sequence[ImagePriors],
    failures: Sequence[FailureRecord],
) -> dict[str, pa.Table]:
    """Every shard table of one shard (empty ones included, so a re-write clears them)."""
    _reject_duplicates("images", (record.image_id for record in images))
    _reject_duplicates("priors", (record.image_id for record in priors))
    tables = {
        "images": _records_table("images", key, images),
        **_priors_tables(key, priors),
        "failures": _records_table("failures", key, failures),
    }
    return tables | {table: counts(table, tables[_COUNTS[table][0]]) for table in _COUNTS}


_COUNTS = {  # count table: the shard table it counts, its group keys, its aggregates in order
    "object_counts": ("objects", ["name"], [("object_index", "count"), ("count", "sum")]),
    "attribute_counts": ("attributes", ["kind", "value"], [("attribute_index", "count")]),
    "predicate_counts": ("relations", ["predicate"], [("relation_index", "count")]),
}


def counts(table: str, rows: pa.Table) -> pa.Table:
    """The per-shard count table `table` (of `_COUNTS`) of rows of any shards: the statistics
    add up these few rows instead of grouping every prior row."""
    _, group_keys, aggregates = _COUNTS[table]
    keys = [*_KEY_NAMES, *group_keys]
    grouped = rows.group_by(keys, use_threads=False).aggregate(aggregates)
    columns = [grouped[name] for name in keys]
    columns += [grouped[f"{column}_{function}"] for column, function in aggregates]
    return pa.Table.from_arrays(columns, schema=schema_of(table))


def _reject_duplicates(what: str, image_ids: Iterable[str]) -> None:
    seen: set[str] = set()
    for image_id in image_ids:
        if image_id in seen:
            raise InvalidRecordError(f"image {image_id!r} appears twice in the shard's {what}")
        seen.add(image_id)


def _records_table(
    table: str, key: ShardKey, records: Sequence[ImageRecord | FailureRecord]
) -> pa.Table:
    """`table`'s rows of one shard: the shard key and image id, then the records' fields."""
    columns = _columns(table)
    fields_ = [name for name in columns if name not in (*_KEY_NAMES, "image_id")]
    for record in records:
        _add_key(columns, key, record.image_id)
        for name in fields_:
            columns[name].append(getattr(record, name))
    return to_table(table, columns)


def _priors_tables(key: ShardKey, priors: Sequence[ImagePriors]) -> dict[str, pa.Table]:
    tables = {name: _columns(name) for name in ("captions", "objects", "attributes", "relations")}
    for record in priors:
        try:
            _add_priors(tables, key, record)
        except (KeyError, TypeError, IndexError) as error:
            raise InvalidRecordError(
                f"image {record.image_id!r}: malformed priors ({type(error).__name__}: {error})"
            ) from error
    return {name: to_table(name, columns) for name, columns in tables.items()}


def _object_name(record: ImagePriors, index: int, role: str) -> str:
    if not isinstance(index, int) or not 0 <= index < len(record.objects):
        raise InvalidRecordError(
            f"image {record.image_id!r}: {role} points at object {index!r}, "
            f"but the image has {len(record.objects)} objects"
        )
    return record.objects[index]["name"]


def _add_priors(
    tables: dict[str, dict[str, list[Any]]], key: ShardKey, record: ImagePriors
) -> None:
    captions, objects = tables["captions"], tables["objects"]
    attributes, relations = tables["attributes"], tables["relations"]
    _add_key(captions, key, record.image_id)
    captions["caption"].append(record.caption)
    captions["num_objects"].append(len(record.objects))
    captions["num_attributes"].append(len(record.attributes))
    captions["num_relations"].append(len(record.relations))
    for index, item in enumerate(record.objects):
        _add_key(objects, key, record.image_id)
        objects["object_index"].append(index)
        objects["name"].append(item["name"])
        objects["span"].append(item["span"])
        objects["count"].append(item["count"])
    for index, item in enumerate(record.attributes):
        _add_key(attributes, key, record.image_id)
        attributes["attribute_index"].append(index)
        attributes["object_index"].append(item["object"])
        attributes["object_name"].append(_object_name(record, item["object"], "an attribute"))
        attributes["value"].append(item["value"])
        attributes["kind"].append(item["kind"])
    for index, item in enumerate(record.relations):
        _add_key(relations, key, record.image_id)
        relations["relation_index"].append(index)
        relations["subject_index"].append(item["subject"])
        relations["subject_name"].append(_object_name(record, item["subject"], "a relation"))
        relations["predicate"].append(item["predicate"])
        relations["object_index"].append(item["object"])
        relations["object_name"].append(_object_name(record, item["object"], "a relation"))


def embeddings_table(encoder: str, vectors: dict[str, np.ndarray]) -> pa.Table:
    """A `text_embeddings` table; every vector is stored as float32."""
    texts = list(vectors)
    flat = [np.asarray(vectors[text], dtype=np.float32).ravel() for text in texts]
    offsets = np.concatenate([[0], np.cumsum([len(vector) for vector in flat])]).astype(np.int32)
    values = np.concatenate(flat) if flat else np.zeros(0, dtype=np.float32)
    vector_column = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))
    return pa.Table.from_arrays(
        [
            pa.array([encoder] * len(texts), pa.string()),
            pa.array(texts, pa.string()),
            vector_column,
        ],
        schema=schema_of("text_embeddings"),
    )


def vectors_from_table(table: pa.Table) -> dict[str, np.ndarray]:
    """`text -> float32 vector` from a `text_embeddings` table: writable views of one copy."""
    vectors = table.column("vector").combine_chunks()
    values = np.array(vectors.values.to_numpy(zero_copy_only=False), dtype=np.float32)
    offsets = vectors.offsets.to_numpy()
    texts = table.column("text").to_pylist()
    return {text: values[offsets[i] : offsets[i + 1]] for i, text in enumerate(texts)}
