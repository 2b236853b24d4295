"""Captioners: prompts and chat formats shared by vLLM and transformers, the file captioner, the
vLLM glue (against a stand-in engine: vllm needs a GPU), and two real tiny model families
(LLaVA-1.5 and LLaVA-NeXT) through transformers, saved and loaded back the way a downloaded
checkpoint is, with and without their own chat templates."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import ClassVar

import pyarrow as pa
import pyarrow.parquet as parquet
import pytest
from PIL import Image
from typer.testing import CliRunner

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
    build_text_prompt,
    chat_messages,
    choose_prompt_format,
    clean_caption,
    resolve_prompt,
)
from prior_extraction.run import prior_set_spec

LLAVA_FALLBACK = "USER: <image>\nDescribe the image.\nASSISTANT:"
LLAVA_NEXT_FALLBACK = "[INST] <image>\nDescribe the image. [/INST]"
TEMPLATE_PROMPTS = {
    "tiny-llava": "USER: <image>\nDescribe the image. ASSISTANT:",
    "tiny-llava-next": (
        "<|im_start|>user\n<image>\nDescribe the image.<|im_end|><|im_start|>assistant\n"
    ),
}
"""What each tiny checkpoint's own chat template (conftest.py) renders for the simple prompt."""
FALLBACK_PROMPTS = {
    "tiny-llava-no-template": LLAVA_FALLBACK,
    "tiny-llava-next-no-template": LLAVA_NEXT_FALLBACK,
}
"""The hand-written family format each template-less tiny checkpoint falls back to."""


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
        ("llava-hf/llava-1.5-7b-hf", LLAVA_FALLBACK),
        ("llava-hf/llava-v1.6-mistral-7b-hf", LLAVA_NEXT_FALLBACK),
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
    with pytest.raises(
        PromptError,
        match=r"'/ckpt/step-900' ships no chat template .* pass --prompt-format with one of: llava",
    ):
        choose_prompt_format("/ckpt/step-900")
    with pytest.raises(PromptError, match="unknown prompt format 'chatml'"):
        choose_prompt_format("llava-hf/llava-1.5-7b-hf", "chatml")


class _RecordingRenderer:
    """A processor's chat-template side: records what it is asked to render."""

    def __init__(self, chat_template: str | None) -> None:
        self.chat_template = chat_template
        self.calls: list[tuple[list, dict]] = []

    def apply_chat_template(self, conversation: list, **kwargs) -> str:
        self.calls.append((conversation, kwargs))
        return f"<rendered {conversation[0]['content'][1]['text']}>"


def test_one_user_turn_holds_the_picture_then_the_question() -> None:
    assert chat_messages("What is here?") == [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is here?"}]}
    ]


def test_the_checkpoints_template_renders_the_prompt_ready_for_the_answer() -> None:
    renderer = _RecordingRenderer("{{ messages }}")
    assert build_text_prompt(SIMPLE_PROMPT, "someone/any-vlm", renderer) == (
        "<rendered Describe the image.>"
    )
    assert renderer.calls == [
        (chat_messages(SIMPLE_PROMPT), {"add_generation_prompt": True, "tokenize": False})
    ]


def test_a_requested_format_overrides_the_template_and_no_template_falls_back() -> None:
    with_template = _RecordingRenderer("{{ messages }}")
    assert build_text_prompt(SIMPLE_PROMPT, "m", with_template, "llava-next") == LLAVA_NEXT_FALLBACK
    assert with_template.calls == []
    without = _RecordingRenderer(None)
    assert build_text_prompt(SIMPLE_PROMPT, "/ckpt/x", without, model_type="llava") == (
        LLAVA_FALLBACK
    )
    assert build_text_prompt(SIMPLE_PROMPT, "llava-hf/llava-v1.6-mistral-7b-hf", without) == (
        LLAVA_NEXT_FALLBACK
    )
    with pytest.raises(PromptError, match="'/ckpt/x' ships no chat template"):
        build_text_prompt(SIMPLE_PROMPT, "/ckpt/x", without)
    assert without.calls == []


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
    with pytest.raises(CaptionerError, match=r"captions file .* is a folder: name the JSONL or"):
        FileCaptioner(tmp_path)
    bad = tmp_path / "bad.parquet"
    parquet.write_table(pa.table({"id": ["a"], "text": ["no caption column"]}), bad)
    with pytest.raises(CaptionerError, match=r"bad\.parquet: no 'caption' column$"):
        FileCaptioner(bad)
    not_parquet = tmp_path / "not.parquet"
    not_parquet.write_text("id,caption\n")
    with pytest.raises(CaptionerError, match=r"not\.parquet: not a readable Parquet file"):
        FileCaptioner(not_parquet)


