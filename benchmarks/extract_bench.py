"""End-to-end extraction speed with the `file` captioner: validate + parse + store, in images/s.

    .venv/bin/python benchmarks/extract_bench.py --images 20000
    .venv/bin/python benchmarks/extract_bench.py --images 2000 --captioner vllm \
        --model llava-hf/llava-1.5-7b-hf        # on a GPU machine with the vllm extra

Writes N small PNGs and one LLM-style caption per image to a temporary folder, runs the same
`run_extraction` the CLI runs into a fresh store, and compares with parsing alone (the stage
the loads and writes are overlapped with). With a model captioner the images are captioned for
real (the written captions are then only used for the parse-only figure). Last line: one JSON
object of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw

from prior_extraction.captioners import (
    CaptionerOptions,
    build_captioner,
    default_batch_size,
)
from prior_extraction.parsing import CaptionParser
from prior_extraction.run import ExtractionConfig, run_extraction
from prior_extraction.sources import FolderSource
from storage import PriorStore

COLORS = ("red", "blue", "green", "yellow", "white", "black", "brown", "gray")
SIZES = ("small", "large", "tiny", "big")
OBJECTS = ("dog", "cat", "car", "tree", "table", "chair", "person", "bicycle", "teddy bear", "lamp")
RELATIONS = ("next to", "on top of", "under", "behind", "in front of", "near")
SCENES = ("in a park", "in a kitchen", "on a street", "in a living room", "on a beach")


def llm_style_caption(rng: random.Random) -> str:
    """A two- or three-sentence description in the shape LLaVA writes them."""
    first, second, third = rng.sample(OBJECTS, 3)
    sentences = [
        f"The image shows a {rng.choice(SIZES)} {rng.choice(COLORS)} {first} "
        f"{rng.choice(RELATIONS)} a {rng.choice(COLORS)} {second} {rng.choice(SCENES)}.",
        f"The {second} is {rng.choice(COLORS)} and {rng.choice(SIZES)}.",
    ]
    if rng.random() < 0.5:
        sentences.append(f"Two {third}s are sitting {rng.choice(RELATIONS)} the {first}.")
    return " ".join(sentences)


def write_images_and_captions(folder: Path, count: int, seed: int) -> Path:
    """`count` 64x48 PNG scenes under `folder` and the captions JSONL next to it."""
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    captions = folder.parent / "captions.jsonl"
    with captions.open("w") as lines:
        for index in range(count):
            image = Image.new("RGB", (64, 48), tuple(rng.randrange(256) for _ in range(3)))
            box = sorted(rng.sample(range(64), 2)) + sorted(rng.sample(range(48), 2))
            ImageDraw.Draw(image).rectangle(
                (box[0], box[2], box[1], box[3]), fill=rng.choice(COLORS)
            )
            image_id = f"{index // 1000:03d}/{index:06d}.png"
            (folder / image_id).parent.mkdir(exist_ok=True)
            image.save(folder / image_id)
            lines.write(json.dumps({"id": image_id, "caption": llm_style_caption(rng)}) + "\n")
    return captions


def parse_only_rate(captions: Path, parser: CaptionParser) -> float:
    """Captions per second through the parser alone, on the same captions."""
    texts = [json.loads(line)["caption"] for line in captions.read_text().splitlines()]
    started = time.perf_counter()
    parser.parse_many(texts)
    return len(texts) / (time.perf_counter() - started)


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--images", type=int, default=20_000, help="how many images")
    options.add_argument("--shard-size", type=int, default=512, help="images per stored shard")
    options.add_argument("--load-workers", type=int, default=4, help="image decoding threads")
    options.add_argument("--parse-processes", type=int, default=1, help="parser processes")
    options.add_argument("--captioner", default="file", help="file | transformers | vllm")
    options.add_argument("--model", help="checkpoint for a model captioner")
    options.add_argument("--max-new-tokens", type=int, default=128)
    options.add_argument("--seed", type=int, default=0)
    args = options.parse_args()

    with tempfile.TemporaryDirectory(prefix="extract-bench-") as scratch:
        root = Path(scratch)
        started = time.perf_counter()
        captions = write_images_and_captions(root / "images", args.images, args.seed)
        prepare_s = time.perf_counter() - started
        parser = CaptionParser(n_process=args.parse_processes)
        captioner = build_captioner(
            args.captioner,
            CaptionerOptions(
                model=args.model, captions=captions, max_new_tokens=args.max_new_tokens
            ),
        )
        config = ExtractionConfig(
            batch_size=default_batch_size(args.captioner, args.shard_size),
            shard_size=args.shard_size,
            load_workers=args.load_workers,
            show_progress=False,
        )
        summary = run_extraction(
            FolderSource(root / "images"),
            captioner,
            parser,
            PriorStore(root / "store"),
            config,
        )
        parse_rate = parse_only_rate(captions, parser)

    figures = {
        "images": args.images,
        "captioner": args.captioner,
        "images_per_s": round(summary.images_per_s, 1),
        "seconds": round(summary.seconds, 2),
        "parse_only_captions_per_s": round(parse_rate, 1),
        "failed": summary.failed,
        "shard_size": args.shard_size,
        "parse_processes": args.parse_processes,
        "cpus": os.cpu_count(),
    }
    print(f"prepared {args.images} images + captions in {prepare_s:.1f} s")
    print(f"{'stage':<34}{'images/s':>12}")
    label = f"end to end ({args.captioner} captioner)"
    print(f"{label:<34}{figures['images_per_s']:>12.1f}")
    print(f"{'parse only':<34}{figures['parse_only_captions_per_s']:>12.1f}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
