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


def _nearest_classes(names: list[str], classes: list[str]) -> set[int]:
    """Indices of the dataset classes whose names embed closest to `names` (MiniLM, offline)."""
    from segmentation.text import build_text_encoder

    encoder = build_text_encoder({"type": "MiniLMTextEncoder"})
    similarity = encoder(names).cpu().numpy() @ encoder(classes).cpu().numpy().T
    return set(similarity.argmax(1).tolist())


@pytest.mark.slow
def test_eval_no_vocab_labels_each_image_with_its_prior_objects(tmp_path) -> None:
    from segmentation.demo import DemoSpec, write_demo
    from segmentation.models import vocabulary_free_classes
    from storage import PriorStore

    data_root, store = tmp_path / "datasets", tmp_path / "store"
    write_demo(DemoSpec(seed=2, num_train=1, num_val=3), data_root / "demo", progress=False)
    prior_set_id = _extract_priors(data_root / "demo", store)
    options = [f"prior_store_root={store}", f"prior_set_id={prior_set_id}"]
    _random_checkpoint(tmp_path / "random.pth", options)
    args = ["eval", str(CONFIG), str(tmp_path / "random.pth"), "--datasets", "demo", "--no-vocab"]
    args += ["--data-root", str(data_root), "--work-dir", str(tmp_path / "eval")]
    args += ["--store", str(store), "--save-predictions", "--run", "free"]
    args += [item for option in options for item in ("--cfg-options", option)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "free (vocabulary-free)" in result.output
    rows = list(csv.DictReader((tmp_path / "eval/eval.csv").open()))
    assert [(row["dataset"], row["images"]) for row in rows] == [("demo", "3")]
    scores = [float(rows[0][key]) for key in ("mIoU", "Open-mIoU", "aAcc", "mAcc")]
    assert all(0 <= score <= 100 for score in scores), scores
    assert "| demo | 3 | " + rows[0]["mIoU"] in (tmp_path / "eval/eval.md").read_text()
    stored = (
        PriorStore(store)
        .connect()
        .sql(
            "SELECT run, dataset, miou, open_miou, prior_set_id, vocabulary_free FROM eval_results"
        )
    )
    assert stored.fetchall() == [("free", "demo", scores[0], scores[1], prior_set_id, True)]
    classes = (data_root / "demo/classes.txt").read_text().split()
    image_ids = [f"val/0000{index}.png" for index in range(3)]
    priors = PriorStore(store).read_priors(prior_set_id, image_ids)
    for image_id in image_ids:
        names = vocabulary_free_classes(obj["name"] for obj in priors[image_id].objects)
        assert len(names) < len(classes)
        with Image.open(tmp_path / "eval/demo/predictions" / image_id) as saved:
            predicted = set(np.unique(np.asarray(saved)).tolist())
        assert predicted <= _nearest_classes(names, classes), (image_id, names, predicted)
