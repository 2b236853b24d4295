"""`llmformer priors parse` and `llmformer priors score` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()
LABELLED = Path(__file__).parent / "data" / "labelled_captions.jsonl"


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_parse_writes_one_prior_line_per_good_caption_and_reports_bad_ones(
    tmp_path: Path,
) -> None:
    captions = write_lines(
        tmp_path / "captions.jsonl",
        [
            json.dumps({"id": "img1", "caption": "A man is riding a horse."}),
            "{not json",
            json.dumps({"id": "img2"}),
            json.dumps({"id": 3, "caption": ["a list"]}),
            "",
            json.dumps({"id": 4, "caption": "   "}),
        ],
    )
    output = tmp_path / "out" / "priors.jsonl"
    result = runner.invoke(
        app, ["priors", "parse", "--input", str(captions), "--output", str(output)]
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert [record["id"] for record in records] == ["img1", 4]
    assert records[0] == {
        "id": "img1",
        "objects": [
            {"name": "man", "span": "man", "count": 1},
            {"name": "horse", "span": "horse", "count": 1},
        ],
        "attributes": [],
        "relations": [{"subject": 0, "predicate": "ride", "object": 1}],
    }
    assert records[1]["objects"] == []
    assert "line 2: not JSON" in result.stderr
    assert "line 3: missing 'caption'" in result.stderr
    assert "line 4: caption is list, not text" in result.stderr
    assert "parsed 2 captions" in result.stdout and "3 bad lines" in result.stdout
    assert not (tmp_path / "out" / "priors.jsonl.partial").exists()


def test_parse_without_an_input_file_exits_2_with_one_error_line(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["priors", "parse", "--input", str(tmp_path / "no.jsonl"), "--output", "x.jsonl"],
    )
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: no caption file at {tmp_path / 'no.jsonl'}"


def test_score_prints_f1_per_prior_type_as_json() -> None:
    result = runner.invoke(app, ["priors", "score", "--labelled", str(LABELLED), "--split", "test"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(figures) == {"objects", "attributes", "relations", "relation_pairs"}
    assert figures["objects"]["f1"] >= 0.9


def test_score_rejects_an_unknown_parser() -> None:
    result = runner.invoke(
        app, ["priors", "score", "--labelled", str(LABELLED), "--parser", "magic"]
    )
    assert result.exit_code == 2
    assert "error: unknown parser 'magic'" in result.stderr
