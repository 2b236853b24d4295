"""Tiny prepared datasets and label maps written on the fly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mmengine.registry import init_default_scope
from PIL import Image


@pytest.fixture(autouse=True)
def mmseg_scope() -> None:
    """Pipelines inside datasets resolve transform names in MMSeg's scope, as the Runner sets."""
    init_default_scope("mmseg")


def _write_image(path: Path, height: int = 6, width: int = 8, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _write_labels(path: Path, labels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(labels).save(path)
    return path


@pytest.fixture
def write_image():
    """Write a random RGB image (height, width, seed) and return its path."""
    return _write_image


@pytest.fixture
def write_labels():
    """Write a label array as PNG (8- or 16-bit by dtype) and return its path."""
    return _write_labels


@pytest.fixture
def prepared_root(tmp_path: Path) -> Path:
    """A prepared ADE20K-847-like root: two val images, 16-bit labels with ids above 255."""
    root = tmp_path / "ade20k_847"
    for index, name in enumerate(("ADE_val_00000001", "ADE_val_00000002")):
        _write_image(root / "images" / "val" / f"{name}.jpg", seed=index)
        labels = np.full((6, 8), 300 + index, dtype=np.uint16)
        labels[0, 0] = 65535
        _write_labels(root / "labels" / "val" / f"{name}.png", labels)
    return root
