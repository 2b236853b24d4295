"""`llmformer segment`: pictures in, overlays + label maps + JSON out, bad pictures skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from flows.cli import app

CONFIG = Path("segmentation/configs/llmformer_tiny_demo.py")
runner = CliRunner()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, write_random_checkpoint) -> Path:
    """The tiny demo model's random weights in MMEngine's checkpoint format."""
    return write_random_checkpoint(tmp_path_factory.mktemp("ckpt") / "random.pth")


def _segment(checkpoint: Path, out: Path, *args: str):
    base = ["segment", "--config", str(CONFIG), "--checkpoint", str(checkpoint), "--out", str(out)]
    return runner.invoke(app, [*base, "--max-side", "64", *args])


def test_vocabulary_run_writes_outputs_and_exits_1_for_a_broken_picture(
    checkpoint, tmp_path
) -> None:
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 8  # stored sideways: display turned 90 degrees counter-clockwise
    Image.new("RGB", (300, 200), (90, 140, 60)).save(rotated, exif=exif)
    alpha = tmp_path / "alpha.png"
    Image.new("RGBA", (50, 40), (0, 0, 255, 128)).save(alpha)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"")
    out = tmp_path / "out"
    result = _segment(
        checkpoint, out, str(rotated), str(broken), str(alpha), "--vocab", "grass,sky"
    )
    assert result.exit_code == 1
    assert f"skipped {broken}: cannot read" in result.stderr
    assert f"segmented 2 of 3 pictures into {out}" in result.stdout
    with Image.open(out / "rotated_labels.png") as labels:
        assert labels.size == (200, 300)
    with Image.open(out / "rotated_overlay.png") as overlay:
        assert overlay.height == 600 and overlay.width > 400  # upright, enlarged 2x, legend
    for name in ("rotated", "alpha"):
        summary = json.loads((out / f"{name}.json").read_text())
        assert summary["vocabulary"] == ["grass", "sky"]
        assert sum(c["area"] for c in summary["classes"]) == pytest.approx(1.0)


def test_no_vocab_takes_each_vocabulary_from_the_caption(checkpoint, small_demo, tmp_path) -> None:
    from prior_extraction.captioners.file import load_captions
    from prior_extraction.parsing import CaptionParser

    images = sorted((small_demo / "images" / "val").glob("*.png"))
    captions = small_demo / "captions.jsonl"
    out = tmp_path / "out"
    args = ["--no-vocab", "--captions", str(captions), "--image-root", str(small_demo / "images")]
    result = _segment(checkpoint, out, *map(str, images), *args)
    assert result.exit_code == 0, result.output
    caption = load_captions(captions)[f"val/{images[0].name}"]
    objects = [o.name for o in CaptionParser().parse(caption).objects]
    summary = json.loads((out / f"{images[0].stem}.json").read_text())
    assert summary["caption"] == caption
    assert summary["vocabulary"] == [*dict.fromkeys(objects), "background"]
    assert summary["classes"][-1]["name"] == "background"
    assert sum(c["area"] for c in summary["classes"]) == pytest.approx(1.0)


def test_picture_without_a_caption_is_skipped(checkpoint, tmp_path) -> None:
    picture = tmp_path / "cat.png"
    Image.new("RGB", (32, 32)).save(picture)
    captions = tmp_path / "captions.jsonl"
    captions.write_text(json.dumps({"id": "dog.png", "caption": "a dog"}) + "\n")
    result = _segment(
        checkpoint, tmp_path / "out", str(picture), "--no-vocab", "--captions", str(captions)
    )
    assert result.exit_code == 1
    assert "skipped" in result.stderr and "no caption for 'cat.png'" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--vocab", "cat", "--no-vocab"],
            "give exactly one of --vocab, --vocab-file and --no-vocab",
        ),
        ([], "give exactly one of --vocab, --vocab-file and --no-vocab"),
        (["--vocab", " , "], "the vocabulary is empty"),
        (["--vocab-file", "no/such/file.txt"], "vocabulary file no/such/file.txt does not exist"),
        (["--no-vocab"], "the file captioner needs --captions FILE"),
        (
            ["--no-vocab", "--captioner", "transformers", "--captioner-model", "./no/ckpt"],
            "checkpoint folder ./no/ckpt does not exist",
        ),
    ],
)
def test_option_mistakes_are_one_line_errors(tmp_path, args, message) -> None:
    result = _segment(tmp_path / "missing.pth", tmp_path / "out", "any.png", *args)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {message}"


def test_missing_checkpoint_is_a_one_line_error(tmp_path) -> None:
    result = _segment(tmp_path / "missing.pth", tmp_path / "out", "any.png", "--vocab", "cat")
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: checkpoint {tmp_path / 'missing.pth'} does not exist"


def test_vocab_file_has_one_class_per_line_with_synonyms(tmp_path) -> None:
    from flows.cli.segment import _vocabulary

    vocab_file = tmp_path / "classes.txt"
    vocab_file.write_text("grass,lawn\n\n  sky \n")
    assert _vocabulary(None, vocab_file, False) == ["grass,lawn", "sky"]
    assert _vocabulary(" cat, dog ,", None, False) == ["cat", "dog"]