def test_the_file_captioners_identity_refuses_captions_that_are_not_text(tmp_path: Path) -> None:
    """A flow keys its prior set by the identity before it loads the captions: a file that
    cannot give captions must not get a prior set registered."""
    numbers = tmp_path / "numbers.parquet"
    parquet.write_table(pa.table({"id": ["a", "b"], "caption": [1.5, 2.5]}), numbers)
    with pytest.raises(CaptionerError, match=r"numbers\.parquet: column 'caption' holds double"):
        captioner_identity("file", CaptionerOptions(captions=numbers))


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


@pytest.fixture
def hub_processors(monkeypatch) -> list[str]:
    """The hub is out of reach in tests: a hub id's processor is a stand-in without a chat
    template (so its family's hand-written format applies); returns the ids asked for."""
    asked: list[str] = []

    def load(model: str) -> types.SimpleNamespace:
        asked.append(model)
        return types.SimpleNamespace(chat_template=None)

    monkeypatch.setattr("prior_extraction.captioners.vllm.load_processor", load)
    return asked


def test_vllm_captioner_sends_one_request_per_image_and_cleans_outputs(
    stand_in_vllm, hub_processors
) -> None:
    options = CaptionerOptions(
        model="llava-hf/llava-v1.6-mistral-7b-hf",
        max_new_tokens=64,
        engine_args={"gpu_memory_utilization": 0.8},
    )
    captioner = build_captioner("vllm", options)
    assert hub_processors == ["llava-hf/llava-v1.6-mistral-7b-hf"]
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
    assert {entry["prompt"] for entry in sent} == {LLAVA_NEXT_FALLBACK}
    assert captioner.engine.sampling_params == {"temperature": 0.0, "max_tokens": 64}
    assert captioner.sampling == {"temperature": 0.0, "max_new_tokens": 64}


def test_vllm_identity_gives_the_loaded_captioners_prior_set(stand_in_vllm, hub_processors) -> None:
    options = CaptionerOptions(prompt=DETAILED_PROMPT, max_new_tokens=77)
    identity = captioner_identity("vllm", options)
    assert (identity.name, identity.model) == ("vllm", "llava-hf/llava-1.5-7b-hf")
    assert identity.sampling == {"temperature": 0.0, "max_new_tokens": 77}
    assert prior_set_spec(identity) == prior_set_spec(build_captioner("vllm", options))


def test_vllm_qwen_engine_gets_its_pixel_budget(stand_in_vllm, hub_processors) -> None:
    build_captioner("vllm", CaptionerOptions(model="Qwen/Qwen2-VL-2B-Instruct"))
    settings = stand_in_vllm.built[0]
    assert settings["mm_processor_kwargs"] == {"min_pixels": 784, "max_pixels": 1003520}
    assert settings["max_model_len"] == 4096


@pytest.mark.parametrize("name", [*TEMPLATE_PROMPTS, *FALLBACK_PROMPTS])
def test_vllm_prompts_a_local_checkpoint_with_its_template_else_its_familys_format(
    stand_in_vllm, tiny_checkpoint, name: str
) -> None:
    captioner = build_captioner("vllm", CaptionerOptions(model=str(tiny_checkpoint(name))))
    assert captioner.text_prompt == {**TEMPLATE_PROMPTS, **FALLBACK_PROMPTS}[name]
    family_context = 8192 if "next" in name else 4096
    assert stand_in_vllm.built[0]["max_model_len"] == family_context


def test_vllm_runs_a_family_it_does_not_know_on_its_template_and_own_context(
    stand_in_vllm, tiny_llava, tmp_path
) -> None:
    unknown = tmp_path / "step-900"
    shutil.copytree(tiny_llava, unknown)
    config = json.loads((unknown / "config.json").read_text())
    (unknown / "config.json").write_text(json.dumps({**config, "model_type": "my_vlm"}))
    captioner = build_captioner("vllm", CaptionerOptions(model=str(unknown)))
    assert captioner.text_prompt == TEMPLATE_PROMPTS["tiny-llava"]
    assert "max_model_len" not in stand_in_vllm.built[0]


