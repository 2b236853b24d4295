"""`llmformer priors parse` and `llmformer priors score`: captions into priors, and parsers
scored against a labelled caption set."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from flows.cli.checks import fail, require_at_least

PARSERS = ("ours", "sng_parser")


def parse(
    input: Annotated[Path, typer.Option("--input", help='JSONL of {"id", "caption"} lines.')],
    output: Annotated[Path, typer.Option("--output", help="JSONL of priors, one line per id.")],
    pipeline: Annotated[str | None, typer.Option(help="spaCy pipeline package.")] = None,
    batch_size: Annotated[int, typer.Option(help="Captions per nlp.pipe batch.")] = 64,
    n_process: Annotated[
        int | None,
        typer.Option(help="Parser processes [default: one per CPU core, fewer for small files]."),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show the progress bar.")] = True,
) -> None:
    """Parse captions into object, attribute and relation priors.

    Bad lines are reported on stderr and skipped; the rest of the file is parsed. An id on
    several lines gets one output line, from the last of them. The input is never overwritten.
    """
    from tqdm import tqdm

    from prior_extraction.caption_files import (
        OutputPathError,
        count_lines,
        parse_caption_file,
        prepare_output_path,
    )
    from prior_extraction.nlp import PipelineNotFoundError
    from prior_extraction.parsing import CaptionParser, default_process_count

    if not input.is_file():
        fail(f"no caption file at {input}")
    lines = count_lines(input)
    n_process = default_process_count(lines) if n_process is None else n_process
    require_at_least("--batch-size", batch_size, 1)
    require_at_least("--n-process", n_process, 1)
    try:
        prepare_output_path(input, output)
        parser = CaptionParser(pipeline, batch_size=batch_size, n_process=n_process)
    except OutputPathError as error:
        fail(f"--output: {error}")
    except (PipelineNotFoundError, OSError) as error:
        fail(str(error))
    with tqdm(total=lines, unit="caption", disable=not progress) as bar:
        try:
            report = parse_caption_file(
                input,
                output,
                parser,
                on_bad_line=lambda bad: bar.write(f"skipped {input}: {bad}", file=sys.stderr),
                on_progress=bar.update,
            )
        except OutputPathError as error:
            fail(f"--output: {error}")
    if report.repeated_lines:
        shown = ", ".join(json.dumps(value) for value in report.repeated_ids)
        print(
            f"warning: {report.repeated_lines} lines repeat an earlier line's id (e.g. {shown}); "
            "kept the last line of each id",
            file=sys.stderr,
        )
    print(f"parsed {report.parsed} captions into {output}; {len(report.bad_lines)} bad lines")


def score(
    labelled: Annotated[
        Path, typer.Option("--labelled", help="JSONL of captions with gold priors.")
    ],
    parser: Annotated[str, typer.Option(help="ours | sng_parser")] = "ours",
    split: Annotated[str | None, typer.Option(help="Only this split (dev, test).")] = None,
    pipeline: Annotated[str | None, typer.Option(help="spaCy pipeline package.")] = None,
) -> None:
    """Score a parser on a labelled caption set: precision, recall and F1 per prior type."""
    from rich.console import Console
    from rich.table import Table

    from prior_extraction.scoring import SCORED, load_labelled
    from prior_extraction.scoring import score as score_priors

    if parser not in PARSERS:
        fail(f"unknown parser {parser!r}; choose one of {', '.join(PARSERS)}")
    if not labelled.is_file():
        fail(f"no labelled caption file at {labelled}")
    try:
        items = load_labelled(labelled, [split] if split else None)
        chosen = _build_parser(parser, pipeline)
    except (ValueError, ImportError, OSError) as error:
        fail(str(error))
    predicted = chosen.parse_many([item.caption for item in items])
    scores = score_priors(predicted, [item.gold for item in items])
    table = Table(title=f"{parser} on {len(items)} captions of {labelled.name}")
    for column in ("prior", "precision", "recall", "F1"):
        table.add_column(column)
    for kind in SCORED:
        figures = scores[kind]
        table.add_row(kind, *(f"{v:.3f}" for v in (figures.precision, figures.recall, figures.f1)))
    Console(stderr=True).print(table)
    print(json.dumps({kind: scores[kind].to_dict() for kind in SCORED}))


def _build_parser(name: str, pipeline: str | None):
    if name == "sng_parser":
        from prior_extraction.peer_parser import PeerParser

        return PeerParser(pipeline)
    from prior_extraction.parsing import CaptionParser

    return CaptionParser(pipeline)
