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


def _numpy_miou(predictions: list[np.ndarray], labels: list[np.ndarray], ignore: int) -> float:
    """Plain per-class loop over the label files' own values (8-bit ignore 255, 16-bit 65535);
    a class in neither predictions nor labels has no IoU."""
    present = np.unique(np.concatenate([a.ravel() for a in [*predictions, *labels]]))
    ious = []
    for c in present[present != ignore]:
        inter = union = 0
        for pred, gt in zip(predictions, labels, strict=True):
            inter += int(((pred == c) & (gt == c)).sum())
            union += int((((pred == c) | (gt == c)) & (gt != ignore)).sum())
        if union:
            ious.append(inter / union)
    return round(100 * float(np.mean(ious)), 2)


def _write_ade847_root(root: Path) -> None:
    """Two prepared ADE20K-847 val images whose 16-bit labels hold ids above 255 and ignore."""
    rng = np.random.default_rng(0)
    for index in range(2):
        image_id = f"ADE_val_0000000{index + 1}"
        (root / "images/val").mkdir(parents=True, exist_ok=True)
        (root / "labels/val").mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "images/val" / f"{image_id}.jpg")
        labels = rng.choice(np.array([0, 254, 255, 256, 300, 846, 65535], np.uint16), (48, 64))
        Image.fromarray(labels).save(root / "labels/val" / f"{image_id}.png")


def _saved_and_true(prediction_dir: Path, label_dir: Path, names: list[str]) -> tuple[list, list]:
    predictions, labels = [], []
    for name in names:
        with Image.open(prediction_dir / name) as saved, Image.open(label_dir / name) as truth:
            predictions.append(np.asarray(saved))
            labels.append(np.asarray(truth))
    return predictions, labels


def _relabel_left_halves(prediction_dir: Path, label_dir: Path, names: list[str]) -> None:
    """Copy each saved prediction into the left half of its label map (same bit depth), so a
    random model that predicts one class everywhere scores neither 0 nor 100."""
    predictions, label_maps = _saved_and_true(prediction_dir, label_dir, names)
    for prediction, labels, name in zip(predictions, label_maps, names, strict=True):
        labels = labels.copy()
        half = labels.shape[1] // 2
        labels[:, :half] = prediction[:, :half]
        Image.fromarray(labels).save(label_dir / name)


DEMO_VAL = ["00000.png", "00001.png", "00002.png"]
ADE_VAL = ["ADE_val_00000001.png", "ADE_val_00000002.png"]


@pytest.mark.slow
def test_eval_table_matches_numpy_miou_on_saved_predictions(
    tmp_path, write_random_checkpoint, extract_demo_priors
) -> None:
    from segmentation.demo import DemoSpec, write_demo
    from storage import PriorStore

    data_root = tmp_path / "datasets"
    write_demo(DemoSpec(seed=1, num_train=1, num_val=3), data_root / "demo", progress=False)
    _write_ade847_root(data_root / "ade20k_847")
    options = [f"prior_store_root={tmp_path / 'store'}"]
    options.append(f"prior_set_id={extract_demo_priors(data_root / 'demo', tmp_path / 'store')}")
    write_random_checkpoint(tmp_path / "random.pth")
    config = tmp_path / "one_template.py"  # 847 classes x 1 template: quick to embed on a CPU
    config.write_text(f"_base_ = [{str(CONFIG.resolve())!r}]\nmodel = dict(templates=['{{}}'])\n")
    args = ["eval", str(config), str(tmp_path / "random.pth"), "--datasets", "demo,a847"]
    args += ["--data-root", str(data_root), "--save-predictions", "--run", "random"]
    args += [item for option in options for item in ("--cfg-options", option)]
    first = CliRunner().invoke(app, [*args, "--work-dir", str(tmp_path / "first")])
    assert first.exit_code == 0, first.output
    demo_labels, ade_labels = data_root / "demo/labels/val", data_root / "ade20k_847/labels/val"
    _relabel_left_halves(tmp_path / "first/demo/predictions/val", demo_labels, DEMO_VAL)
    _relabel_left_halves(tmp_path / "first/a847/predictions", ade_labels, ADE_VAL)
    work = ["--work-dir", str(tmp_path / "eval"), "--store", str(tmp_path / "store")]
    result = CliRunner().invoke(app, [*args, *work])
    assert result.exit_code == 0, result.output
    rows = {row["dataset"]: row for row in csv.DictReader((tmp_path / "eval/eval.csv").open())}
    assert [(key, row["images"]) for key, row in rows.items()] == [("demo", "3"), ("a847", "2")]
    demo = _saved_and_true(tmp_path / "eval/demo/predictions/val", demo_labels, DEMO_VAL)
    ade = _saved_and_true(tmp_path / "eval/a847/predictions", ade_labels, ADE_VAL)
    assert ade[0][0].dtype == np.uint16
    assert {256, 300, 846, 65535} <= set(np.unique(ade[1][0][:, 32:]).tolist())
    for key, (predictions, labels, ignore) in {"demo": (*demo, 255), "a847": (*ade, 65535)}.items():
        expected = _numpy_miou(predictions, labels, ignore)
        assert 0 < expected < 100 and float(rows[key]["mIoU"]) == expected, key
    stored = PriorStore(tmp_path / "store").connect().sql("SELECT dataset, miou FROM eval_results")
    assert sorted(stored.fetchall()) == sorted(
        (key, float(row["mIoU"])) for key, row in rows.items()
    )


