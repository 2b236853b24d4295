"""Segment users' own pictures with a trained LLMFormer: any vocabulary, or the image's own priors.

`Segmenter` loads a config and checkpoint once (MMEngine/MMSeg APIs) and segments one picture per
call. Pictures are read by the caller's `ImageLoader` (the CLI passes stage 1's validated
loader, so the whole project reads pictures one way) and resized to the evaluation scale (the
config's test pipeline's resize steps, as `llmformer eval` sees its images); the class scores are
upsampled to the picture's original size and the label map is their argmax there, as in
evaluation.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from segmentation.text.vocabulary import vocabulary_free_classes
from segmentation.visualization import label_map_image, overlay_image

EVAL_RESIZE_TRANSFORMS = ("Resize", "ResizeShortestEdge", "ResizeToMultiple")
"""The test-pipeline steps that set the scale a model is evaluated at (MMCV's and MMSeg's)."""


OUTPUT_SUFFIXES = ("_overlay.png", "_labels.png", ".json")
"""The files `segment_files` writes per picture: `<stem>` followed by each suffix."""


class ImageLoadError(ValueError):
    """A file that cannot be read as a picture (an `ImageLoader` raises it)."""


ImageLoader = Callable[[Path], np.ndarray]
"""Reads one picture as an upright RGB uint8 array; raises ImageLoadError when it cannot."""


class VocabularyError(ValueError):
    """No usable vocabulary: an empty list, or priors that name no object."""


class PriorsUnavailable(ValueError):
    """The captioner could not describe a picture, so it has no priors."""


@dataclass(frozen=True)
class CaptionPriors:
    """A picture's caption and the priors parsed from it (the JSON contract's dict)."""

    caption: str
    priors: Mapping[str, Any]


PriorsSource = Callable[[Path, np.ndarray], CaptionPriors]
"""Describes one picture (its path and RGB pixels); raises PriorsUnavailable when it cannot."""


@dataclass(frozen=True)
class ImageOutcome:
    """What became of one input picture: the files written, or why it was skipped."""

    path: Path
    outputs: tuple[Path, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class ClassArea:
    """One vocabulary class: its label id, name and share of the picture's pixels."""

    id: int
    name: str
    area: float


@dataclass(frozen=True)
class SegmentationResult:
    """A picture's label map (original size, `vocabulary[i]` names label i) and class shares."""

    label_map: np.ndarray
    vocabulary: tuple[str, ...]

    @property
    def classes(self) -> list[ClassArea]:
        """Every vocabulary class with its share of the picture; the shares sum to 1."""
        counts = np.bincount(self.label_map.ravel(), minlength=len(self.vocabulary))
        shares = counts / max(self.label_map.size, 1)
        return [
            ClassArea(index, name, float(shares[index]))
            for index, name in enumerate(self.vocabulary)
        ]

    def to_dict(self) -> dict[str, Any]:
        """The JSON summary: picture size, vocabulary and each class's area."""
        height, width = self.label_map.shape
        return {
            "width": width,
            "height": height,
            "vocabulary": list(self.vocabulary),
            "classes": [vars(entry) for entry in self.classes],
        }


def evaluation_resize_steps(cfg) -> list[dict]:
    """The resize steps of the config's test pipeline, in order (none: images keep their size)."""
    pipeline = cfg.get("test_dataloader", {}).get("dataset", {}).get("pipeline", [])
    return [dict(step) for step in pipeline if step.get("type") in EVAL_RESIZE_TRANSFORMS]


def resize_like_evaluation(rgb: np.ndarray, steps: Sequence[dict]) -> np.ndarray:
    """Apply the test pipeline's resize steps (built from MMSeg's transform registry)."""
    from mmseg.registry import TRANSFORMS

    results = {"img": rgb, "img_shape": rgb.shape[:2], "ori_shape": rgb.shape[:2]}
    for step in steps:
        results = TRANSFORMS.build(step)(results)
    return results["img"]


def resize_for_model(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """Shrink so the longest side is at most `max_side` (aspect kept); never enlarge."""
    height, width = rgb.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return rgb
    size = (max(round(width * scale), 1), max(round(height * scale), 1))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))


def vocabulary_from_priors(priors: Mapping[str, Any]) -> list[str]:
    """Vocabulary-free mode: a parsed caption's distinct object names, then the background class
    (the model's own vocabulary-free rule, so `segment --no-vocab` and evaluation agree)."""
    vocabulary = vocabulary_free_classes(str(obj["name"]) for obj in priors.get("objects", []))
    if not vocabulary:
        raise VocabularyError("the caption names no object to segment")
    return vocabulary


class Segmenter:
    """A trained LLMFormer loaded once; `segment` labels one RGB picture per call.

    Pictures are fed at the config's evaluation scale; `max_side`, if given, further caps the
    longest side fed to the model (to bound memory on large pictures).
    """

    def __init__(
        self,
        config: Path,
        checkpoint: Path,
        device: str = "cpu",
        max_side: int | None = None,
    ) -> None:
        cfg = _load_config(config)
        self.model = _load_model(cfg, checkpoint, device)
        self.resize_steps = evaluation_resize_steps(cfg)
        self.device = device
        self.max_side = max_side

    def model_input(self, rgb: np.ndarray) -> np.ndarray:
        """The picture as the model sees it: at the evaluation scale, capped at `max_side`."""
        resized = resize_like_evaluation(rgb, self.resize_steps)
        return resized if self.max_side is None else resize_for_model(resized, self.max_side)

    def segment(
        self,
        rgb: np.ndarray,
        vocabulary: Sequence[str],
        priors: Mapping[str, Any] | None = None,
    ) -> SegmentationResult:
        """Label each pixel with one of `vocabulary` (guided by `priors`, the JSON contract)."""
        import torch

        names = [name.strip() for name in vocabulary if name.strip()]
        if not names:
            raise VocabularyError("the vocabulary is empty")
        inputs = _model_inputs(self.model_input(rgb), priors, original_shape=rgb.shape[:2])
        data = self.model.data_preprocessor(inputs, False)
        with torch.no_grad():
            (sample,) = self.model.predict(data["inputs"], data["data_samples"], names)
        # MMSeg's post-processing upsampled the scores to `ori_shape` and took the argmax there
        labels = sample.pred_sem_seg.data[0].cpu().numpy().astype(np.uint16)
        return SegmentationResult(labels, tuple(sample.metainfo["vocabulary"]))


