"""Captioners behind one protocol, chosen by name. Modules are imported only when their captioner
is built, so listing or choosing captioners never imports torch, transformers or vllm."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import partial

from prior_extraction.captioners.base import (
    DEFAULT_MODEL,
    Captioner,
    CaptionerError,
    CaptionerIdentity,
    CaptionerOptions,
    CaptionFailure,
    CaptionRequest,
    CaptionResult,
    model_captioner_identity,
)
from prior_extraction.captioners.file import file_captioner_identity

CAPTIONERS: dict[str, str] = {
    "file": "prior_extraction.captioners.file:FileCaptioner",
    "transformers": "prior_extraction.captioners.transformers:TransformersCaptioner",
    "vllm": "prior_extraction.captioners.vllm:VLLMCaptioner",
}
"""Captioner name -> "module:class"; each class has `from_options(CaptionerOptions)`."""

IDENTITIES: dict[str, Callable[[CaptionerOptions], CaptionerIdentity]] = {
    "file": file_captioner_identity,
    "transformers": partial(model_captioner_identity, "transformers"),
    "vllm": partial(model_captioner_identity, "vllm"),
}
"""Captioner name -> the identity its `from_options` would report, found without a model."""

DEFAULT_BATCH_SIZES: dict[str, int] = {"transformers": 8}
"""Images per `caption` call; captioners not listed get a whole shard (vLLM batches inside)."""


def default_batch_size(name: str, shard_size: int) -> int:
    """How many images to hand the named captioner at once."""
    return DEFAULT_BATCH_SIZES.get(name, shard_size)


def build_captioner(name: str, options: CaptionerOptions) -> Captioner:
    """Import and build the captioner registered under `name`."""
    _check_known(name)
    module_name, class_name = CAPTIONERS[name].split(":")
    captioner_class = getattr(importlib.import_module(module_name), class_name)
    return captioner_class.from_options(options)


def captioner_identity(name: str, options: CaptionerOptions) -> CaptionerIdentity:
    """What the captioner `build_captioner(name, options)` gives would key its prior set by,
    without importing or loading a model (a parent process of GPU workers must hold none)."""
    _check_known(name)
    return IDENTITIES[name](options)


def _check_known(name: str) -> None:
    if name not in CAPTIONERS:
        raise CaptionerError(f"unknown captioner {name!r}; choose one of: {', '.join(CAPTIONERS)}")


__all__ = [
    "CAPTIONERS",
    "DEFAULT_MODEL",
    "IDENTITIES",
    "CaptionFailure",
    "CaptionRequest",
    "CaptionResult",
    "Captioner",
    "CaptionerError",
    "CaptionerIdentity",
    "CaptionerOptions",
    "build_captioner",
    "captioner_identity",
    "default_batch_size",
]
