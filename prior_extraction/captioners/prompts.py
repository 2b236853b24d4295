"""Prompts and chat formats shared by the model captioners (vLLM and transformers).

The paper asks "Describe the image." (its main experiments) and a detailed variant that asks for
all objects, attributes and relations. The question is wrapped by the checkpoint's own chat
template (its processor's `apply_chat_template`), so any VLM that ships one works; the
hand-written formats below serve checkpoints without a template. vLLM and transformers get the
same text, so both see the same tokens.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

SIMPLE_PROMPT = "Describe the image."
DETAILED_PROMPT = (
    "Describe the image in detail. Name every object you see, with its attributes "
    "(color, size, material, shape, state), and say how the objects relate to each other "
    "(their positions and what they are doing)."
)
NAMED_PROMPTS = {"simple": SIMPLE_PROMPT, "detailed": DETAILED_PROMPT}


class PromptError(ValueError):
    """An empty prompt, or a model with no known chat format (the message lists the formats)."""


class ChatTemplateRenderer(Protocol):
    """What renders a checkpoint's chat template: a transformers processor (or tokenizer)."""

    chat_template: Any

    def apply_chat_template(self, conversation: list[dict[str, Any]], **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class PromptFormat:
    """A model family's hand-written chat format (`{prompt}` is the question), used when the
    checkpoint ships no chat template, and the family's vLLM engine settings."""

    name: str
    template: str
    max_model_len: int
    engine_args: dict[str, Any] = field(default_factory=dict)

    def build(self, prompt: str) -> str:
        """The full text prompt, image placeholder included, for one question."""
        return self.template.format(prompt=prompt)


PROMPT_FORMATS: dict[str, PromptFormat] = {
    "llava-1.5": PromptFormat("llava-1.5", "USER: <image>\n{prompt}\nASSISTANT:", 4096),
    "llava-next": PromptFormat("llava-next", "[INST] <image>\n{prompt} [/INST]", 8192),
    "qwen2-vl": PromptFormat(
        "qwen2-vl",
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>{prompt}<|im_end|>\n"
        "<|im_start|>assistant\n",
        4096,
        {"mm_processor_kwargs": {"min_pixels": 28 * 28, "max_pixels": 1280 * 28 * 28}},
    ),
}

_FORMAT_BY_MODEL_NAME = (
    (re.compile(r"qwen2(\.5)?-vl", re.IGNORECASE), "qwen2-vl"),
    (re.compile(r"llava-v1\.6-mistral|llava-next", re.IGNORECASE), "llava-next"),
    (re.compile(r"llava-(v)?1\.5|bakllava", re.IGNORECASE), "llava-1.5"),
)
_FORMAT_BY_MODEL_TYPE = {
    "llava": "llava-1.5",
    "llava_next": "llava-next",
    "qwen2_vl": "qwen2-vl",
    "qwen2_5_vl": "qwen2-vl",
}

_SPECIAL_TOKENS = re.compile(r"</s>|<s>|<\|im_end\|>|<\|endoftext\|>|<\|im_start\|>")
_ROLE_PREFIX = re.compile(r"^\s*(ASSISTANT:|assistant\n|\[/INST\])\s*", re.IGNORECASE)
_HORIZONTAL_SPACE = re.compile(r"[ \t]+")


def resolve_prompt(prompt: str) -> str:
    """`simple`, `detailed`, or the user's own question text."""
    text = NAMED_PROMPTS.get(prompt, prompt).strip()
    if not text:
        raise PromptError("the prompt is empty; use simple, detailed or a question")
    return text


def chat_messages(prompt: str) -> list[dict[str, Any]]:
    """One user turn, the picture before the question, in the content-list form multimodal chat
    templates read: `{"type": "image"}` becomes the model's own image placeholder."""
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]


def template_prompt(renderer: ChatTemplateRenderer, prompt: str) -> str | None:
    """The question as the checkpoint's chat template writes it, ready for the answer; None for
    a checkpoint that ships no template."""
    if not getattr(renderer, "chat_template", None):
        return None
    return renderer.apply_chat_template(
        chat_messages(prompt), add_generation_prompt=True, tokenize=False
    )


def build_text_prompt(
    prompt: str,
    model: str,
    renderer: ChatTemplateRenderer,
    requested: str | None = None,
    model_type: str | None = None,
) -> str:
    """The full text prompt, image placeholder included: the requested hand-written format
    (a user's override), else the checkpoint's chat template, else its family's format."""
    if requested is None:
        rendered = template_prompt(renderer, prompt)
        if rendered is not None:
            return rendered
    return choose_prompt_format(model, requested, model_type).build(prompt)


def find_prompt_format(
    model: str, requested: str | None = None, model_type: str | None = None
) -> PromptFormat | None:
    """The requested format, else one recognised from the model's name or its config's
    `model_type` (a local checkpoint folder's name says nothing about its family), else None."""
    if requested is not None:
        if requested not in PROMPT_FORMATS:
            raise PromptError(
                f"unknown prompt format {requested!r}; known: {', '.join(PROMPT_FORMATS)}"
            )
        return PROMPT_FORMATS[requested]
    for pattern, name in _FORMAT_BY_MODEL_NAME:
        if pattern.search(model):
            return PROMPT_FORMATS[name]
    if model_type in _FORMAT_BY_MODEL_TYPE:
        return PROMPT_FORMATS[_FORMAT_BY_MODEL_TYPE[model_type]]
    return None


def choose_prompt_format(
    model: str, requested: str | None = None, model_type: str | None = None
) -> PromptFormat:
    """`find_prompt_format`, where no format found is an error naming the known ones."""
    chosen = find_prompt_format(model, requested, model_type)
    if chosen is None:
        raise PromptError(
            f"model {model!r} ships no chat template and its family has no known chat format; "
            f"pass --prompt-format with one of: {', '.join(PROMPT_FORMATS)}"
        )
    return chosen


def local_model_type(model: str) -> str | None:
    """`model_type` from a local checkpoint folder's config.json; None for a hub id."""
    config = Path(model) / "config.json"
    if not config.is_file():
        return None
    return json.loads(config.read_text(encoding="utf-8")).get("model_type")


def clean_caption(text: str) -> str:
    """Generated text as a caption: special tokens, an echoed role marker and ragged spacing
    removed; line breaks kept (a detailed answer's list items stay apart for the parser)."""
    text = _SPECIAL_TOKENS.sub("", text)
    text = _ROLE_PREFIX.sub("", text)
    lines = (_HORIZONTAL_SPACE.sub(" ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)
