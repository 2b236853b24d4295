"""`llmformer segment IMAGE...`: segment one's own pictures with a vocabulary or with none.

Without a vocabulary (`--no-vocab`) a captioner describes each picture, the caption parser turns
the description into priors, and the objects it names plus a background class are the picture's
vocabulary (the model's own vocabulary-free rule); background pixels are left untinted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    import numpy as np

    from segmentation.inference import CaptionPriors


def segment(
    images: Annotated[list[Path], typer.Argument(help="Pictures to segment (any common format)")],
    config: Annotated[Path, typer.Option(help="The model's MMSeg config")],
    checkpoint: Annotated[Path, typer.Option(help="Trained weights (an MMEngine checkpoint)")],
    out: Annotated[Path, typer.Option(help="Folder for overlays, label maps and JSON summaries")],
    vocab: Annotated[
        str | None,
        typer.Option(help='Comma-separated class names, e.g. "cat,dog,background"'),
    ] = None,
    vocab_file: Annotated[
        Path | None,
        typer.Option(help="One class per line (commas on a line separate its synonyms)"),
    ] = None,
    no_vocab: Annotated[
        bool,
        typer.Option(
            "--no-vocab",
            help="Each picture's vocabulary: the objects its caption names + background",
        ),
    ] = False,
    captioner: Annotated[
        str, typer.Option(help="With --no-vocab: file, transformers or vllm")
    ] = "file",
    captions: Annotated[
        Path | None, typer.Option(help="The file captioner's JSONL/Parquet of {id, caption}")
    ] = None,
    captioner_model: Annotated[
        str | None, typer.Option(help="The transformers/vLLM captioner's model path")
    ] = None,
    image_root: Annotated[
        Path | None,
        typer.Option(help="Caption ids are paths relative to this folder (default: file names)"),
    ] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda[:N]")] = "cpu",
    max_side: Annotated[
        int | None,
        typer.Option(
            help="Cap on the longest side fed to the model (default: none; pictures are fed "
            "at the config's evaluation scale, as `llmformer eval` feeds its images)"
        ),
    ] = None,
) -> None:
    """Write an overlay with a legend, a label map and a JSON of class areas for each picture."""
    from segmentation.inference import Segmenter, segment_files

    vocabulary = _vocabulary(vocab, vocab_file, no_vocab)
    priors_source = (
        _caption_priors_source(captioner, captions, captioner_model, device, image_root)
        if no_vocab
        else None
    )
    try:
        segmenter = Segmenter(config, checkpoint, device=device, max_side=max_side)
    except (FileNotFoundError, SyntaxError, KeyError) as error:
        _fail(str(error))
    outcomes = segment_files(segmenter, images, out, vocabulary, priors_source)
    failed = sum(outcome.error is not None for outcome in outcomes)
    typer.echo(f"segmented {len(outcomes) - failed} of {len(outcomes)} pictures into {out}")
    if failed:
        raise typer.Exit(1)


def _vocabulary(vocab: str | None, vocab_file: Path | None, no_vocab: bool) -> list[str] | None:
    """The class names the options give, or None for --no-vocab; exactly one option is allowed."""
    chosen = sum([vocab is not None, vocab_file is not None, no_vocab])
    if chosen != 1:
        _fail("give exactly one of --vocab, --vocab-file and --no-vocab")
    if vocab is not None:
        names = [name.strip() for name in vocab.split(",") if name.strip()]
    elif vocab_file is not None:
        names = _read_vocab_file(vocab_file)
    else:
        return None
    if not names:
        _fail("the vocabulary is empty")
    return names


def _read_vocab_file(path: Path) -> list[str]:
    if not path.is_file():
        _fail(f"vocabulary file {path} does not exist")
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip()]


@dataclass
class CaptionPriorsSource:
    """Describes a picture with a captioner and parses the description into priors."""

    captioner: Any
    parser: Any
    image_root: Path | None

    def __call__(self, path: Path, rgb: np.ndarray) -> CaptionPriors:
        from PIL import Image

        from prior_extraction.captioners import CaptionFailure, CaptionRequest
        from segmentation.inference import CaptionPriors, PriorsUnavailable

        request = CaptionRequest(self._image_id(path), Image.fromarray(rgb))
        (caption,) = self.captioner.caption([request])
        if isinstance(caption, CaptionFailure):
            raise PriorsUnavailable(f"{caption.error_class}: {caption.message}")
        return CaptionPriors(caption, self.parser.parse(caption).to_dict())

    def _image_id(self, path: Path) -> str:
        """The caption's id: the path under `image_root`, or the file name without one."""
        from segmentation.inference import PriorsUnavailable

        if self.image_root is None:
            return path.name
        resolved, root = path.resolve(), self.image_root.resolve()
        if not resolved.is_relative_to(root):
            raise PriorsUnavailable(f"not under --image-root {self.image_root}")
        return resolved.relative_to(root).as_posix()


def _caption_priors_source(
    name: str, captions: Path | None, model: str | None, device: str, image_root: Path | None
) -> CaptionPriorsSource:
    from prior_extraction.captioners import CaptionerError, CaptionerOptions, build_captioner
    from prior_extraction.captioners.prompts import PromptError
    from prior_extraction.parsing import CaptionParser

    options = CaptionerOptions(model=model, captions=captions, device=device)
    try:
        captioner = build_captioner(name, options)
    except (CaptionerError, PromptError) as error:
        _fail(str(error))
    return CaptionPriorsSource(captioner, CaptionParser(), image_root)


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)
