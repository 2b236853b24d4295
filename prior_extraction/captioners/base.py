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


@dataclass(frozen=True)
class CaptionerIdentity:
    """What a captioner's captions depend on, so what keys its prior set; known from the options
    alone, before any model is loaded (a loaded captioner reports the same four attributes)."""

    name: str
    model: str
    prompt: str
    sampling: dict[str, Any]


def greedy_sampling(max_new_tokens: int) -> dict[str, Any]:
    """The model captioners' decoding: greedy (temperature 0), at most `max_new_tokens`."""
    return {"temperature": 0.0, "max_new_tokens": max_new_tokens}


def model_captioner_identity(name: str, options: CaptionerOptions) -> CaptionerIdentity:
    """A model captioner's identity (vLLM, transformers): the model (LLaVA-1.5 7B unless one is
    chosen), the prompt as given and greedy decoding."""
    model = options.model or DEFAULT_MODEL
    return CaptionerIdentity(name, model, options.prompt, greedy_sampling(options.max_new_tokens))


class CaptionerError(ValueError):
    """A captioner that cannot be built from the options given (unknown name, missing file)."""


class Captioner(Protocol):
    """Describes pictures. `name`, `model`, `prompt` and `sampling` key the prior set."""

    name: str
    model: str
    prompt: str
    sampling: dict[str, Any]

    def caption(self, batch: Sequence[CaptionRequest]) -> list[CaptionResult]: ...
