"""Versioned Arrow schemas of the store's tables and the Parquet settings they are written with.

Bump `SCHEMA_VERSION` whenever a column or a table changes; a store written with another version
is refused with a message naming both (see `storage.store.SchemaVersionError`). Version 2 added
`relation_counts`, version 3 `eval_images`; `PriorStore.upgrade` brings an older store to this one.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 3
VERSION_METADATA_KEY = b"llmformer.schema_version"
TABLE_METADATA_KEY = b"llmformer.table"
COMPRESSION = "zstd"
ROW_GROUP_ROWS = 500_000
# relation_counts is sorted by mentions: smaller row groups let a top-N read skip most of it.
ROLLUP_ROW_GROUP_ROWS = 100_000

_SHARD_KEY = [
    pa.field("prior_set_id", pa.string(), nullable=False),
    pa.field("dataset", pa.string(), nullable=False),
    pa.field("split", pa.string(), nullable=False),
    pa.field("shard", pa.string(), nullable=False),
]
_IMAGE_KEY = [*_SHARD_KEY, pa.field("image_id", pa.string(), nullable=False)]

_COLUMNS: dict[str, list[pa.Field]] = {
    "prior_sets": [
        pa.field("prior_set_id", pa.string(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("captioner", pa.string()),
        pa.field("model", pa.string()),
        pa.field("prompt", pa.string()),
        pa.field("sampling", pa.string()),
        pa.field("parser", pa.string()),
        pa.field("parser_version", pa.string()),
        pa.field("created_at", pa.timestamp("us", tz="UTC")),
    ],
    "images": [
        *_IMAGE_KEY,
        pa.field("path", pa.string()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("sha256", pa.string()),
        pa.field("status", pa.string()),
    ],
    "captions": [
        *_IMAGE_KEY,
        pa.field("caption", pa.string()),
        pa.field("num_objects", pa.int32()),
        pa.field("num_attributes", pa.int32()),
        pa.field("num_relations", pa.int32()),
    ],
    "objects": [
        *_IMAGE_KEY,
        pa.field("object_index", pa.int32()),
        pa.field("name", pa.string()),
        pa.field("span", pa.string()),
        pa.field("count", pa.int32()),
    ],
    "attributes": [
        *_IMAGE_KEY,
        pa.field("attribute_index", pa.int32()),
        pa.field("object_index", pa.int32()),
        pa.field("object_name", pa.string()),
        pa.field("value", pa.string()),
        pa.field("kind", pa.string()),
    ],
    "relations": [
        *_IMAGE_KEY,
        pa.field("relation_index", pa.int32()),
        pa.field("subject_index", pa.int32()),
        pa.field("subject_name", pa.string()),
        pa.field("predicate", pa.string()),
        pa.field("object_index", pa.int32()),
        pa.field("object_name", pa.string()),
    ],
    "failures": [
        *_IMAGE_KEY,
        pa.field("path", pa.string()),
        pa.field("stage", pa.string()),
        pa.field("error_class", pa.string()),
        pa.field("message", pa.string()),
    ],
    # Per-shard counts, written in the same transaction as the shard's rows: the frequency
    # statistics sum these few rows instead of grouping millions of prior rows.
    "object_counts": [
        *_SHARD_KEY,
        pa.field("name", pa.string()),
        pa.field("mentions", pa.int64()),
        pa.field("instances", pa.int64()),
    ],
    "attribute_counts": [
        *_SHARD_KEY,
        pa.field("kind", pa.string()),
        pa.field("value", pa.string()),
        pa.field("mentions", pa.int64()),
    ],
    "predicate_counts": [
        *_SHARD_KEY,
        pa.field("predicate", pa.string()),
        pa.field("mentions", pa.int64()),
    ],
    # Relation-triple counts of one prior set's compacted relation files in one dataset, rebuilt in
    # the same transaction as every change to those files: the relation statistics read these
    # instead of grouping millions of relations (uncompacted shards are grouped at query time).
    "relation_counts": [
        pa.field("prior_set_id", pa.string(), nullable=False),
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("subject", pa.string()),
        pa.field("predicate", pa.string()),
        pa.field("object", pa.string()),
        pa.field("mentions", pa.int64()),
    ],
    "text_embeddings": [
        pa.field("encoder", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("vector", pa.list_(pa.float32())),
    ],
    "class_names": [
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("class_index", pa.int32()),
        pa.field("class_name", pa.string()),
        pa.field("synonym", pa.string()),
    ],
    "eval_results": [
        pa.field("run", pa.string(), nullable=False),
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("miou", pa.float64()),
        pa.field("open_miou", pa.float64()),
        pa.field("config", pa.string()),
        pa.field("checkpoint", pa.string()),
        pa.field("prior_set_id", pa.string()),
        pa.field("vocabulary_free", pa.bool_()),
        pa.field("created_at", pa.timestamp("us", tz="UTC")),
    ],
    # Per image and class (in the ground truth or the prediction) of one evaluation: pixel counts
    # over the image's non-ignored pixels. `dataset` is the store's dataset name (the one its
    # priors carry), `benchmark` the short name `eval_results.dataset` holds.
    "eval_images": [
        pa.field("run", pa.string(), nullable=False),
        pa.field("benchmark", pa.string(), nullable=False),
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("class_index", pa.int32(), nullable=False),
        pa.field("class_name", pa.string()),
        pa.field("gt_pixels", pa.int64()),
        pa.field("pred_pixels", pa.int64()),
        pa.field("intersection", pa.int64()),
        pa.field("config", pa.string()),
        pa.field("checkpoint", pa.string()),
        pa.field("prior_set_id", pa.string()),
        pa.field("vocabulary_free", pa.bool_()),
        pa.field("created_at", pa.timestamp("us", tz="UTC")),
    ],
}

# Tables written by `write_shard`, one file each per shard under dataset=/split= partitions.
SHARD_TABLES = (
    "images",
    "captions",
    "objects",
    "attributes",
    "relations",
    "failures",
    "object_counts",
    "attribute_counts",
    "predicate_counts",
)
TABLES = tuple(_COLUMNS)


def schema_of(table: str) -> pa.Schema:
    """The Arrow schema of `table`, stamped with the schema version and the table's name."""
    metadata = {
        VERSION_METADATA_KEY: str(SCHEMA_VERSION).encode(),
        TABLE_METADATA_KEY: table.encode(),
    }
    return pa.schema(_COLUMNS[table], metadata=metadata)
