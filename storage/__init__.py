"""Ground floor: the prior store (Delta Lake tables) and DuckDB over it. The only code touching
the store's files."""

from storage.records import (
    EvalImageClass,
    EvalResult,
    EvalRun,
    FailureRecord,
    ImagePriors,
    ImageRecord,
    PriorSetSpec,
)
from storage.rows import InvalidRecordError
from storage.schema import SCHEMA_VERSION
from storage.store import CompactionReport, PriorStore, RepairReport, SchemaVersionError
from storage.tables import ConcurrentWriteError, StoreError

__all__ = [
    "SCHEMA_VERSION",
    "CompactionReport",
    "ConcurrentWriteError",
    "EvalImageClass",
    "EvalResult",
    "EvalRun",
    "FailureRecord",
    "ImagePriors",
    "ImageRecord",
    "InvalidRecordError",
    "PriorSetSpec",
    "PriorStore",
    "RepairReport",
    "SchemaVersionError",
    "StoreError",
]
