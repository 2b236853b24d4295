"""LLaVA (and other image-text-to-text models) through Hugging Face transformers, on CPU or GPU.

Batched greedy generation with left padding: every picture in a batch gets its own continuation,
cut after the prompt and cleaned with the same code as the vLLM captioner's output.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import AutoModelForImageTextToText

from prior_extraction.captioners.base import (
    CaptionerError,
    CaptionerOptions,
    CaptionRequest,
    CaptionResult,
    greedy_sampling,
    model_captioner_identity,
)
from prior_extraction.captioners.processors import load_processor, one_line
from prior_extraction.captioners.prompts import (
    build_text_prompt,
    clean_caption,
    local_model_type,
)


def choose_device(requested: str | None = None) -> torch.device:
    """The requested device, else the first GPU when one is visible, else the CPU."""
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def choose_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 on GPUs that support it, float16 on older GPUs, float32 on the CPU."""
    if device.type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


class TransformersCaptioner:
    """Loads a checkpoint (hub id or local folder) with `from_pretrained` and captions batches
    with the prompt its processor's chat template writes (a hand-written format without one)."""

    name = "transformers"

    def __init__(
        self,
        model: str,
        prompt: str,
        max_new_tokens: int = 256,
        prompt_format: str | None = None,
        device: str | None = None,
    ) -> None:
        self.model = model
        self.prompt = prompt
        self.sampling = greedy_sampling(max_new_tokens)
        self.device = choose_device(device)
        self.dtype = choose_dtype(self.device)
        self.processor = load_processor(model)
        self.text_prompt = build_text_prompt(
            prompt, model, self.processor, prompt_format, local_model_type(model)
        )
        try:
            self.network = AutoModelForImageTextToText.from_pretrained(model, dtype=self.dtype)
        except (OSError, ValueError) as error:
            raise CaptionerError(f"cannot load model {model!r}: {one_line(error)}") from error
        self.processor.tokenizer.padding_side = "left"
        self.network.to(self.device).eval()

    @classmethod
    def from_options(cls, options: CaptionerOptions) -> TransformersCaptioner:
        identity = model_captioner_identity(cls.name, options)
        return cls(
            identity.model,
            identity.prompt,
            options.max_new_tokens,
            options.prompt_format,
            options.device,
        )

    @torch.inference_mode()
    def caption(self, batch: Sequence[CaptionRequest]) -> list[CaptionResult]:
        if not batch:
            return []
        inputs = self.processor(
            images=[request.image for request in batch],
            text=[self.text_prompt] * len(batch),
            padding=True,
            return_tensors="pt",
        ).to(self.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        generated = self.network.generate(
            **inputs, do_sample=False, max_new_tokens=self.sampling["max_new_tokens"]
        )
        continuations = generated[:, inputs["input_ids"].shape[1] :]
        texts = self.processor.batch_decode(continuations, skip_special_tokens=True)
        return [clean_caption(text) for text in texts]
