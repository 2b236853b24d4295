"""Delta table writes: a column added to `storage/schema.py` reaches a table that predates it."""

from __future__ import annotations

import pyarrow as pa
from deltalake import DeltaTable

from storage import tables
from storage.schema import delta_schema_of


def _class_names(**extra: list) -> pa.Table:
    return pa.table(
        {
            "dataset": ["demo"],
            "class_index": pa.array([0], pa.int32()),
            "class_name": ["background"],
            "synonym": ["background"],
            **extra,
        }
    )


def test_a_column_added_to_the_schema_is_added_to_an_existing_table(tmp_path, monkeypatch):
    location = tables.StoreLocation.parse(tmp_path / "store")
    tables.create_tables(location)
    tables.write(location, "class_names", _class_names())
    grown = delta_schema_of("class_names").append(pa.field("source", pa.string()))
    monkeypatch.setattr(
        tables, "delta_schema_of", lambda table: grown if table == "class_names" else None
    )
    tables.write(location, "class_names", _class_names(source=["coco"]))
    table = DeltaTable(location.table_uri("class_names")).to_pyarrow_table()
    assert table.schema.names == grown.names
    assert set(table["source"].to_pylist()) == {"coco", None}  # the older row has none
