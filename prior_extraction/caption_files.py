"""Parse a JSONL file of captions into a JSONL file of priors (the `llmformer priors parse`
contract): input lines `{"id": ..., "caption": ...}`, output lines `{"id", "objects",
"attributes", "relations"}`. A bad line is reported and skipped; it never stops the file; an id
given on several lines gets one output line, from its last input line."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from prior_extraction.caption_priors import ParsedCaption


class CaptionBatchParser(Protocol):
    """What `parse_caption_file` needs of a parser (CaptionParser has it)."""

    def iter_parse(self, texts: Iterable[str]) -> Iterator[ParsedCaption]: ...


@dataclass(frozen=True)
class CaptionRecord:
    """One input line: the caller's id (kept as given) and the caption."""

    id: Any
    caption: str


@dataclass(frozen=True)
class BadLine:
    """An input line that could not be used, and why."""

    line_number: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line_number}: {self.reason}"


@dataclass
class ParseReport:
    """What a file parse did: captions parsed, lines skipped, and lines dropped because a later
    line gave the same id (`repeated_ids` lists the first few such ids)."""

    parsed: int = 0
    bad_lines: list[BadLine] = field(default_factory=list)
    repeated_lines: int = 0
    repeated_ids: list[Any] = field(default_factory=list)


_REPEATS_LISTED = 5


class OutputPathError(ValueError):
    """An output path the parse must not or cannot write: its input, a folder, an unwritable
    place. Nothing was written."""


def read_caption_record(line: str, line_number: int) -> CaptionRecord | BadLine | None:
    """Decode one JSONL line; None for a blank line."""
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        return BadLine(line_number, f"not JSON ({error.msg})")
    if not isinstance(record, dict):
        return BadLine(line_number, f"expected an object, got {type(record).__name__}")
    missing = [key for key in ("id", "caption") if key not in record]
    if missing:
        return BadLine(line_number, f"missing {', '.join(repr(key) for key in missing)}")
    if not isinstance(record["caption"], str):
        return BadLine(line_number, f"caption is {type(record['caption']).__name__}, not text")
    return CaptionRecord(record["id"], record["caption"])


def count_lines(path: Path) -> int:
    """Number of non-blank lines, for a progress bar's total."""
    with path.open("rb") as lines:
        return sum(1 for line in lines if line.strip())


def prepare_output_path(input_path: Path, output_path: Path) -> None:
    """Refuse, before anything is written, an output that is the input (or a link to it), a
    folder, or a place this user cannot create a file in; create its folder."""
    if output_path.is_dir():
        raise OutputPathError(f"output {output_path} is a folder; give a file path")
    if output_path.exists() and os.path.samefile(input_path, output_path):
        raise OutputPathError(
            f"output {output_path} is the input file; write the priors to another file"
        )
    folder = output_path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise OutputPathError(f"cannot write {output_path}: {folder} is not a writable folder")
    try:
        output_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputPathError(f"cannot write {output_path}: {error.strerror}") from None


def parse_caption_file(
    input_path: Path,
    output_path: Path,
    parser: CaptionBatchParser,
    on_bad_line: Callable[[BadLine], None] = lambda bad: None,
    on_progress: Callable[[int], None] = lambda done: None,
) -> ParseReport:
    """Parse the good lines of input_path into output_path, one line per id (the last line of a
    repeated id wins); bad lines go to on_bad_line, every input line advances on_progress by one.

    The output is written to a new temporary file beside it and renamed into place, so the
    input is never touched and a failure leaves no partial file.
    """
    prepare_output_path(input_path, output_path)
    report = ParseReport()
    kept = _lines_to_keep(input_path, report)
    try:
        temporary = output_path.with_name(f".{output_path.name}.{uuid.uuid4().hex[:12]}.partial")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as error:
        raise OutputPathError(f"cannot write {output_path}: {error.strerror}") from None
    try:
        with input_path.open("rb") as lines, os.fdopen(descriptor, "w", encoding="utf-8") as out:
            records = _good_records(lines, kept, report, on_bad_line, on_progress)
            ids: list[Any] = []
            texts = _remember_ids(records, ids)
            for index, priors in enumerate(parser.iter_parse(texts)):
                out.write(json.dumps({"id": ids[index], **priors.to_dict()}) + "\n")
                report.parsed += 1
                on_progress(1)
        os.replace(temporary, output_path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return report


def _decoded_lines(lines: Iterable[bytes]) -> Iterator[tuple[int, str | BadLine]]:
    """Each line as text, or a BadLine where it is not UTF-8."""
    for line_number, raw in enumerate(lines, start=1):
        try:
            yield line_number, raw.decode("utf-8")
        except UnicodeDecodeError as error:
            byte = raw[error.start]
            yield (
                line_number,
                BadLine(
                    line_number, f"not UTF-8 text (byte 0x{byte:02x} at column {error.start + 1})"
                ),
            )


def _id_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _lines_to_keep(input_path: Path, report: ParseReport) -> set[int]:
    """Line numbers of the good records to parse: the last line of each id. Counts the ids
    given on more than one line in `report`."""
    last_line: dict[str, int] = {}
    with input_path.open("rb") as lines:
        for line_number, text in _decoded_lines(lines):
            if isinstance(text, str):
                record = read_caption_record(text, line_number)
                if isinstance(record, CaptionRecord):
                    key = _id_key(record.id)
                    repeated = key in last_line
                    listed = record.id in report.repeated_ids
                    if repeated and not listed and len(report.repeated_ids) < _REPEATS_LISTED:
                        report.repeated_ids.append(record.id)
                    report.repeated_lines += repeated
                    last_line[key] = line_number
    return set(last_line.values())


def _good_records(
    lines: Iterable[bytes],
    kept: set[int],
    report: ParseReport,
    on_bad_line: Callable[[BadLine], None],
    on_progress: Callable[[int], None],
) -> Iterator[CaptionRecord]:
    for line_number, text in _decoded_lines(lines):
        record = text if isinstance(text, BadLine) else read_caption_record(text, line_number)
        if isinstance(record, BadLine):
            report.bad_lines.append(record)
            on_bad_line(record)
            on_progress(1)
        elif record is not None and line_number not in kept:
            on_progress(1)
        elif record is not None:
            yield record


def _remember_ids(records: Iterable[CaptionRecord], ids: list[Any]) -> Iterator[str]:
    """Captions in order, appending each id to ids as its caption is handed on."""
    for record in records:
        ids.append(record.id)
        yield record.caption
