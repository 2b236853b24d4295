"""Fixtures shared by the test folders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

TINY_DEMO_CONFIG = (
    Path(__file__).resolve().parents[1] / "segmentation/configs/llmformer_tiny_demo.py"
)


@pytest.fixture(scope="session")
def write_random_checkpoint() -> Callable[[Path], Path]:
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
