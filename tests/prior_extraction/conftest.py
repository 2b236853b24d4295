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
    "[INST]",
    "[/INST]",
    "<|im_start|>",
    "<|im_end|>",
    "user",
    "assistant",
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


LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] | upper + ': ' }}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '<image>\\n' }}{% else %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{{ ' ' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
"""A LLaVA-1.5 style template, written here: "USER: <image>\\n{question} ASSISTANT:" (one space
where the hand-written fallback has a line break, so a test can tell which one was used)."""

CHATML_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '<image>\\n' }}{% else %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{{ '<|im_end|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""A ChatML template, written here, as LLaVA-NeXT checkpoints on a Yi or Qwen model use; unlike
the hand-written LLaVA-NeXT fallback ("[INST] ... [/INST]", the Mistral variant's)."""


def _word_tokenizer():
    """A word-level tokenizer over WORDS with `<image>` as its image token and the ChatML
    markers as special tokens (so they split off the words they touch)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocabulary = {word: index for index, word in enumerate(WORDS)}
    backend = Tokenizer(models.WordLevel(vocabulary, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.add_special_tokens(["<|im_start|>", "<|im_end|>"])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
    )


def _tiny_towers() -> dict:
    """A CLIP vision tower on 28-pixel pictures (2 x 2 patches) and a Llama text model, both a
    few layers wide: the `vision_config` and `text_config` of either LLaVA family."""
    from transformers import CLIPVisionConfig, LlamaConfig

    vision = CLIPVisionConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=28,
        patch_size=14,
    )
    text = LlamaConfig(
        vocab_size=len(WORDS),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    return {
        "vision_config": vision,
        "text_config": text,
        "image_token_id": WORDS.index("<image>"),
        "vision_feature_layer": -1,
        "vision_feature_select_strategy": "default",
    }


def _save_tiny_llava(folder: Path, chat_template: str | None) -> None:
    """A LLaVA-1.5 with random weights and the word-level tokenizer, saved (processor and chat
    template included, where one is given) the way a downloaded checkpoint is laid out."""
    import torch
    from transformers import (
        CLIPImageProcessorPil,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    processor = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(
            size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}
        ),
        tokenizer=_word_tokenizer(),
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=chat_template,
    )
    torch.manual_seed(0)
    _save_network(LlavaForConditionalGeneration(LlavaConfig(**_tiny_towers())), folder)
    processor.save_pretrained(folder)


def _save_tiny_llava_next(folder: Path, chat_template: str | None) -> None:
    """A LLaVA-NeXT with random weights: the same towers, pictures tiled at up to 56 x 56
    pixels (any-resolution grids of 28-pixel tiles), saved like `_save_tiny_llava`."""
    import torch
    from transformers import (
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessorPil,
        LlavaNextProcessor,
    )

    pinpoints = [[28, 56], [56, 28], [56, 56]]
    processor = LlavaNextProcessor(
        image_processor=LlavaNextImageProcessorPil(
            size={"shortest_edge": 28},
            crop_size={"height": 28, "width": 28},
            image_grid_pinpoints=pinpoints,
        ),
        tokenizer=_word_tokenizer(),
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=chat_template,
    )
    config = LlavaNextConfig(**_tiny_towers(), image_grid_pinpoints=pinpoints)
    torch.manual_seed(0)
    _save_network(LlavaNextForConditionalGeneration(config), folder)
    processor.save_pretrained(folder)


def _save_tiny_text_model(folder: Path, chat_template: str | None) -> None:
    """A text-only Llama and its tokenizer: a checkpoint no captioner can describe pictures with."""
    from transformers import LlamaForCausalLM

    tokenizer = _word_tokenizer()
    tokenizer.chat_template = chat_template
    _save_network(LlamaForCausalLM(_tiny_towers()["text_config"]), folder)
    tokenizer.save_pretrained(folder)


def _save_network(network, folder: Path) -> None:
    """Save random weights with a generation config that writes at least 3 tokens: a random
    model may pick the end token first, and an empty caption shows nothing of the path."""
    network.generation_config.min_new_tokens = 3
    network.save_pretrained(folder)


TINY_CHECKPOINTS = {
    "tiny-llava": (_save_tiny_llava, LLAVA_CHAT_TEMPLATE),
    "tiny-llava-no-template": (_save_tiny_llava, None),
    "tiny-llava-next": (_save_tiny_llava_next, CHATML_CHAT_TEMPLATE),
    "tiny-llava-next-no-template": (_save_tiny_llava_next, None),
    "tiny-llama-text-only": (_save_tiny_text_model, CHATML_CHAT_TEMPLATE),
}
"""Checkpoint folder name -> (builder, chat template); built once per session on first use."""


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """`tiny_checkpoint(name)`: the folder of a saved tiny checkpoint of TINY_CHECKPOINTS.

    Torch runs on one thread: the models are tiny, and on a shared 2-core machine two
    busy-waiting threads make generation about ten times slower.
    """
    import torch

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("checkpoints")

    def folder(name: str) -> Path:
        path = root / name
        if not path.is_dir():
            save, chat_template = TINY_CHECKPOINTS[name]
            save(path, chat_template)
        return path

    return folder


@pytest.fixture(scope="session")
def tiny_llava(tiny_checkpoint) -> Path:
    """The folder of a saved tiny LLaVA checkpoint (model, processor and chat template)."""
    return tiny_checkpoint("tiny-llava")


@pytest.fixture(scope="session")
def tiny_captioner(tiny_llava: Path):
    """The transformers captioner on the tiny LLaVA, loaded once (CPU, 6 new tokens)."""
    from prior_extraction.captioners import CaptionerOptions, build_captioner

    options = CaptionerOptions(model=str(tiny_llava), max_new_tokens=6, device="cpu")
    return build_captioner("transformers", options)
