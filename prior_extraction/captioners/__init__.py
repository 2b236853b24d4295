"""Captioners behind one protocol, chosen by name. Modules are imported only when their captioner
is built, so listing or choosing captioners never imports torch, transformers or vllm."""

from __future__ import annotations

import importlib

from prior_extraction.captioners.base import (
    DEFAULT_MODEL,
    Captioner,
    CaptionerError,
    CaptionerOptions,
    CaptionFailure,
    CaptionRequest,
    CaptionResult,
)

CAPTIONERS: dict[str, str] = {
    "file": "prior_extraction.captioners.file:FileCaptioner",
    "transformers": "prior_extraction.captioners.transformers:TransformersCaptioner",
    "vllm": "prior_extraction.captioners.vllm:VLLMCaptioner",
}
"""Captioner name -> "module:class"; each class has `from_options(CaptionerOptions)`."""

DEFAULT_BATCH_SIZES: dict[str, int] = {"transformers": 8}
"""Images per `caption` call; captioners not listed get a whole shard (vLLM batches inside)."""


def default_batch_size(name: str, shard_size: int) -> int:
    """How many images to hand the named captioner at once."""
    return DEFAULT_BATCH_SIZES.get(name, shard_size)


def build_captioner(name: str, options: CaptionerOptions) -> Captioner:
    """Import and build the captioner registered under `name`."""
    if name not in CAPTIONERS:
        raise CaptionerError(f"unknown captioner {name!r}; choose one of: {', '.join(CAPTIONERS)}")
    module_name, class_name = CAPTIONERS[name].split(":")
    captioner_class = getattr(importlib.import_module(module_name), class_name)
    return captioner_class.from_options(options)


__all__ = [
    "CAPTIONERS",
    "DEFAULT_MODEL",
    "CaptionFailure",
    "CaptionRequest",
    "CaptionResult",
    "Captioner",
    "CaptionerError",
    "CaptionerOptions",
    "build_captioner",
    "default_batch_size",
]
