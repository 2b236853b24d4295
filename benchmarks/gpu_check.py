"""One prepared check for a lent GPU: captioning throughput and the paper model's training step.

Nothing is downloaded: every network is built from its config at real size with random weights,
saved with `save_pretrained` and loaded back the way a downloaded checkpoint is.

1. Captions/s of a LLaVA-1.5-7B-shaped model (CLIP ViT-L/14-336 + Llama-7B, bf16) on the same
   pictures and prompt: vLLM's offline engine (continuous batching) against transformers'
   batched `generate`, both greedy and writing exactly `--new-tokens` tokens per caption.
2. The paper model (segmentation/configs/llmformer_vitl14_336_coco-stuff171.py) and its no-prior
   baseline ablation: seconds per training iteration and peak GPU memory at 640 x 640, batch 2,
   the config's AMP optimizer, on random pictures, labels and priors.

Each measurement runs in its own spawned process (vLLM does not free its memory, and each peak is
its own); each has a time limit. On a machine without a CUDA GPU it prints one line and exits 0.
Prints a table, then one JSON line with the figures.

    python benchmarks/gpu_check.py [--captions 64] [--new-tokens 128] [--hf-batch 16] [--steps 10]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import tempfile
import time
from pathlib import Path

from params import CLIP_L14_TEXT

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {
    "with priors": REPO / "segmentation/configs/llmformer_vitl14_336_coco-stuff171.py",
    "modules off": REPO
    / "segmentation/configs/ablations/llmformer_vitl14_336_coco-stuff171_baseline.py",
}


def paper_vision_config() -> dict:
    """CLIP ViT-L/14-336's vision config, as the paper config states it (LLaVA-1.5's tower)."""
    from mmengine.config import Config

    cfg = Config.fromfile(str(CONFIGS["with priors"]))
    return cfg.model.backbone.vision_tower.vision_config.to_dict()


CLIP_KEYS = (
    "model.backbone.vision_tower.pretrained",
    "model.text_encoder.model_path",
    "model.clip_classifier.checkpoint",
)
"""Where the paper config reads CLIP ViT-L/14-336 (as the tiny demo config reads its tiny CLIP)."""
PROMPT = "USER: <image>\nDescribe the image.\nASSISTANT:"
"""LLaVA-1.5's prompt format with the paper's simple prompt."""
LLAMA_7B = dict(
    vocab_size=32064,
    hidden_size=4096,
    intermediate_size=11008,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=32,
    max_position_embeddings=4096,
    rms_norm_eps=1e-5,
)
IMAGE_TOKEN_ID = 32000
SPECIAL_WORDS = ("<unk>", "<s>", "</s>")
"""LLaVA-1.5's first token ids; `<image>` is 32000 and `<pad>` 32001, as in the released model."""
TIME_LIMITS_S = {"build": 180, "transformers": 150, "vllm": 240, "clip": 60, "train": 90}
"""Each measurement's own limit; all of them share `--budget-s` too."""
MIN_LIMIT_S = 20
STOP_GRACE_S = 10
DEVICE = "cuda"
PICTURE_SIZE = (640, 480)
TRAIN_SIZE = 640
TRAIN_BATCH = 2


# ----------------------------------------------------------------------------- children
def _child_main(sender, function, args) -> None:
    try:
        sender.send(("ok", function(*args)))
    except BaseException as error:  # reported to the parent, which prints it in the table
        sender.send(("error", f"{type(error).__name__}: {error}"))
    finally:
        sender.close()


