"""Arrow schemas of the store's tables and of the Delta tables that hold them.

Changing a table's columns here (and, for a shard table, where `storage.rows` fills them) is all
a schema change takes: the views, the Delta tables and the upgrade follow from these lists.
Version 4 put the store on Delta Lake (1-3 were folders of Parquet files, `priors upgrade`
converts them); `SCHEMA_VERSION` names the layout in messages.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 4

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
    # Written by compaction, in the same commit that moves the prior set's relations to the
    # `rolled_relations` partition: their triple counts, and the shards they came from. The
    # relation statistics add these few rows to the relations written since (see views.sql).
    "relation_counts": [
        *_SHARD_KEY,
        pa.field("subject", pa.string()),
        pa.field("predicate", pa.string()),
        pa.field("object", pa.string()),
        pa.field("mentions", pa.int64()),
    ],
    "rolled_shards": list(_SHARD_KEY),
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

# Tables written by `write_shard`: all live in the one Delta table `priors` (a `table_name`
# column tells them apart), so that one commit publishes a whole shard.
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
ROLLUP_TABLES = ("relation_counts", "rolled_shards")
ROLLED_RELATIONS = "rolled_relations"
"""The `table_name` of relations that compaction has counted into `relation_counts`."""
TABLES = tuple(_COLUMNS)
PRIORS = "priors"
"""The Delta table of every shard table, partitioned by prior set and then by table."""
TABLE_COLUMN = "table_name"
IN_PRIORS = (*SHARD_TABLES, *ROLLUP_TABLES)
"""Tables whose rows live in the Delta table `priors`."""
DELTA_TABLES = (PRIORS, *(table for table in TABLES if table not in IN_PRIORS))
PARTITIONS: dict[str, list[str]] = {
    PRIORS: ["prior_set_id", TABLE_COLUMN],
    "eval_images": ["dataset"],
}


def schema_of(table: str) -> pa.Schema:
    """The Arrow schema of `table` (one of `TABLES`)."""
    return pa.schema(_COLUMNS[table])


def _priors_schema() -> pa.Schema:
    """Every shard table's columns side by side (a column shared by tables has one type), the
    key first so that Delta keeps statistics of it; only the shard key is never null."""
    fields: dict[str, pa.Field] = {TABLE_COLUMN: pa.field(TABLE_COLUMN, pa.string(), False)}
    for table in IN_PRIORS:
        for field in _COLUMNS[table]:
            known = fields.setdefault(field.name, field.with_nullable(field not in _SHARD_KEY))
            if known.type != field.type:
                raise TypeError(f"{table}.{field.name} is {field.type}, elsewhere {known.type}")
    return pa.schema(fields.values())


PRIORS_SCHEMA = _priors_schema()


def delta_schema_of(table: str) -> pa.Schema:
    """The Arrow schema of a Delta table of `DELTA_TABLES`."""
    return PRIORS_SCHEMA if table == PRIORS else schema_of(table)
