"""Ground floor: the Parquet prior store and its DuckDB views. The only code touching Parquet."""

from storage.publish import ConcurrentWriteError
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
from storage.store import (
    CompactionReport,
    PriorStore,
    RepairReport,
    SchemaVersionError,
    StoreError,
)

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
