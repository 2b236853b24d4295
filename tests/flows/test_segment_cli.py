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
def test_option_mistakes_are_one_line_errors(checkpoint, tmp_path, args, message) -> None:
    result = _segment(checkpoint, tmp_path / "out", "any.png", *args)
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


@pytest.fixture
def no_model_load(monkeypatch):
    """Fail the test if the command gets as far as loading the model."""
    import segmentation.inference

    def refuse(*args):
        raise AssertionError("the model was loaded before the mistake was reported")

    monkeypatch.setattr(segmentation.inference, "_load_model", refuse)


def _picture(path: Path) -> Path:
    Image.new("RGB", (40, 30), (10, 200, 30)).save(path)
    return path


def _one_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_mistakes_are_one_line_before_the_model_loads(checkpoint, tmp_path, no_model_load):
    picture = _picture(tmp_path / "a.png")
    out_file = tmp_path / "out.txt"
    out_file.write_text("")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00" * 64 + b"not a checkpoint")
    cases = [
        (
            _segment(checkpoint, tmp_path / "o", str(picture), "--vocab", "a", "--max-side", "0"),
            "error: --max-side must be at least 32, got 0",
        ),
        (
            _segment(checkpoint, out_file, str(picture), "--vocab", "a"),
            f"error: --out {out_file} is a file; give a folder",
        ),
        (
            _segment(junk, tmp_path / "o", str(picture), "--vocab", "a"),
            f"error: checkpoint {junk} is not a PyTorch checkpoint (torch.save file)",
        ),
        (
            _segment(checkpoint, tmp_path / "o", str(picture), "--vocab", "a", "--device", "gpu"),
            "error: --device 'gpu' is not a device; use cpu or cuda[:N]",
        ),
    ]
    for result, message in cases:
        assert result.exit_code == 2
        assert _one_line(result) == message
    assert not (tmp_path / "o").exists()


def test_cuda_on_a_machine_without_one_is_one_line(checkpoint, tmp_path, no_model_load):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = _segment(
        checkpoint,
        tmp_path / "o",
        str(_picture(tmp_path / "a.png")),
        "--vocab",
        "a",
        "--device",
        "cuda",
    )
    assert result.exit_code == 2
    assert _one_line(result).startswith("error: --device cuda: this ")
    assert _one_line(result).endswith("use --device cpu")


def test_an_output_that_would_overwrite_an_input_is_refused(checkpoint, tmp_path, no_model_load):
    out = tmp_path / "out"
    out.mkdir()
    first, second = _picture(out / "a.png"), _picture(out / "a_overlay.png")
    result = _segment(checkpoint, out, str(first), str(second), "--vocab", "a")
    assert result.exit_code == 2
    assert _one_line(result) == (
        f"error: {second} is one of the inputs and would be overwritten; choose another --out"
    )


def test_repeated_class_names_are_merged_with_a_warning(checkpoint, tmp_path) -> None:
    out = tmp_path / "out"
    result = _segment(
        checkpoint, out, str(_picture(tmp_path / "a.png")), "--vocab", "cat,dog,Cat, dog"
    )
    assert result.exit_code == 0, result.output
    assert "warning: merged 2 repeated class names: Cat, dog" in result.stderr
    summary = json.loads((out / "a.json").read_text())
    assert summary["vocabulary"] == ["cat", "dog"]
    assert [entry["name"] for entry in summary["classes"]] == ["cat", "dog"]


def test_a_picture_over_the_pixel_cap_is_skipped_without_decoding(checkpoint, tmp_path) -> None:
    huge = tmp_path / "huge.png"
    Image.new("1", (12000, 12000)).save(huge)
    result = _segment(checkpoint, tmp_path / "out", str(huge), "--vocab", "a")
    assert result.exit_code == 1
    assert (
        f"skipped {huge}: cannot read {huge} as a picture (ImageTooLargeError: "
        "12000x12000 = 144000000 pixels exceeds the limit of" in result.stderr
    )


def test_pictures_are_read_by_stage_ones_loader(tmp_path) -> None:
    import numpy as np

    from flows.cli.segment import load_picture
    from segmentation.inference import ImageLoadError

    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 12), 32768, np.uint16)).save(deep)
    assert load_picture(deep).shape == (8, 12, 3)
    assert np.unique(load_picture(deep)).tolist() == [127]  # 32768 / 257, not clipped to white
    palette = tmp_path / "palette.png"
    indexed = Image.new("P", (6, 4), 1)
    indexed.putpalette([0, 0, 0, 200, 10, 10])
    indexed.save(palette)
    assert load_picture(palette)[0, 0].tolist() == [200, 10, 10]
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (120, 80), (90, 140, 60)).save(rotated, exif=exif)
    assert load_picture(rotated).shape == (120, 80, 3)
    frames = [Image.new("RGB", (5, 5), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    animated = tmp_path / "animated.gif"
    frames[0].save(animated, save_all=True, append_images=frames[1:])
    assert load_picture(animated)[0, 0].tolist() == [255, 0, 0]
    alpha = tmp_path / "alpha.png"
    Image.new("RGBA", (4, 4), (0, 0, 255, 0)).save(alpha)
    assert load_picture(alpha)[0, 0].tolist() == [255, 255, 255]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(ImageLoadError, match=r"cannot read .*broken\.jpg as a picture \(\w+: "):
        load_picture(broken)


def test_a_16_bit_picture_is_segmented_as_its_8_bit_twin(checkpoint, tmp_path) -> None:
    import numpy as np

    deep, twin = tmp_path / "deep.png", tmp_path / "twin.png"
    Image.fromarray(np.full((24, 32), 32768, np.uint16)).save(deep)
    Image.new("RGB", (32, 24), (127, 127, 127)).save(twin)
    out = tmp_path / "out"
    result = _segment(checkpoint, out, str(deep), str(twin), "--vocab", "grass,sky")
    assert result.exit_code == 0, result.output
    with (
        Image.open(out / "deep_overlay.png") as first,
        Image.open(out / "twin_overlay.png") as second,
    ):
        assert np.array_equal(np.asarray(first), np.asarray(second))


def test_a_vocabulary_file_that_is_not_utf8_is_a_one_line_error(checkpoint, tmp_path) -> None:
    vocab = tmp_path / "vocab.txt"
    vocab.write_bytes(b"cat\n\xffdog\n")
    result = _segment(checkpoint, tmp_path / "out", "any.png", "--vocab-file", str(vocab))
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: vocabulary file {vocab} is not UTF-8 text (invalid start byte at byte 4)"
    )
