"""Captions that already exist: a JSONL file of `{"id", "caption"}` lines or a Parquet file with
those columns (an earlier model run, a human-written set, or the demo generator's descriptions)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from prior_extraction.captioners.base import (
    CaptionerError,
    CaptionerIdentity,
    CaptionerOptions,
    CaptionFailure,
    CaptionRequest,
    CaptionResult,
)


class FileCaptioner:
    """Looks each image's caption up by id; an image without one becomes a caption failure.

    Its `model` is the file's name and content hash: two different caption files never share a
    prior set, and the same file gives the same prior set on any machine.
    """

    name = "file"

    def __init__(self, captions: Path, prompt: str = "") -> None:
        self.path = Path(captions)
        self.captions = load_captions(self.path)
        self.model = captions_model(self.path)
        self.prompt = prompt
        self.sampling: dict[str, Any] = {}

    @classmethod
    def from_options(cls, options: CaptionerOptions) -> FileCaptioner:
        return cls(_captions_path(options))

    def caption(self, batch: Sequence[CaptionRequest]) -> list[CaptionResult]:
        return [self._lookup(request.image_id) for request in batch]

    def ids_without_image(self, image_ids: Iterable[str]) -> list[str]:
        """The file's caption ids that are not among `image_ids`, in file order."""
        known = set(image_ids)
        return [image_id for image_id in self.captions if image_id not in known]

    def _lookup(self, image_id: str) -> CaptionResult:
        caption = self.captions.get(image_id)
        if caption is None:
            return CaptionFailure(
                "MissingCaptionError", f"no caption for {image_id!r} in {self.path}"
            )
        return caption


def file_captioner_identity(options: CaptionerOptions) -> CaptionerIdentity:
    """The identity `FileCaptioner.from_options(options)` reports, without parsing the captions."""
    path = _captions_path(options)
    _require_file(path)
    if _is_parquet(path):
        _require_caption_columns(path)
    return CaptionerIdentity(FileCaptioner.name, captions_model(path), "", {})


def _require_file(path: Path) -> None:
    if path.is_dir():
        raise CaptionerError(f"captions file {path} is a folder: name the JSONL or Parquet file")
    if not path.is_file():
        raise CaptionerError(f"captions file {path} does not exist")


def _captions_path(options: CaptionerOptions) -> Path:
    if options.captions is None:
        raise CaptionerError("the file captioner needs --captions FILE")
    return Path(options.captions)


def captions_model(path: Path) -> str:
    """The file captioner's `model`: the captions file's name and content hash."""
    return f"{path.name}#{content_hash(path)}"


def content_hash(path: Path) -> str:
    """The first 16 hex digits of the file's SHA-256."""
    digest = hashlib.sha256()
    with path.open("rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def load_captions(path: Path) -> dict[str, str]:
    """Read id -> caption from JSONL or Parquet; a malformed record is an error naming its line."""
    _require_file(path)
    if _is_parquet(path):
        return _load_parquet(path)
    return _load_jsonl(path)


def _load_jsonl(path: Path) -> dict[str, str]:
    captions: dict[str, str] = {}
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            line = _utf8(raw, f"{path}:{number}")
            if line.strip():
                image_id, caption = _parse_record(line, f"{path}:{number}")
                captions[image_id] = caption
    return captions


def _utf8(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CaptionerError(
            f"{where}: not UTF-8 text (byte 0x{raw[error.start]:02x} at column "
            f"{error.start + 1}); save the captions file as UTF-8"
        ) from None


def _parse_record(line: str, where: str) -> tuple[str, str]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise CaptionerError(f"{where}: not valid JSON ({error.msg})") from error
    if not isinstance(record, dict) or "id" not in record or "caption" not in record:
        raise CaptionerError(f"{where}: expected a JSON object with 'id' and 'caption'")
    if not isinstance(record["caption"], str):
        raise CaptionerError(f"{where}: 'caption' must be a string")
    return str(record["id"]), record["caption"]


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() == ".parquet"


def _require_caption_columns(path: Path) -> None:
    """Refuse, from the schema alone, a Parquet file without an `id` column and a text
    `caption` column."""
    import pyarrow as pa
    import pyarrow.parquet as parquet

    try:
        schema = parquet.read_schema(path)
    except (OSError, ValueError) as error:
        raise CaptionerError(f"{path}: not a readable Parquet file ({error})") from error
    missing = [name for name in ("id", "caption") if name not in schema.names]
    if missing:
        raise CaptionerError(f"{path}: no {' or '.join(map(repr, missing))} column")
    caption_type = schema.field("caption").type
    if not (pa.types.is_string(caption_type) or pa.types.is_large_string(caption_type)):
        raise CaptionerError(f"{path}: column 'caption' holds {caption_type}, not text")


def _load_parquet(path: Path) -> dict[str, str]:
    """A user's input file, not the store: read with pyarrow, only the two columns needed; a
    caption or id that is missing (null) is refused, as in a JSONL file."""
    import pyarrow.parquet as parquet

    _require_caption_columns(path)
    try:
        table = parquet.read_table(path, columns=["id", "caption"])
    except (OSError, ValueError) as error:
        raise CaptionerError(f"{path}: cannot read 'id' and 'caption' columns ({error})") from error
    for column in ("id", "caption"):
        if nulls := table.column(column).null_count:
            raise CaptionerError(f"{path}: column {column!r} has {nulls} missing (null) values")
    ids = [str(value) for value in table.column("id").to_pylist()]
    return dict(zip(ids, table.column("caption").to_pylist(), strict=True))
