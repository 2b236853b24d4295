"""Parse a JSONL file of captions into a JSONL file of priors (the `llmformer priors parse`
contract): input lines `{"id": ..., "caption": ...}`, output lines `{"id", "objects",
"attributes", "relations"}`. A bad line is reported and skipped; it never stops the file."""

from __future__ import annotations

import json
import os
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
    """What a file parse did: captions parsed and lines skipped."""

    parsed: int = 0
    bad_lines: list[BadLine] = field(default_factory=list)


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
    with path.open(encoding="utf-8", errors="replace") as lines:
        return sum(1 for line in lines if line.strip())


def parse_caption_file(
    input_path: Path,
    output_path: Path,
    parser: CaptionBatchParser,
    on_bad_line: Callable[[BadLine], None] = lambda bad: None,
    on_progress: Callable[[int], None] = lambda done: None,
) -> ParseReport:
    """Parse every good line of input_path into output_path (written whole, then renamed into
    place); bad lines go to on_bad_line, every input line advances on_progress by one."""
    report = ParseReport()
    partial = output_path.with_name(output_path.name + ".partial")
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with (
        input_path.open(encoding="utf-8", errors="replace") as lines,
        partial.open("w", encoding="utf-8") as out,
    ):
        records = _good_records(lines, report, on_bad_line, on_progress)
        ids: list[Any] = []
        texts = _remember_ids(records, ids)
        for index, priors in enumerate(parser.iter_parse(texts)):
            out.write(json.dumps({"id": ids[index], **priors.to_dict()}) + "\n")
            report.parsed += 1
            on_progress(1)
    os.replace(partial, output_path)
    return report


def _good_records(
    lines: Iterable[str],
    report: ParseReport,
    on_bad_line: Callable[[BadLine], None],
    on_progress: Callable[[int], None],
) -> Iterator[CaptionRecord]:
    for line_number, line in enumerate(lines, start=1):
        record = read_caption_record(line, line_number)
        if isinstance(record, BadLine):
            report.bad_lines.append(record)
            on_bad_line(record)
            on_progress(1)
        elif record is not None:
            yield record


def _remember_ids(records: Iterable[CaptionRecord], ids: list[Any]) -> Iterator[str]:
    """Captions in order, appending each id to ids as its caption is handed on."""
    for record in records:
        ids.append(record.id)
        yield record.caption
