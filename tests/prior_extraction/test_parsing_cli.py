"""`llmformer priors parse` and `llmformer priors score` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
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


def parse_cli(input_path: Path, output_path: Path, *extra: str):
    return runner.invoke(
        app,
        ["priors", "parse", "--input", str(input_path), "--output", str(output_path), *extra],
    )


def captions_file(path: Path) -> Path:
    return write_lines(
        path,
        [
            json.dumps({"id": "a", "caption": "A dog."}),
            json.dumps({"id": "b", "caption": "A cat."}),
        ],
    )


def test_parse_refuses_to_write_over_its_input_and_keeps_it(tmp_path: Path) -> None:
    captions = captions_file(tmp_path / "captions.jsonl")
    before = captions.read_bytes()
    link = tmp_path / "link.jsonl"
    link.symlink_to(captions)
    for output in (captions, link):
        result = parse_cli(captions, output)
        assert result.exit_code == 2
        assert result.stderr.strip() == (
            f"error: --output: output {output} is the input file; write the priors to another file"
        )
        assert captions.read_bytes() == before


def test_an_input_named_like_the_temporary_is_read_whole(tmp_path: Path) -> None:
    captions = captions_file(tmp_path / "priors.jsonl.partial")
    before = captions.read_bytes()
    output = tmp_path / "priors.jsonl"
    result = parse_cli(captions, output)
    assert result.exit_code == 0, result.output
    assert captions.read_bytes() == before
    assert [json.loads(line)["id"] for line in output.read_text().splitlines()] == ["a", "b"]
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "priors.jsonl",
        "priors.jsonl.partial",
    ]


def test_an_output_that_is_a_folder_or_unwritable_is_one_line_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    import os

    captions = captions_file(tmp_path / "captions.jsonl")
    folder = tmp_path / "out"
    folder.mkdir()
    result = parse_cli(captions, folder)
    assert result.exit_code == 2
    assert (
        result.stderr.strip() == f"error: --output: output {folder} is a folder; give a file path"
    )
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        result = parse_cli(captions, locked / "priors.jsonl")
        assert result.exit_code == 2
        assert result.stderr.strip() == (
            f"error: --output: cannot write {locked / 'priors.jsonl'}: "
            f"{locked} is not a writable folder"
        )
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)
    beside_a_file = captions / "priors.jsonl"
    result = parse_cli(captions, beside_a_file)
    assert result.exit_code == 2
    assert "is not a writable folder" in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["captions.jsonl", "locked", "out"]


def test_a_failure_while_writing_removes_the_temporary(tmp_path: Path, monkeypatch) -> None:
    from prior_extraction import caption_files
    from prior_extraction.parsing import CaptionParser

    captions = captions_file(tmp_path / "captions.jsonl")

    def broken(self, texts):
        yield from ()
        raise RuntimeError("parser crashed")

    monkeypatch.setattr(CaptionParser, "iter_parse", broken)
    with pytest.raises(RuntimeError, match="parser crashed"):
        caption_files.parse_caption_file(captions, tmp_path / "priors.jsonl", CaptionParser())
    assert sorted(path.name for path in tmp_path.iterdir()) == ["captions.jsonl"]


def test_repeated_ids_give_one_line_each_from_the_last_and_a_warning(tmp_path: Path) -> None:
    captions = write_lines(
        tmp_path / "captions.jsonl",
        [
            json.dumps({"id": "a", "caption": "A dog."}),
            json.dumps({"id": "b", "caption": "A cat."}),
            json.dumps({"id": "a", "caption": "A horse."}),
            json.dumps({"id": 1, "caption": "A car."}),
            json.dumps({"id": "1", "caption": "A bus."}),
            json.dumps({"id": "a", "caption": "A red bird."}),
        ],
    )
    output = tmp_path / "priors.jsonl"
    result = parse_cli(captions, output)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert [record["id"] for record in records] == ["b", 1, "1", "a"]
    assert records[-1]["objects"][0]["name"] == "bird"
    assert result.stderr.strip().splitlines()[-1] == (
        'warning: 2 lines repeat an earlier line\'s id (e.g. "a"); kept the last line of each id'
    )
    assert "parsed 4 captions" in result.stdout


def test_a_line_that_is_not_utf8_is_a_bad_line(tmp_path: Path) -> None:
    captions = tmp_path / "captions.jsonl"
    captions.write_bytes(
        json.dumps({"id": "a", "caption": "A dog."}).encode()
        + b"\n"
        + b'{"id": "b", "caption": "caf\xe9"}\n'
    )
    output = tmp_path / "priors.jsonl"
    result = parse_cli(captions, output)
    assert result.exit_code == 0, result.output
    assert "line 2: not UTF-8 text (byte 0xe9 at column 28)" in result.stderr
    assert [json.loads(line)["id"] for line in output.read_text().splitlines()] == ["a"]


def test_zero_batch_size_names_its_option(tmp_path: Path) -> None:
    captions = captions_file(tmp_path / "captions.jsonl")
    result = parse_cli(captions, tmp_path / "priors.jsonl", "--batch-size", "0")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --batch-size must be at least 1, got 0"


def test_a_folder_the_system_refuses_is_one_line(tmp_path: Path) -> None:
    captions = captions_file(tmp_path / "captions.jsonl")
    output = Path("/proc/llmformer/priors.jsonl")  # refused even to root
    result = parse_cli(captions, output)
    assert result.exit_code == 2
    assert result.stderr.strip().startswith(f"error: --output: cannot write {output}: ")
    assert "Traceback" not in result.output
