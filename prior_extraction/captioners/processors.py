"""A checkpoint's processor (tokenizer, image processor, chat template), loaded the same way by
both model captioners. transformers is imported only when a processor is loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prior_extraction.captioners.base import CaptionerError

_LOAD_ERRORS = (OSError, ValueError, KeyError, TypeError, ImportError, AttributeError)
"""What `from_pretrained` raises for a checkpoint it cannot read, and for a processor whose
sub-processors this install lacks (Qwen2-VL's video processor without torchvision)."""


def load_processor(model: str) -> Any:
    """`AutoProcessor.from_pretrained(model)`, where a missing folder, a checkpoint without a
    processor and a text-only one are one-line `CaptionerError`s, raised before any weights load."""
    if _names_a_folder(model) and not Path(model).expanduser().is_dir():
        raise CaptionerError(f"checkpoint folder {model} does not exist")
    from transformers import AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(model)
    except _LOAD_ERRORS as error:
        raise CaptionerError(
            f"cannot load the processor of {model!r}: {one_line(error)}"
        ) from error
    if getattr(processor, "image_processor", None) is None:
        raise CaptionerError(
            f"{model!r} has no image processor: "
            "not a vision-language checkpoint, or saved without its processor"
        )
    return processor


def _names_a_folder(model: str) -> bool:
    """A path rather than a hub id: absolute, home- or dot-relative, or an existing entry."""
    return model.startswith(("/", "~", ".")) or Path(model).exists()


def one_line(error: Exception) -> str:
    """An exception's first non-empty line (library errors often run to a paragraph)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