def test_vllm_checks_the_processor_before_building_the_engine(
    stand_in_vllm, weights_without_processor
) -> None:
    with pytest.raises(CaptionerError, match="cannot load the processor of") as raised:
        build_captioner("vllm", CaptionerOptions(model=str(weights_without_processor)))
    assert "\n" not in str(raised.value)
    assert stand_in_vllm.built == []


def test_vllm_missing_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(CaptionerError, match=r"pip install 'llmformer\[vllm\]'"):
        build_captioner("vllm", CaptionerOptions())


# --- transformers: real tiny checkpoints of conftest.py, loaded like downloaded ones ---


@pytest.fixture(scope="module")
def family_captioners(tiny_checkpoint) -> dict:
    """`family_captioners[name]`: the transformers captioner on that tiny checkpoint, loaded on
    first use and kept for the module (CPU, 6 new tokens)."""

    class Loaded(dict):
        def __missing__(self, name: str):
            options = CaptionerOptions(
                model=str(tiny_checkpoint(name)), max_new_tokens=6, device="cpu"
            )
            self[name] = build_captioner("transformers", options)
            return self[name]

    return Loaded()


@pytest.fixture
def weights_without_processor(tiny_llava, tmp_path) -> Path:
    """A checkpoint folder holding a model's config and weights but no processor files."""
    folder = tmp_path / "weights-only"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_llava / name, folder / name)
    return folder


def test_tiny_llava_loads_through_the_checkpoint_path(tiny_captioner) -> None:
    from transformers import LlavaForConditionalGeneration

    assert isinstance(tiny_captioner.network, LlavaForConditionalGeneration)
    assert tiny_captioner.text_prompt == TEMPLATE_PROMPTS["tiny-llava"]
    assert tiny_captioner.processor.tokenizer.padding_side == "left"
    assert tiny_captioner.sampling == {"temperature": 0.0, "max_new_tokens": 6}


@pytest.mark.parametrize("name", TEMPLATE_PROMPTS)
def test_the_prompt_is_what_the_saved_checkpoints_own_template_renders(
    tiny_checkpoint, name: str
) -> None:
    from transformers import AutoProcessor

    folder = tiny_checkpoint(name)
    processor = AutoProcessor.from_pretrained(folder)
    rendered = processor.apply_chat_template(
        chat_messages(SIMPLE_PROMPT), add_generation_prompt=True, tokenize=False
    )
    assert rendered == TEMPLATE_PROMPTS[name]
    assert build_text_prompt(SIMPLE_PROMPT, str(folder), processor) == rendered


@pytest.mark.parametrize(
    ("name", "network_class", "image_tokens"),
    [
        ("tiny-llava", "LlavaForConditionalGeneration", [4, 4]),
        ("tiny-llava-next", "LlavaNextForConditionalGeneration", [24, 16]),
    ],
)
def test_each_family_prompt_expands_to_the_image_tokens_its_model_fills(
    family_captioners, pictures, name: str, network_class: str, image_tokens: list[int]
) -> None:
    """The template's one placeholder becomes as many image tokens as the vision tower gives
    features: LLaVA 2 x 2 patches whatever the picture, LLaVA-NeXT also one grid of tiles
    chosen by the picture's shape (40 x 30 and 30 x 60 pixels here) with a newline per row."""
    captioner = family_captioners[name]
    assert type(captioner.network).__name__ == network_class
    assert captioner.text_prompt.count(captioner.processor.image_token) == 1
    counts = []
    for size in ((40, 30), (30, 60)):
        inputs = captioner.processor(
            images=[pictures.noise_image(1, size)],
            text=[captioner.text_prompt],
            return_tensors="pt",
        )
        placeholders = int((inputs["input_ids"] == captioner.network.config.image_token_id).sum())
        assert placeholders == image_feature_count(captioner.network, inputs)
        counts.append(placeholders)
    assert counts == image_tokens


def image_feature_count(network, inputs) -> int:
    """How many image embeddings the network makes for the processed pictures."""
    import torch

    pixels = {key: inputs[key] for key in ("pixel_values", "image_sizes") if key in inputs}
    with torch.inference_mode():
        features = network.get_image_features(**pixels).pooler_output
    return sum(int(feature.reshape(-1, feature.shape[-1]).shape[0]) for feature in features)


