"""Plain records that cross the storage boundary: what callers hand to the store and get back.

They carry only builtin types, so the parser, the extraction run and the segmenter need nothing
from pyarrow or DuckDB to talk to the store.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any


def stable_hash(value: Any, length: int = 16) -> str:
    """Hex digest of a JSON-serialisable value, independent of dict key order."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:length]


@dataclass(frozen=True)
class PriorSetSpec:
    """What makes a prior set: captioner, model, prompt, sampling and parser. `name` is a label."""

    captioner: str
    model: str
    prompt: str
    sampling: dict[str, Any]
    parser: str
    parser_version: str
    name: str | None = None

    @property
    def prior_set_id(self) -> str:
        """Stable id: a hash of every field except the free-form name."""
        key = asdict(self)
        key.pop("name")
        return stable_hash(key)


@dataclass(frozen=True)
class ImageRecord:
    """One image a run looked at, whether its priors were extracted or it failed."""

    image_id: str
    path: str
    width: int | None
    height: int | None
    sha256: str | None
    status: str


@dataclass(frozen=True)
class ImagePriors:
    """An image's caption and its priors as lists of dicts in the JSON contract of DESIGN.md.

    objects: `{"name", "span", "count"}`; attributes: `{"object", "value", "kind"}` with `object`
    an index into `objects`; relations: `{"subject", "predicate", "object"}` with indices.
    """

    image_id: str
    caption: str
    objects: list[dict[str, Any]] = field(default_factory=list)
    attributes: list[dict[str, Any]] = field(default_factory=list)
    relations: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class FailureRecord:
    """An image that could not go through a stage (decode, caption, parse) and why."""

    image_id: str
    path: str
    stage: str
    error_class: str
    message: str


@dataclass(frozen=True)
class EvalResult:
    """One evaluation of a checkpoint on one dataset: a row of `eval_results` (None = not run)."""

    run: str
    dataset: str
    miou: float
    open_miou: float | None
    config: str = ""
    checkpoint: str = ""
    prior_set_id: str = ""
    vocabulary_free: bool = False


@dataclass(frozen=True)
class EvalRun:
    """Which evaluation a set of per-image counts belongs to: the key of its `eval_images` file.

    `benchmark` is the short name of `eval_results.dataset` ("a150"), `dataset` the store's name of
    the dataset ("ade20k_150"), the one its images' priors carry.
    """

    run: str
    benchmark: str
    dataset: str
    config: str = ""
    checkpoint: str = ""
    prior_set_id: str = ""
    vocabulary_free: bool = False


@dataclass(frozen=True)
class EvalImageClass:
    """Pixel counts of one class in one evaluated image, over its non-ignored pixels."""

    image_id: str
    class_index: int
    class_name: str
    gt_pixels: int
    pred_pixels: int
    intersection: int