def in_child(function, *args, limit_s: float):
    """`function(*args)` in a spawned process, its result sent back; past `limit_s` the process
    is terminated, then killed after a grace, and a TimeoutError raised."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child_main, args=(sender, function, args))
    child.start()
    sender.close()
    finished = receiver.poll(limit_s)
    try:
        status, value = receiver.recv() if finished else ("timeout", None)
    except EOFError:
        status, value = "error", f"{function.__name__} exited without a result"
    finally:
        child.join(STOP_GRACE_S if finished else 0)
        if child.is_alive():
            child.terminate()
            child.join(STOP_GRACE_S)
        if child.is_alive():
            child.kill()
            child.join()
    if status == "timeout":
        raise TimeoutError(f"{function.__name__} ran past {limit_s:.0f} s")
    if status == "error":
        raise RuntimeError(value)
    return value


# ----------------------------------------------------------------------------- LLaVA
def _word_tokenizer():
    """A word-level tokenizer with LLaVA-1.5's 32064 ids (so every generated id decodes), its
    special tokens at their ids, and `<image>` as the image token."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = [*SPECIAL_WORDS, *(f"w{index}" for index in range(len(SPECIAL_WORDS), IMAGE_TOKEN_ID))]
    words += ["<image>", "<pad>"]
    words += [f"w{index}" for index in range(len(words), LLAMA_7B["vocab_size"])]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.add_special_tokens(["<image>", "<s>", "</s>", "<pad>"])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
    )


def build_llava(folder: str) -> dict:
    """A LLaVA-1.5-7B-shaped checkpoint with random bf16 weights (built on the GPU), saved with
    its processor; returns its size."""
    import torch
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    vision = paper_vision_config()
    tokenizer = _word_tokenizer()
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(**vision),
        text_config=LlamaConfig(**LLAMA_7B, pad_token_id=IMAGE_TOKEN_ID + 1),
        image_token_id=IMAGE_TOKEN_ID,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
    )
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device(DEVICE):
        model = LlavaForConditionalGeneration(config)
    model.save_pretrained(folder)
    side = vision["image_size"]
    LlavaProcessor(
        image_processor=CLIPImageProcessorPil(
            size={"shortest_edge": side}, crop_size={"height": side, "width": side}
        ),
        tokenizer=tokenizer,
        patch_size=vision["patch_size"],
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    ).save_pretrained(folder)
    return {"gb": sum(path.stat().st_size for path in Path(folder).glob("*.safetensors")) / 1e9}


def _pictures(count: int) -> list:
    """Noise pictures of a photo's size, the same every run."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    width, height = PICTURE_SIZE
    return [
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        for _ in range(count)
    ]


def transformers_captions(folder: str, captions: int, new_tokens: int, batch: int) -> dict:
    """Captions/s of batched greedy `generate` (left padding), after one warm-up batch."""
    import torch
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    processor = AutoProcessor.from_pretrained(folder)
    processor.tokenizer.padding_side = "left"
    model = LlavaForConditionalGeneration.from_pretrained(folder, dtype=torch.bfloat16)
    model = model.to(DEVICE)
    pictures = _pictures(captions)

    def generate(images: list) -> int:
        inputs = processor(
            images=images, text=[PROMPT] * len(images), return_tensors="pt", padding=True
        ).to(DEVICE)
        inputs["pixel_values"] = inputs["pixel_values"].to(torch.bfloat16)
        output = model.generate(
            **inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False
        )
        return (output.shape[1] - inputs["input_ids"].shape[1]) * len(images)

    generate(pictures[:batch])
    torch.cuda.synchronize()
    started = time.perf_counter()
    tokens = sum(generate(pictures[i : i + batch]) for i in range(0, captions, batch))
    torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return {"captions_per_s": captions / seconds, "tokens": tokens, "seconds": seconds}


def vllm_captions(folder: str, captions: int, new_tokens: int) -> dict:
    """Captions/s of vLLM's offline engine given every request at once, after a warm-up."""
    try:
        from vllm import LLM, SamplingParams
    except ImportError as error:
        return {"skipped": f"vllm not installed ({error}); pip install -e '.[vllm]'"}

    engine = LLM(
        model=folder,
        dtype="bfloat16",
        max_model_len=4096,
        limit_mm_per_prompt={"image": 1},
        seed=0,
    )
    fixed = SamplingParams(
        temperature=0.0, max_tokens=new_tokens, min_tokens=new_tokens, ignore_eos=True
    )
    pictures = _pictures(captions)
    requests = [{"prompt": PROMPT, "multi_modal_data": {"image": image}} for image in pictures]
    engine.generate(requests[:2], fixed, use_tqdm=False)
    started = time.perf_counter()
    outputs = engine.generate(requests, fixed, use_tqdm=False)
    seconds = time.perf_counter() - started
    tokens = sum(len(output.outputs[0].token_ids) for output in outputs)
    return {"captions_per_s": captions / seconds, "tokens": tokens, "seconds": seconds}