@pytest.mark.parametrize("name", FALLBACK_PROMPTS)
def test_a_checkpoint_without_a_template_falls_back_to_its_familys_format(
    family_captioners, name: str
) -> None:
    assert family_captioners[name].processor.chat_template is None
    assert family_captioners[name].text_prompt == FALLBACK_PROMPTS[name]


def test_a_requested_prompt_format_overrides_the_checkpoints_template(tiny_llava) -> None:
    options = CaptionerOptions(
        model=str(tiny_llava), max_new_tokens=2, prompt_format="llava-1.5", device="cpu"
    )
    assert build_captioner("transformers", options).text_prompt == LLAVA_FALLBACK


@pytest.mark.parametrize("name", ["tiny-llava", "tiny-llava-next", "tiny-llava-no-template"])
def test_each_family_captions_every_image_in_order_whatever_the_batch(
    family_captioners, pictures, name: str
) -> None:
    captioner = family_captioners[name]
    requests = [
        CaptionRequest(str(index), pictures.noise_image(index, (40 + 9 * index, 30)))
        for index in range(5)
    ]
    one_by_one = [captioner.caption([request])[0] for request in requests]
    assert all(isinstance(caption, str) and caption for caption in one_by_one)
    assert len(set(one_by_one)) > 1, "distinct images should give distinct captions"
    batched = captioner.caption(requests[:3]) + captioner.caption(requests[3:])
    assert batched == one_by_one
    assert captioner.caption([]) == []


def test_transformers_identity_gives_the_loaded_captioners_prior_set(
    tiny_captioner, tiny_llava
) -> None:
    options = CaptionerOptions(model=str(tiny_llava), max_new_tokens=6, device="cpu")
    identity = captioner_identity("transformers", options)
    assert (identity.name, identity.model) == ("transformers", str(tiny_llava))
    assert prior_set_spec(identity, "tiny") == prior_set_spec(tiny_captioner, "tiny")


def test_a_checkpoint_without_a_processor_is_a_one_line_error(weights_without_processor) -> None:
    options = CaptionerOptions(model=str(weights_without_processor), device="cpu")
    with pytest.raises(CaptionerError, match="cannot load the processor of") as raised:
        build_captioner("transformers", options)
    assert "\n" not in str(raised.value)


def test_a_processor_this_install_cannot_build_is_a_one_line_error(monkeypatch) -> None:
    import transformers

    def fail(model: str):
        raise AttributeError("type object 'VIDEO_PROCESSOR_MAPPING' has no attribute\nmore")

    monkeypatch.setattr(transformers.AutoProcessor, "from_pretrained", fail)
    with pytest.raises(CaptionerError) as raised:
        build_captioner("transformers", CaptionerOptions(model="org/vlm", device="cpu"))
    assert str(raised.value) == (
        "cannot load the processor of 'org/vlm': "
        "type object 'VIDEO_PROCESSOR_MAPPING' has no attribute"
    )


def test_a_text_only_checkpoint_or_a_missing_folder_is_a_one_line_error(
    tiny_checkpoint, tmp_path
) -> None:
    text_only = tiny_checkpoint("tiny-llama-text-only")
    with pytest.raises(CaptionerError, match=r"has no image processor: not a vision-language"):
        build_captioner("transformers", CaptionerOptions(model=str(text_only), device="cpu"))
    absent = tmp_path / "absent"
    message = f"checkpoint folder {absent} does not exist"
    with pytest.raises(CaptionerError, match=f"^{re.escape(message)}$"):
        build_captioner("transformers", CaptionerOptions(model=str(absent), device="cpu"))


def test_extract_cli_says_in_one_line_that_a_checkpoint_has_no_processor(
    weights_without_processor, tmp_path, pictures
) -> None:
    from flows.cli import app

    (tmp_path / "images").mkdir()
    pictures.noise_image(0).save(tmp_path / "images" / "a.png")
    args = ["priors", "extract", "--store", str(tmp_path / "store"), "--captioner"]
    args += ["transformers", "--model", str(weights_without_processor)]
    result = CliRunner().invoke(app, [*args, "--images", str(tmp_path / "images")])
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"error: cannot load the processor of '{weights_without_processor}'"
    )
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "store").exists()