def _nearest_classes(names: list[str], classes: list[str]) -> set[int]:
    """Indices of the dataset classes whose names embed closest to `names` with the model's own
    text encoder (frozen pretrained weights: the config's encoder is the checkpoint's)."""
    from mmengine.config import Config

    from segmentation.text import build_text_encoder

    encoder = build_text_encoder(Config.fromfile(str(CONFIG)).model.text_encoder.to_dict())
    similarity = encoder(names).cpu().numpy() @ encoder(classes).cpu().numpy().T
    return set(similarity.argmax(1).tolist())


@pytest.mark.slow
def test_eval_no_vocab_labels_each_image_with_its_prior_objects(
    tmp_path, write_random_checkpoint, extract_demo_priors
) -> None:
    from segmentation.demo import DemoSpec, write_demo
    from segmentation.text import vocabulary_free_classes
    from storage import PriorStore

    data_root, store = tmp_path / "datasets", tmp_path / "store"
    write_demo(DemoSpec(seed=2, num_train=1, num_val=3), data_root / "demo", progress=False)
    prior_set_id = extract_demo_priors(data_root / "demo", store)
    options = [f"prior_store_root={store}", f"prior_set_id={prior_set_id}"]
    write_random_checkpoint(tmp_path / "random.pth")
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


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 cut short", b"not a checkpoint"])
def test_eval_with_an_unreadable_checkpoint_exits_2_naming_it(tmp_path, content) -> None:
    (tmp_path / "model.pth").write_bytes(content)
    args = ["eval", str(CONFIG), str(tmp_path / "model.pth"), "--datasets", "demo"]
    result = CliRunner().invoke(app, [*args, "--work-dir", str(tmp_path / "eval")])
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"error: checkpoint {tmp_path / 'model.pth'} is not a PyTorch checkpoint "
        "(torch.save file)\n"
    )


@pytest.mark.slow
def test_eval_on_an_unprepared_dataset_exits_2_naming_the_folder(tmp_path) -> None:
    torch.save({"state_dict": {}}, tmp_path / "empty.pth")
    args = ["eval", str(CONFIG), str(tmp_path / "empty.pth"), "--datasets", "a847"]
    args += ["--data-root", str(tmp_path / "datasets"), "--work-dir", str(tmp_path / "eval")]
    from storage import PriorSetSpec, PriorStore

    store = PriorStore(tmp_path / "store")
    prior_set_id = store.register_prior_set(PriorSetSpec("file", "m", "p", {}, "parser", "1"))
    args += ["--cfg-options", f"prior_store_root={tmp_path / 'store'}"]
    args += ["--cfg-options", f"prior_set_id={prior_set_id}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: image folder not found: ")
    assert str(tmp_path / "datasets/ade20k_847/images/val") in errors[0]
    assert not (tmp_path / "eval/eval.csv").exists()


def test_eval_with_a_store_that_is_not_there_exits_2_before_evaluating(tmp_path) -> None:
    torch.save({"state_dict": {}}, tmp_path / "empty.pth")
    args = ["eval", str(CONFIG), str(tmp_path / "empty.pth"), "--datasets", "demo"]
    args += ["--work-dir", str(tmp_path / "eval"), "--store", str(tmp_path / "stroe")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-1].startswith("error: --store: no prior store at ")
    assert not (tmp_path / "stroe").exists() and not (tmp_path / "eval").exists()
