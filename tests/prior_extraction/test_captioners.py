"""Captioners: prompts and chat formats shared by vLLM and transformers, the file captioner, the
vLLM glue (against a stand-in engine: vllm needs a GPU), and a real tiny LLaVA through
transformers, saved and loaded back the way a downloaded checkpoint is."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import types
from pathlib import Path
from typing import ClassVar

import pyarrow as pa
import pyarrow.parquet as parquet
import pytest
from PIL import Image

from prior_extraction.captioners import (
    CAPTIONERS,
    IDENTITIES,
    CaptionerError,
    CaptionerOptions,
    CaptionFailure,
    CaptionRequest,
    build_captioner,
    captioner_identity,
    default_batch_size,
)
from prior_extraction.captioners.file import FileCaptioner
from prior_extraction.captioners.prompts import (
    DETAILED_PROMPT,
    SIMPLE_PROMPT,
    PromptError,
    choose_prompt_format,
    clean_caption,
    resolve_prompt,
)
from prior_extraction.run import prior_set_spec


def test_named_prompts_and_free_text() -> None:
    assert resolve_prompt("simple") == SIMPLE_PROMPT == "Describe the image."
    assert resolve_prompt("detailed") == DETAILED_PROMPT
    assert "attributes" in DETAILED_PROMPT and "relate" in DETAILED_PROMPT
    assert resolve_prompt("  What animals are here? ") == "What animals are here?"
    with pytest.raises(PromptError, match="the prompt is empty"):
        resolve_prompt("   ")


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("llava-hf/llava-1.5-7b-hf", "USER: <image>\nDescribe the image.\nASSISTANT:"),
        ("llava-hf/llava-v1.6-mistral-7b-hf", "[INST] <image>\nDescribe the image. [/INST]"),
        (
            "Qwen/Qwen2.5-VL-3B-Instruct",
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
            "<|vision_start|><|image_pad|><|vision_end|>Describe the image.<|im_end|>\n"
            "<|im_start|>assistant\n",
        ),
    ],
)
def test_prompt_format_is_recognised_from_the_model_name(model: str, expected: str) -> None:
    assert choose_prompt_format(model).build(SIMPLE_PROMPT) == expected


def test_prompt_format_from_config_type_or_request_else_a_clear_error() -> None:
    assert choose_prompt_format("/ckpt/step-900", model_type="llava_next").name == "llava-next"
    assert choose_prompt_format("llava-hf/llava-1.5-7b-hf", "qwen2-vl").name == "qwen2-vl"
    with pytest.raises(PromptError, match=r"pass --prompt-format with one of: llava-1\.5"):
        choose_prompt_format("/ckpt/step-900")
    with pytest.raises(PromptError, match="unknown prompt format 'chatml'"):
        choose_prompt_format("llava-hf/llava-1.5-7b-hf", "chatml")


@pytest.mark.parametrize(
    ("generated", "caption"),
    [
        ("  A dog   on\tgrass.</s>", "A dog on grass."),
        ("ASSISTANT: A red car.", "A red car."),
        ("A cat.<|im_end|><|endoftext|>", "A cat."),
        ("Objects:\n\n- a  table\n- a lamp  \n", "Objects:\n- a table\n- a lamp"),
        ("", ""),
    ],
)
def test_generated_text_is_cleaned_the_same_way_for_every_backend(
    generated: str, caption: str
) -> None:
    assert clean_caption(generated) == caption


def test_registry_errors_and_batch_defaults() -> None:
    with pytest.raises(CaptionerError, match="unknown captioner 'gpt'; choose one of: file"):
        build_captioner("gpt", CaptionerOptions())
    with pytest.raises(CaptionerError, match="the file captioner needs --captions FILE"):
        build_captioner("file", CaptionerOptions())
    assert default_batch_size("transformers", 256) == 8
    assert default_batch_size("vllm", 256) == 256


def test_choosing_captioners_imports_no_model_library() -> None:
    code = (
        "import sys, prior_extraction.captioners as c, prior_extraction.captioners.vllm;"
        "[c.captioner_identity(n, c.CaptionerOptions()) for n in ('vllm', 'transformers')];"
        "print(sorted(m for m in ('vllm', 'torch', 'transformers') if m in sys.modules))"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"


def test_identity_errors_match_the_builders() -> None:
    assert set(IDENTITIES) == set(CAPTIONERS)
    with pytest.raises(CaptionerError, match="unknown captioner 'gpt'; choose one of: file"):
        captioner_identity("gpt", CaptionerOptions())
    with pytest.raises(CaptionerError, match="the file captioner needs --captions FILE"):
        captioner_identity("file", CaptionerOptions())
    with pytest.raises(CaptionerError, match=r"captions file absent\.jsonl does not exist"):
        captioner_identity("file", CaptionerOptions(captions=Path("absent.jsonl")))


def test_file_identity_gives_the_loaded_captioners_prior_set(tmp_path: Path, captions_for) -> None:
    path = captions_for(tmp_path / "c.jsonl", {"a.png": "A cat."})
    options = CaptionerOptions(captions=path, prompt=DETAILED_PROMPT)
    identity = captioner_identity("file", options)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    assert (identity.model, identity.prompt, identity.sampling) == (f"c.jsonl#{digest}", "", {})
    loaded = build_captioner("file", options)
    assert prior_set_spec(identity, "demo") == prior_set_spec(loaded, "demo")


def _requests(*image_ids: str) -> list[CaptionRequest]:
    return [CaptionRequest(image_id, Image.new("RGB", (4, 4))) for image_id in image_ids]


def test_file_captioner_reads_jsonl_and_reports_missing_ids(tmp_path: Path, captions_for) -> None:
    path = captions_for(tmp_path / "c.jsonl", {"a.png": "A cat.", "b.png": "A dog."})
    captioner = build_captioner("file", CaptionerOptions(captions=path))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    assert (captioner.name, captioner.model, captioner.sampling) == (
        "file",
        f"c.jsonl#{digest}",
        {},
    )
    results = captioner.caption(_requests("b.png", "zz.png", "a.png"))
    assert results[0] == "A dog." and results[2] == "A cat."
    assert results[1] == CaptionFailure("MissingCaptionError", f"no caption for 'zz.png' in {path}")


def test_caption_files_with_one_name_but_other_content_are_other_models(
    tmp_path: Path, captions_for
) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    first = FileCaptioner(captions_for(tmp_path / "a" / "captions.jsonl", {"x": "A cat."}))
    second = FileCaptioner(captions_for(tmp_path / "b" / "captions.jsonl", {"x": "A dog."}))
    again = FileCaptioner(captions_for(tmp_path / "captions.jsonl", {"x": "A cat."}))
    assert first.model != second.model
    assert first.model == again.model


def test_file_captioner_reads_parquet(tmp_path: Path) -> None:
    path = tmp_path / "c.parquet"
    parquet.write_table(pa.table({"id": [1, 2], "caption": ["One.", "Two."], "x": [0, 0]}), path)
    assert FileCaptioner(path).caption(_requests("2", "1")) == ["Two.", "One."]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"id": "a", "caption": "ok"}\n{"id": "b"}\n', r"c.jsonl:2: expected a JSON object"),
        ('{"id": "a", "caption": 5}\n', r"c.jsonl:1: 'caption' must be a string"),
        ("oops\n", r"c.jsonl:1: not valid JSON"),
    ],
)
def test_malformed_captions_file_names_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(content)
    with pytest.raises(CaptionerError, match=message):
        FileCaptioner(path)


def test_missing_captions_file_and_bad_parquet(tmp_path: Path) -> None:
    with pytest.raises(CaptionerError, match=r"captions file .*absent\.jsonl does not exist"):
        FileCaptioner(tmp_path / "absent.jsonl")
    bad = tmp_path / "bad.parquet"
    parquet.write_table(pa.table({"id": ["a"], "text": ["no caption column"]}), bad)
    with pytest.raises(CaptionerError, match="cannot read 'id' and 'caption' columns"):
        FileCaptioner(bad)


class _StandInEngine:
    """Records what the captioner hands vLLM and answers in input order, as vLLM does."""

    built: ClassVar[list[dict]] = []

    def __init__(self, model: str, **settings) -> None:
        _StandInEngine.built.append({"model": model, **settings})

    def generate(self, requests, sampling_params, use_tqdm=True):
        self.requests, self.sampling_params = requests, sampling_params
        return [
            types.SimpleNamespace(outputs=[types.SimpleNamespace(text=f" caption {i}</s> ")])
            for i, _ in enumerate(requests)
        ]


@pytest.fixture
def stand_in_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.LLM = _StandInEngine
    module.SamplingParams = lambda **kwargs: kwargs
    monkeypatch.setitem(sys.modules, "vllm", module)
    _StandInEngine.built.clear()
    return _StandInEngine


def test_vllm_captioner_sends_one_request_per_image_and_cleans_outputs(stand_in_vllm) -> None:
    options = CaptionerOptions(
        model="llava-hf/llava-v1.6-mistral-7b-hf",
        max_new_tokens=64,
        engine_args={"gpu_memory_utilization": 0.8},
    )
    captioner = build_captioner("vllm", options)
    assert stand_in_vllm.built == [
        {
            "model": "llava-hf/llava-v1.6-mistral-7b-hf",
            "max_model_len": 8192,
            "limit_mm_per_prompt": {"image": 1},
            "seed": 0,
            "gpu_memory_utilization": 0.8,
        }
    ]
    requests = _requests("a", "b", "c")
    assert captioner.caption(requests) == ["caption 0", "caption 1", "caption 2"]
    sent = captioner.engine.requests
    assert [entry["multi_modal_data"]["image"] for entry in sent] == [r.image for r in requests]
    assert {entry["prompt"] for entry in sent} == {"[INST] <image>\nDescribe the image. [/INST]"}
    assert captioner.engine.sampling_params == {"temperature": 0.0, "max_tokens": 64}
    assert captioner.sampling == {"temperature": 0.0, "max_new_tokens": 64}


def test_vllm_identity_gives_the_loaded_captioners_prior_set(stand_in_vllm) -> None:
    options = CaptionerOptions(prompt=DETAILED_PROMPT, max_new_tokens=77)
    identity = captioner_identity("vllm", options)
    assert (identity.name, identity.model) == ("vllm", "llava-hf/llava-1.5-7b-hf")
    assert identity.sampling == {"temperature": 0.0, "max_new_tokens": 77}
    assert prior_set_spec(identity) == prior_set_spec(build_captioner("vllm", options))


def test_vllm_qwen_engine_gets_its_pixel_budget(stand_in_vllm) -> None:
    build_captioner("vllm", CaptionerOptions(model="Qwen/Qwen2-VL-2B-Instruct"))
    settings = stand_in_vllm.built[0]
    assert settings["mm_processor_kwargs"] == {"min_pixels": 784, "max_pixels": 1003520}
    assert settings["max_model_len"] == 4096


def test_vllm_reads_a_local_checkpoints_family_from_its_config(stand_in_vllm, tiny_llava) -> None:
    captioner = build_captioner("vllm", CaptionerOptions(model=str(tiny_llava)))
    assert captioner.text_prompt == "USER: <image>\nDescribe the image.\nASSISTANT:"
    assert stand_in_vllm.built[0]["max_model_len"] == 4096


def test_vllm_missing_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(CaptionerError, match=r"pip install 'llmformer\[vllm\]'"):
        build_captioner("vllm", CaptionerOptions())


# --- transformers: the real tiny LLaVA of conftest.py, loaded like a downloaded checkpoint ---


def test_tiny_llava_loads_through_the_checkpoint_path(tiny_captioner) -> None:
    from transformers import LlavaForConditionalGeneration

    assert isinstance(tiny_captioner.network, LlavaForConditionalGeneration)
    assert tiny_captioner.text_prompt == "USER: <image>\nDescribe the image.\nASSISTANT:"
    assert tiny_captioner.processor.tokenizer.padding_side == "left"
    assert tiny_captioner.sampling == {"temperature": 0.0, "max_new_tokens": 6}


def test_tiny_llava_captions_every_image_in_order_whatever_the_batch(
    tiny_captioner, pictures
) -> None:
    requests = [
        CaptionRequest(str(index), pictures.noise_image(index, (40 + index, 30)))
        for index in range(7)
    ]
    one_by_one = [tiny_captioner.caption([request])[0] for request in requests]
    assert all(isinstance(caption, str) and caption for caption in one_by_one)
    assert len(set(one_by_one)) > 1, "distinct images should give distinct captions"
    for batch_size in (3, 4):
        batched = []
        for start in range(0, len(requests), batch_size):
            batched += tiny_captioner.caption(requests[start : start + batch_size])
        assert batched == one_by_one
    assert tiny_captioner.caption([]) == []


def test_transformers_identity_gives_the_loaded_captioners_prior_set(
    tiny_captioner, tiny_llava
) -> None:
    options = CaptionerOptions(model=str(tiny_llava), max_new_tokens=6, device="cpu")
    identity = captioner_identity("transformers", options)
    assert (identity.name, identity.model) == ("transformers", str(tiny_llava))
    assert prior_set_spec(identity, "tiny") == prior_set_spec(tiny_captioner, "tiny")