# ----------------------------------------------------------------------------- segmenter
def build_clip(folder: str) -> dict:
    """CLIP ViT-L/14-336 (vision and text towers, projections) with random weights and a BPE
    tokenizer over the COCO-Stuff class names and the prompt templates; returns seconds."""
    import torch

    from segmentation.datasets.class_names import ClassNames
    from segmentation.demo.tiny_clip import TinyCLIPSpec, build_model, build_tokenizer
    from segmentation.text.vocabulary import VILD_TEMPLATES

    started = time.perf_counter()
    names = [name for names in ClassNames.packaged("coco_stuff_171").synonyms for name in names]
    corpus = [*names, *(template.format(name) for template in VILD_TEMPLATES for name in names)]
    vision = paper_vision_config()
    spec = TinyCLIPSpec(
        image_size=vision["image_size"],
        projection_dim=vision["projection_dim"],
        vision=vision,
        text=dict(CLIP_L14_TEXT),
    )
    torch.manual_seed(0)
    build_model(spec, build_tokenizer(corpus, Path(folder))).save_pretrained(folder)
    return {"seconds": time.perf_counter() - started}


def _samples(classes: list[str], seed: int):
    """A training batch at the paper's crop: pictures, block labels over the 171 classes, and
    priors naming the pictured classes with attributes and relations."""
    import torch
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    from segmentation.transforms.priors import PriorGraph

    generator = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(TRAIN_BATCH):
        inputs.append(torch.randint(0, 256, (3, TRAIN_SIZE, TRAIN_SIZE), generator=generator))
        blocks = torch.randint(0, len(classes), (1, 8, 8), generator=generator)
        labels = blocks.repeat_interleave(TRAIN_SIZE // 8, 1).repeat_interleave(TRAIN_SIZE // 8, 2)
        sample = SegDataSample(gt_sem_seg=PixelData(data=labels.long()))
        shape = (TRAIN_SIZE, TRAIN_SIZE)
        sample.set_metainfo(dict(ori_shape=shape, img_shape=shape, pad_shape=shape))
        named = [classes[index] for index in blocks.unique()[:8].tolist()]
        sample.priors = PriorGraph(
            objects=tuple(named),
            attributes=tuple((index, "large") for index in range(len(named))),
            relations=tuple((index, "next to", index + 1) for index in range(len(named) - 1)),
        )
        samples.append(sample)
    return {"inputs": [image.to(torch.uint8) for image in inputs], "data_samples": samples}


def train_steps(config: str, clip: str, steps: int) -> dict:
    """Mean seconds per training iteration (after 2 warm-ups) and peak allocated GPU memory."""
    import torch
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import segmentation  # noqa: F401  (registers LLMFormer in MMSeg)
    from segmentation.datasets.class_names import ClassNames

    init_default_scope("mmseg")
    cfg = Config.fromfile(config)
    cfg.merge_from_dict({key: clip for key in CLIP_KEYS})
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).to(DEVICE).train()
    classes = ClassNames.packaged("coco_stuff_171")
    model.set_vocabulary(classes.names, classes.synonyms)
    optimizer = build_optim_wrapper(model, cfg.optim_wrapper)
    data = _samples(classes.names, seed=0)
    for _ in range(2):
        model.train_step(data, optimizer)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for _ in range(steps):
        model.train_step(data, optimizer)
    torch.cuda.synchronize()
    return {
        "step_s": (time.perf_counter() - started) / steps,
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
        "optimizer": type(optimizer).__name__,
    }


# ----------------------------------------------------------------------------- report
class Budget:
    """The time left to the whole check: each measurement gets its own limit or what is left."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def measure(self, name: str, limit: str, function, *args) -> dict:
        """A measurement's figures, or its error (the check goes on with the others)."""
        limit_s = min(TIME_LIMITS_S[limit], self.deadline - time.monotonic())
        if limit_s < MIN_LIMIT_S:
            return {"skipped": "the time budget is spent"}
        started = time.monotonic()
        try:
            figures = in_child(function, *args, limit_s=limit_s)
        except (RuntimeError, TimeoutError) as error:
            figures = {"error": str(error)}
        print(f"  {name}: {time.monotonic() - started:.0f} s", flush=True)
        return figures


