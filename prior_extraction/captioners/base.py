"""The captioner protocol: a batch of validated pictures in, one caption (or failure) per
picture out, in the same order. Captioners know nothing of storage; the run does the writing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from prior_extraction.captioners.prompts import SIMPLE_PROMPT

DEFAULT_MODEL = "llava-hf/llava-1.5-7b-hf"
"""LLaVA-1.5 7B, the MLLM family the paper builds on; any hub id or local checkpoint works."""


@dataclass(frozen=True)
class CaptionRequest:
    """One picture to describe; `image_id` lets captioners that look captions up find theirs."""

    image_id: str
    image: Image.Image


@dataclass(frozen=True)
class CaptionFailure:
    """A picture the captioner could not describe; becomes a `failures` row at stage `caption`."""

    error_class: str
    message: str


CaptionResult = str | CaptionFailure


@dataclass(frozen=True)
class CaptionerOptions:
    """What a user can choose for any captioner; each captioner reads the fields it needs."""

    model: str | None = None
    prompt: str = SIMPLE_PROMPT
    captions: Path | None = None
    max_new_tokens: int = 256
    prompt_format: str | None = None
    device: str | None = None
    engine_args: dict[str, Any] = field(default_factory=dict)


class CaptionerError(ValueError):
    """A captioner that cannot be built from the options given (unknown name, missing file)."""


class Captioner(Protocol):
    """Describes pictures. `name`, `model`, `prompt` and `sampling` key the prior set."""

    name: str
    model: str
    prompt: str
    sampling: dict[str, Any]

    def caption(self, batch: Sequence[CaptionRequest]) -> list[CaptionResult]: ...
