"""`llmformer eval` end to end: a tiny LLMFormer (random weights) on a small demo set; the table's
mIoU must equal a plain numpy mIoU over the saved predictions and the label files."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from flows.cli import app

CONFIG = Path("segmentation/configs/llmformer_tiny_demo.py")


def _extract_priors(data_root: Path, store: Path) -> str:
    from prior_extraction.captioners.file import FileCaptioner
    from prior_extraction.parsing import CaptionParser
    from prior_extraction.run import ExtractionConfig, run_extraction
    from prior_extraction.sources import build_source
    from storage import PriorStore

    source = build_source(dataset="demo", data_root=data_root)
    captioner = FileCaptioner(data_root / "captions.jsonl")
    config = ExtractionConfig(show_progress=False)
    return run_extraction(
        source, captioner, CaptionParser(), PriorStore(store), config
    ).prior_set_id


def _random_checkpoint(path: Path, cfg_options: list[str]) -> None:
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from segmentation.training import TrainOptions, load_training_config

    cfg = load_training_config(TrainOptions(CONFIG, path.parent, cfg_options=cfg_options))
    init_default_scope("mmseg")
    torch.manual_seed(0)
    torch.save({"state_dict": MODELS.build(cfg.model).state_dict(), "meta": {}}, path)


def _numpy_miou(predictions: list[np.ndarray], labels: list[np.ndarray], num_classes: int):
    ious = []
    for c in range(num_classes):
        inter = sum(
            int(((p == c) & (g == c)).sum()) for p, g in zip(predictions, labels, strict=True)
        )
        union = sum(
            int((((p == c) | (g == c)) & (g != 255)).sum())
            for p, g in zip(predictions, labels, strict=True)
        )
        if union:
            ious.append(inter / union)
    return round(100 * float(np.mean(ious)), 2)


@pytest.mark.slow
def test_eval_table_matches_numpy_miou_on_saved_predictions(tmp_path) -> None:
    from segmentation.demo import DemoSpec, write_demo

    data_root = tmp_path / "datasets"
    write_demo(DemoSpec(seed=1, num_train=1, num_val=3), data_root / "demo", progress=False)
    options = [f"prior_store_root={tmp_path / 'store'}"]
    options.append(f"prior_set_id={_extract_priors(data_root / 'demo', tmp_path / 'store')}")
    _random_checkpoint(tmp_path / "random.pth", options)
    args = ["eval", str(CONFIG), str(tmp_path / "random.pth"), "--datasets", "demo"]
    args += ["--data-root", str(data_root), "--work-dir", str(tmp_path / "eval")]
    args += ["--store", str(tmp_path / "store"), "--save-predictions", "--run", "random"]
    args += [item for option in options for item in ("--cfg-options", option)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    row = next(csv.DictReader((tmp_path / "eval/eval.csv").open()))
    predictions, labels = [], []
    for name in ("00000.png", "00001.png", "00002.png"):
        predictions.append(np.asarray(Image.open(tmp_path / "eval/demo/predictions/val" / name)))
        labels.append(np.asarray(Image.open(data_root / "demo/labels/val" / name)))
    assert row["dataset"] == "demo" and row["images"] == "3"
    assert float(row["mIoU"]) == _numpy_miou(predictions, labels, 9)
    from storage import PriorStore

    stored = (
        PriorStore(tmp_path / "store").connect().sql("SELECT run, dataset, miou FROM eval_results")
    )
    assert stored.fetchall() == [("random", "demo", float(row["mIoU"]))]