def _cell(figures: dict, key: str, unit: str) -> str:
    if "error" in figures or "skipped" in figures:
        return figures.get("error") or figures["skipped"]
    return f"{figures[key]:.2f} {unit}"


def run_check(args: argparse.Namespace, work: Path) -> dict:
    """Build the checkpoints and take every measurement, within `args.budget_s` in all."""
    budget = Budget(args.budget_s)
    llava, clip = str(work / "llava-1.5-7b-random"), str(work / "clip-vit-l14-336-random")
    built = budget.measure("build LLaVA-7B", "build", build_llava, llava)
    captions = (args.captions, args.new_tokens)
    captioning = {
        "transformers": budget.measure(
            "transformers", "transformers", transformers_captions, llava, *captions, args.hf_batch
        ),
        "vllm": budget.measure("vllm", "vllm", vllm_captions, llava, *captions),
    }
    shutil.rmtree(llava, ignore_errors=True)
    budget.measure("build CLIP", "clip", build_clip, clip)
    training = {
        variant: budget.measure(
            f"train {variant}", "train", train_steps, str(config), clip, args.steps
        )
        for variant, config in CONFIGS.items()
    }
    return {"llava_gb": built, "captioning": captioning, "training": training}


def _report(results: dict, args: argparse.Namespace, gpu: str, seconds: float) -> None:
    captioning, training = results["captioning"], results["training"]
    print(f"\nGPU: {gpu}; {args.captions} captions of {args.new_tokens} tokens, LLaVA-1.5-7B shape")
    print(f"| {'what':<48} | {'figure':<40} |")
    print(f"|{'-' * 50}|{'-' * 42}|")
    for engine, figures in captioning.items():
        print(f"| {engine + ' captions/s':<48} | {_cell(figures, 'captions_per_s', '/s'):<40} |")
    for variant, figures in training.items():
        what = f"train iteration, {variant} (640 px, batch 2)"
        print(f"| {what:<48} | {_cell(figures, 'step_s', 's'):<40} |")
        print(f"| {'peak memory, ' + variant:<48} | {_cell(figures, 'peak_gib', 'GiB'):<40} |")

    def figure(figures: dict, key: str):
        return None if key not in figures else round(figures[key], 3)

    hf, vllm = captioning["transformers"], captioning["vllm"]
    speedup = None
    if "captions_per_s" in hf and "captions_per_s" in vllm:
        speedup = round(vllm["captions_per_s"] / hf["captions_per_s"], 2)
    print(
        json.dumps(
            {
                "gpu": gpu,
                "captions": args.captions,
                "new_tokens": args.new_tokens,
                "transformers_captions_per_s": figure(hf, "captions_per_s"),
                "vllm_captions_per_s": figure(vllm, "captions_per_s"),
                "vllm_speedup": speedup,
                "train_step_s": {v: figure(f, "step_s") for v, f in training.items()},
                "train_peak_gib": {v: figure(f, "peak_gib") for v, f in training.items()},
                "errors": {
                    name: figures.get("error") or figures.get("skipped")
                    for name, figures in [*captioning.items(), *training.items()]
                    if "error" in figures or "skipped" in figures
                },
                "llava_checkpoint_gb": figure(results["llava_gb"], "gb"),
                "seconds": round(seconds, 1),
            }
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captions", type=int, default=64, help="pictures captioned per engine")
    parser.add_argument("--new-tokens", type=int, default=128, help="tokens written per caption")
    parser.add_argument("--hf-batch", type=int, default=16, help="transformers' batch size")
    parser.add_argument("--steps", type=int, default=10, help="timed training iterations")
    parser.add_argument("--budget-s", type=float, default=450, help="time for all measurements")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    args = parser.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print(
            f"gpu_check: no CUDA GPU on this machine (torch {torch.__version__}); nothing measured"
        )
        return 0
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")])
    )
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="gpu_check_", dir=args.work))
    try:
        results = run_check(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _report(results, args, torch.cuda.get_device_name(0), time.perf_counter() - started)
    failed = [
        figures
        for figures in [*results["captioning"].values(), *results["training"].values()]
        if "error" in figures
    ]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
