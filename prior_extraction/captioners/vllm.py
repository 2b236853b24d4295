"""The production captioner: a vLLM engine on one GPU, fed a whole shard per `generate` call so
it batches continuously. vllm is imported when the engine is built, never at module load.

Each request is the text the checkpoint's own chat template renders (through its transformers
processor, as `LLM.chat` would) with the picture as `multi_modal_data`: the same prompt as the
transformers captioner's, built and testable without vllm.

Data parallel = one engine per GPU, or per group of GPUs with tensor parallelism
(`engine_args={"tensor_parallel_size": k}`: the engine splits the model over the k GPUs it sees),
each in its own process over its partition of the images (`CUDA_VISIBLE_DEVICES=4,5 llmformer
priors extract ... --tensor-parallel-size 2 --partition 2/4`; the `extract-priors` flow starts
them with `gpus` and `tensor_parallel_size`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from prior_extraction.captioners.base import (
    CaptionerError,
    CaptionerOptions,
    CaptionRequest,
    CaptionResult,
    greedy_sampling,
    model_captioner_identity,
)
from prior_extraction.captioners.processors import load_processor
from prior_extraction.captioners.prompts import (
    PromptFormat,
    build_text_prompt,
    clean_caption,
    find_prompt_format,
    local_model_type,
)


class VLLMCaptioner:
    """Greedy decoding (temperature 0, fixed seed) of the prompt the checkpoint's own chat
    template writes (the same text the transformers captioner feeds its processor)."""

    name = "vllm"

    def __init__(
        self,
        model: str,
        prompt: str,
        max_new_tokens: int = 256,
        prompt_format: str | None = None,
        engine_args: dict[str, Any] | None = None,
    ) -> None:
        require_visible_gpus(int((engine_args or {}).get("tensor_parallel_size", 1)))
        try:
            from vllm import LLM, SamplingParams
        except ImportError as error:
            raise CaptionerError(
                f"vllm cannot be imported ({error}); "
                "on a GPU machine: pip install 'llmformer[vllm]'"
            ) from error

        model_type = local_model_type(model)
        self.model = model
        self.prompt = prompt
        self.sampling = greedy_sampling(max_new_tokens)
        self.text_prompt = build_text_prompt(
            prompt, model, load_processor(model), prompt_format, model_type
        )
        settings = {
            "limit_mm_per_prompt": {"image": 1},
            "seed": 0,
            **family_engine_settings(find_prompt_format(model, prompt_format, model_type)),
            **(engine_args or {}),
        }
        self.engine = LLM(model=model, **settings)
        self.sampling_params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens)

    @classmethod
    def from_options(cls, options: CaptionerOptions) -> VLLMCaptioner:
        identity = model_captioner_identity(cls.name, options)
        return cls(
            identity.model,
            identity.prompt,
            options.max_new_tokens,
            options.prompt_format,
            options.engine_args,
        )

    def caption(self, batch: Sequence[CaptionRequest]) -> list[CaptionResult]:
        requests = [
            {"prompt": self.text_prompt, "multi_modal_data": {"image": request.image}}
            for request in batch
        ]
        outputs = self.engine.generate(requests, self.sampling_params, use_tqdm=False)
        return [clean_caption(output.outputs[0].text) for output in outputs]


def family_engine_settings(family: PromptFormat | None) -> dict[str, Any]:
    """A known family's context length and engine settings; none for other families (vLLM
    then takes the checkpoint's own context length)."""
    if family is None:
        return {}
    return {"max_model_len": family.max_model_len, **family.engine_args}


def require_visible_gpus(tensor_parallel_size: int) -> None:
    """Refuse, before vllm loads, a tensor-parallel size that the GPUs this process may use
    (`CUDA_VISIBLE_DEVICES`, where set) cannot hold."""
    if tensor_parallel_size < 1:
        raise CaptionerError(f"tensor_parallel_size must be at least 1, not {tensor_parallel_size}")
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return
    visible = [device for device in listed.split(",") if device.strip()]
    if len(visible) < tensor_parallel_size:
        raise CaptionerError(
            f"tensor_parallel_size={tensor_parallel_size} needs as many GPUs, but "
            f"CUDA_VISIBLE_DEVICES={listed!r} shows {len(visible)}"
        )
