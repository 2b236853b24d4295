"""`llmformer data prepare|demo`: benchmark releases into the datasets' layout; the demo set."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

PREPARE_NAMES = "a150, a847, coco171, voc (VOC-20 and VOC-21), pc59, pc459"


def _fail(error: Exception) -> None:
    print(f"error: {error}", file=sys.stderr)
    raise typer.Exit(2) from error


def prepare(
    name: Annotated[str, typer.Argument(help=f"Benchmark: {PREPARE_NAMES}.")],
    src: Annotated[Path, typer.Option(help="Official archive, folder of archives or extracted.")],
    out: Annotated[Path, typer.Option(help="Folder the dataset will read (its data_root).")],
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Convert an official benchmark release into the layout the datasets read, checking every
    label map against its image and the class count."""
    from segmentation.datasets.class_names import ClassNamesError
    from segmentation.datasets.label_loader import LabelMapError
    from segmentation.datasets.prepare import PrepareError, prepare_dataset

    try:
        report = prepare_dataset(name, src, out, progress=progress)
    except (PrepareError, LabelMapError, ClassNamesError, OSError) as error:
        _fail(error)
    counts = ", ".join(f"{count} {split}" for split, count in report.images.items())
    Console().print(f"{name}: {counts} images, {report.num_classes} classes -> {report.out}")


def demo(
    out: Annotated[Path, typer.Option(help="Folder to write the demo set into.")],
    seed: Annotated[int, typer.Option(help="Seed: the same seed writes the same set.")] = 0,
    num_train: Annotated[int, typer.Option(min=1, help="Training images.")] = 400,
    num_val: Annotated[int, typer.Option(min=1, help="Validation images.")] = 100,
    image_size: Annotated[int, typer.Option(min=32, help="Side of the square images.")] = 64,
    captions: Annotated[
        str,
        typer.Option(
            help="Whose mistakes the captions make: demo (misses 12%, never names an absent "
            "shape), llava-like (a real VLM's recall, wrong names and absent objects) or empty "
            "(a failed captioner: names nothing)."
        ),
    ] = "demo",
    progress: Annotated[bool, typer.Option(help="Show the progress bar.")] = True,
) -> None:
    """Generate the synthetic demo set: shape scenes, masks, and LLM-style captions (captions.jsonl,
    for the `file` captioner). The captions are written by rules, not by a language model."""
    from segmentation.demo import DemoSpec, write_demo

    try:
        spec = DemoSpec(seed, num_train, num_val, image_size, captions)
        captions_path = write_demo(spec, out, progress=progress)
    except (ValueError, OSError) as error:
        _fail(error)
    Console().print(
        f"demo: {num_train} train + {num_val} val images in {out}; captions: {captions_path}"
    )