def segment_files(
    segmenter: Segmenter,
    paths: Sequence[Path],
    out_dir: Path,
    vocabulary: Sequence[str] | None,
    priors_source: PriorsSource | None = None,
    progress: bool = True,
    *,
    load: ImageLoader,
) -> list[ImageOutcome]:
    """Segment each picture (read by `load`) and write its overlay, label map and JSON summary
    under `out_dir`.

    Without `vocabulary` each picture's vocabulary is the objects `priors_source` finds in it. A
    picture that fails is reported on stderr in one line and skipped; the others go on.
    """
    from tqdm import tqdm

    if vocabulary is None and priors_source is None:
        raise VocabularyError("give a vocabulary or a priors source to take it from")
    out_dir.mkdir(parents=True, exist_ok=True)
    outcomes = []
    named = zip(paths, _output_stems(paths), strict=True)
    for path, stem in tqdm(
        named, desc="segment", unit="image", total=len(paths), disable=not progress
    ):
        try:
            rgb = load(path)
            outputs = _segment_file(segmenter, path, rgb, out_dir / stem, vocabulary, priors_source)
            outcomes.append(ImageOutcome(path, outputs))
        except (ImageLoadError, VocabularyError, PriorsUnavailable) as error:
            tqdm.write(f"skipped {path}: {error}", file=sys.stderr)
            outcomes.append(ImageOutcome(path, error=str(error)))
    return outcomes


def _segment_file(
    segmenter: Segmenter,
    path: Path,
    rgb: np.ndarray,
    out_stem: Path,
    vocabulary: Sequence[str] | None,
    priors_source: PriorsSource | None,
) -> tuple[Path, ...]:
    described = priors_source(path, rgb) if priors_source is not None else None
    priors = described.priors if described is not None else None
    names = vocabulary if vocabulary is not None else vocabulary_from_priors(priors or {})
    result = segmenter.segment(rgb, names, priors)
    summary = {"image": str(path), **result.to_dict()}
    if described is not None:
        summary["caption"] = described.caption
    return _write_outputs(out_stem, rgb, result, summary)


def _write_outputs(
    out_stem: Path, rgb: np.ndarray, result: SegmentationResult, summary: dict[str, Any]
) -> tuple[Path, ...]:
    """`<stem>_overlay.png`, `<stem>_labels.png` and `<stem>.json`."""
    overlay, labels, summary_path = (
        out_stem.with_name(out_stem.name + suffix) for suffix in OUTPUT_SUFFIXES
    )
    overlay_image(rgb, result.label_map, result.classes).save(overlay)
    label_map_image(result.label_map).save(labels)
    summary_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return overlay, labels, summary_path


def output_paths(out_dir: Path, paths: Sequence[Path]) -> list[Path]:
    """Every file `segment_files` may write under `out_dir` for `paths`."""
    stems = _output_stems(paths)
    return [out_dir / f"{stem}{suffix}" for stem in stems for suffix in OUTPUT_SUFFIXES]


def _output_stems(paths: Sequence[Path]) -> list[str]:
    """Each picture's output name: its file stem, numbered when two pictures share one."""
    stems: list[str] = []
    for path in paths:
        stem, number = path.stem, 1
        while stem in stems:
            number += 1
            stem = f"{path.stem}-{number}"
        stems.append(stem)
    return stems


def _load_config(config: Path):
    """The MMEngine config, with its default scope (MMSeg's registries) made current."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    cfg = Config.fromfile(str(config))
    init_default_scope(cfg.get("default_scope", "mmseg"))
    return cfg


def _load_model(cfg, checkpoint: Path, device: str):
    """Build the config's model (registering the plugin) and load the checkpoint's weights."""
    from mmengine.runner import load_checkpoint
    from mmseg.registry import MODELS

    import segmentation  # noqa: F401  (registers LLMFormer's parts in MMSeg)

    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"checkpoint {checkpoint} does not exist")
    model = MODELS.build(cfg.model)
    load_checkpoint(model, str(checkpoint), map_location="cpu", logger="silent")
    return model.to(device).eval()


def _model_inputs(
    rgb: np.ndarray, priors: Mapping[str, Any] | None, original_shape: tuple[int, int]
) -> dict[str, list]:
    """One-picture batch as MMSeg's data preprocessor expects it: a BGR CHW tensor + a sample
    whose `ori_shape` is the picture's own size (where post-processing puts the scores)."""
    import torch
    from mmseg.structures import SegDataSample

    from segmentation.transforms.priors import PriorGraph

    bgr = np.ascontiguousarray(rgb[:, :, ::-1].transpose(2, 0, 1))
    sample = SegDataSample(metainfo=dict(ori_shape=original_shape, img_shape=rgb.shape[:2]))
    sample.priors = PriorGraph.from_record(priors) if priors else PriorGraph.EMPTY
    return dict(inputs=[torch.from_numpy(bgr)], data_samples=[sample])
