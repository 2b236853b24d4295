"""Pictures for the extraction tests: well-formed files in awkward modes and broken files, each
made here byte by byte so the tests need no data on disk."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims `width` x `height` RGB pixels and holds none: a decompression bomb."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data)
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    signature = b"\x89PNG\r\n\x1a\n"
    return (
        signature
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def jpeg_bytes(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **options)
    return buffer.getvalue()


def noise_image(seed: int, size: tuple[int, int] = (32, 24)) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def palette_with_transparency() -> Image.Image:
    """Left half palette index 0 (transparent), right half index 1 (opaque red)."""
    image = Image.new("P", (8, 4), 0)
    image.putpalette([0, 0, 255, 255, 0, 0] + [0, 0, 0] * 254)
    image.paste(1, (4, 0, 8, 4))
    image.info["transparency"] = 0
    return image


def animated_gif_bytes() -> bytes:
    frames = [Image.new("RGB", (8, 8), color) for color in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    return buffer.getvalue()


def sixteen_bit_png_bytes() -> bytes:
    samples = np.array([[0, 32896, 65535, 1000]], dtype=np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(samples).save(buffer, format="PNG")
    return buffer.getvalue()


def cmyk_jpeg_bytes() -> bytes:
    return jpeg_bytes(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), quality=95)


GOOD_FILES = {
    "plain.jpg": lambda: jpeg_bytes(noise_image(1)),
    "cmyk.jpg": cmyk_jpeg_bytes,
    "sixteen_bit.png": sixteen_bit_png_bytes,
    "palette_alpha.png": lambda: _png(palette_with_transparency()),
    "animated.gif": animated_gif_bytes,
    "nested/gray.png": lambda: _png(Image.new("L", (10, 10), 128)),
}
BROKEN_FILES = {
    "zero_bytes.jpg": (lambda: b"", "EmptyFileError"),
    "truncated.jpg": (lambda: jpeg_bytes(noise_image(2, (64, 64)))[:300], "OSError"),
    "text.jpg": (lambda: b"this is not a picture\n", "UnidentifiedImageError"),
    "bomb.png": (lambda: png_header_only(20000, 20000), "ImageTooLargeError"),
}


SAMPLE_CAPTIONS = (
    "A red car is parked next to a small tree.",
    "Two dogs run on the green grass.",
    "A wooden table stands under a large window.",
    "The black cat sleeps on a soft blue sofa.",
)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_files(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


@pytest.fixture
def pictures() -> SimpleNamespace:
    """The byte makers above, for tests that need one file at a time."""
    return SimpleNamespace(
        png_header_only=png_header_only,
        jpeg_bytes=jpeg_bytes,
        png_bytes=_png,
        noise_image=noise_image,
        palette_with_transparency=palette_with_transparency,
        animated_gif_bytes=animated_gif_bytes,
        sixteen_bit_png_bytes=sixteen_bit_png_bytes,
        cmyk_jpeg_bytes=cmyk_jpeg_bytes,
        good=GOOD_FILES,
        broken=BROKEN_FILES,
    )


@pytest.fixture
def mixed_folder(tmp_path: Path) -> tuple[Path, set[str], dict[str, str]]:
    """A folder of good pictures in awkward modes mixed with broken files.

    Returns the folder, the good ids, and each broken id's expected error class.
    """
    folder = tmp_path / "mixed"
    write_files(folder, {name: make() for name, make in GOOD_FILES.items()})
    write_files(folder, {name: make() for name, (make, _) in BROKEN_FILES.items()})
    (folder / "notes.txt").write_text("not listed: not an image extension")
    broken = {name: error_class for name, (_, error_class) in BROKEN_FILES.items()}
    return folder, set(GOOD_FILES), broken


@pytest.fixture
def noise_folder(tmp_path: Path):
    """A factory: `noise_folder(n)` writes n distinct small PNGs and a captions file for them."""

    def make(count: int, name: str = "noise") -> tuple[Path, Path]:
        folder = tmp_path / name
        folder.mkdir()
        captions = tmp_path / f"{name}_captions.jsonl"
        with captions.open("w") as lines:
            for index in range(count):
                image_id = f"{index:04d}.png"
                noise_image(index).save(folder / image_id)
                caption = SAMPLE_CAPTIONS[index % len(SAMPLE_CAPTIONS)]
                lines.write(json.dumps({"id": image_id, "caption": caption}) + "\n")
        return folder, captions

    return make


def write_captions(path: Path, captions: dict[str, str]) -> Path:
    with path.open("w") as lines:
        for image_id, caption in captions.items():
            lines.write(json.dumps({"id": image_id, "caption": caption}) + "\n")
    return path


@pytest.fixture
def captions_for():
    """`captions_for(path, {id: caption})` writes a JSONL captions file."""
    return write_captions


WORDS = [
    "<pad>",
    "<s>",
    "</s>",
    "<unk>",
    "<image>",
    "USER:",
    "ASSISTANT:",
    "Describe",
    "the",
    "image.",
    "a",
    "an",
    "red",
    "blue",
    "green",
    "small",
    "large",
    "cat",
    "dog",
    "car",
    "tree",
    "table",
    "on",
    "under",
    "next",
    "to",
    "is",
    "are",
    "sits",
    "stands",
    "near",
]


def _save_tiny_llava(folder: Path) -> None:
    """A LLaVA with random weights (CLIP vision tower, Llama text model, both a few layers wide)
    and a word-level tokenizer made here, saved the way a downloaded checkpoint is laid out."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    vocabulary = {word: index for index, word in enumerate(WORDS)}
    backend = Tokenizer(models.WordLevel(vocabulary, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
    )
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=28,
            patch_size=14,
        ),
        text_config=LlamaConfig(
            vocab_size=len(WORDS),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=128,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
        ),
        image_token_id=vocabulary["<image>"],
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(0)
    LlavaForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)


@pytest.fixture(scope="session")
def tiny_llava(tmp_path_factory) -> Path:
    """The folder of a saved tiny LLaVA checkpoint (model + processor).

    Torch runs on one thread: the model is tiny, and on a shared 2-core machine two busy-waiting
    threads make generation about ten times slower.
    """
    import torch

    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("checkpoints") / "tiny-llava"
    _save_tiny_llava(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_captioner(tiny_llava: Path):
    """The transformers captioner on the tiny LLaVA, loaded once (CPU, 6 new tokens)."""
    from prior_extraction.captioners import CaptionerOptions, build_captioner

    options = CaptionerOptions(model=str(tiny_llava), max_new_tokens=6, device="cpu")
    return build_captioner("transformers", options)
