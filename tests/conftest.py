"""Fixtures shared by the test folders."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

TINY_DEMO_CONFIG = (
    Path(__file__).resolve().parents[1] / "segmentation/configs/llmformer_tiny_demo.py"
)


@pytest.fixture(scope="session")
def untrained_tiny_clip(tmp_path_factory) -> Path:
    """An untrained tiny CLIP folder (the demo's sizes, a tokenizer of a few words), which the
    demo config reads through $LLMFORMER_TINY_CLIP for the rest of the session."""
    import torch

    from segmentation.demo.tiny_clip import TinyCLIPSpec, build_model, build_tokenizer

    folder = tmp_path_factory.mktemp("tiny_clip")
    words = ["a photo of a small red hexagon and a striped circle.", "background"]
    torch.manual_seed(0)
    build_model(TinyCLIPSpec(), build_tokenizer(words, folder)).save_pretrained(folder)
    os.environ["LLMFORMER_TINY_CLIP"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def write_random_checkpoint(untrained_tiny_clip) -> Callable[[Path], Path]:
    """A writer of the tiny demo model with seed-0 random weights, in MMEngine's checkpoint
    format; it returns the path."""

    def write(path: Path) -> Path:
        import torch
        from mmengine.config import Config
        from mmengine.registry import init_default_scope
        from mmseg.registry import MODELS

        import segmentation  # noqa: F401  (registers LLMFormer in MMSeg)

        init_default_scope("mmseg")
        torch.manual_seed(0)
        model = MODELS.build(Config.fromfile(str(TINY_DEMO_CONFIG)).model)
        torch.save({"state_dict": model.state_dict(), "meta": {}}, path)
        return path

    return write
