"""`llmformer segment IMAGE...`: segment one's own pictures with a vocabulary or with none.

Without a vocabulary (`--no-vocab`) a captioner describes each picture, the caption parser turns
the description into priors, and the objects it names plus a background class are the picture's
vocabulary (the model's own vocabulary-free rule); background pixels are left untinted.
Pictures are read by stage 1's validated loader (EXIF, every mode incl. 16-bit and palette, first
frame, pixel cap). Every option is checked before the model loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flows.cli.checks import (
    fail,
    require_at_least,
    require_device,
    require_no_clobbered_inputs,
    require_output_folder,
)

MIN_MAX_SIDE = 32
"""The smallest --max-side: below it the model's feature maps vanish."""

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
        str,
        typer.Option(
            help="file, transformers or vllm: describes each picture for its priors (always "
            "with --no-vocab; with a vocabulary when --captions or --captioner-model is given)"
        ),
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
    from segmentation.inference import Segmenter, output_paths, segment_files

    _check_model_files(config, checkpoint)
    if max_side is not None:
        require_at_least("--max-side", max_side, MIN_MAX_SIDE)
    require_device("--device", device)
    require_output_folder("--out", out)
    require_no_clobbered_inputs(output_paths(out, images), images)
    vocabulary = _vocabulary(vocab, vocab_file, no_vocab)
    describe = no_vocab or captions is not None or captioner_model is not None
    priors_source = (
        _caption_priors_source(captioner, captions, captioner_model, device, image_root)
        if describe
        else None
    )
    try:
        segmenter = Segmenter(config, checkpoint, device=device, max_side=max_side)
    except (FileNotFoundError, SyntaxError, KeyError) as error:
        fail(str(error))
    outcomes = segment_files(segmenter, images, out, vocabulary, priors_source, load=load_picture)
    failed = sum(outcome.error is not None for outcome in outcomes)
    typer.echo(f"segmented {len(outcomes) - failed} of {len(outcomes)} pictures into {out}")
    if failed:
        raise typer.Exit(1)


def load_picture(path: Path) -> np.ndarray:
    """A picture as an upright RGB array, read by stage 1's validated loader."""
    import numpy as np

    from prior_extraction.images import InvalidImageError, load_image
    from segmentation.inference import ImageLoadError

    try:
        return np.asarray(load_image(path).image)
    except InvalidImageError as error:
        raise ImageLoadError(
            f"cannot read {path} as a picture ({error.error_class}: {error.message})"
        ) from None


def _check_model_files(config: Path, checkpoint: Path) -> None:
    """The config exists and the checkpoint is a torch.save file, before anything is built."""
    from segmentation.evaluation.run import check_checkpoint

    if not config.is_file():
        fail(f"--config {config} does not exist")
    if not checkpoint.is_file():
        fail(f"checkpoint {checkpoint} does not exist")
    try:
        check_checkpoint(checkpoint)
    except ValueError as error:
        fail(str(error))


def _vocabulary(vocab: str | None, vocab_file: Path | None, no_vocab: bool) -> list[str] | None:
    """The class names the options give, or None for --no-vocab; exactly one option is allowed."""
    chosen = sum([vocab is not None, vocab_file is not None, no_vocab])
    if chosen != 1:
        fail("give exactly one of --vocab, --vocab-file and --no-vocab")
    if vocab is not None:
        names = [name.strip() for name in vocab.split(",") if name.strip()]
    elif vocab_file is not None:
        names = _read_vocab_file(vocab_file)
    else:
        return None
    if not names:
        fail("the vocabulary is empty")
    return _merge_repeated(names)


def _merge_repeated(names: list[str]) -> list[str]:
    """Each class once (names equal but for case count as one), with a warning naming the rest:
    a repeated class would split its area and show twice in the legend."""
    merged: dict[str, str] = {}
    repeated: list[str] = []
    for name in names:
        if name.casefold() in merged:
            repeated.append(name)
        else:
            merged[name.casefold()] = name
    if repeated:
        typer.echo(
            f"warning: merged {len(repeated)} repeated class names: {', '.join(repeated)}", err=True
        )
    return list(merged.values())


def _read_vocab_file(path: Path) -> list[str]:
    if not path.is_file():
        fail(f"vocabulary file {path} does not exist")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        fail(f"vocabulary file {path} is not UTF-8 text ({error.reason} at byte {error.start})")
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
        fail(str(error))
    return CaptionPriorsSource(captioner, CaptionParser(), image_root)
