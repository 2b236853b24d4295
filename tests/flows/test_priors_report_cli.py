"""`llmformer eval --store` writes eval_images; its views equal an independent numpy computation
on the saved predictions, the label files and the priors; `llmformer priors report` draws them."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from flows.cli import app

CONFIG = Path(__file__).parents[2] / "segmentation/configs/llmformer_tiny_demo.py"
IGNORE = 65535


def _read_png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image).astype(np.int64)


def _numpy_counts(predictions: Path, labels: Path) -> dict[str, dict[int, tuple[int, int, int]]]:
    """Per image id ("val/<file>") and class in either map: gt, predicted and common pixels over
    the pixels whose label is not ignored."""
    images = {}
    for label_file in sorted(labels.glob("*.png")):
        gt, pred = _read_png(label_file), _read_png(predictions / label_file.name)
        valid = gt != IGNORE
        classes = set(np.unique(gt[valid])) | set(np.unique(pred[valid]))
        images[f"val/{label_file.name}"] = {
            int(c): (
                int((gt == c).sum()),
                int(((pred == c) & valid).sum()),
                int(((pred == c) & (gt == c)).sum()),
            )
            for c in sorted(classes)
        }
    return images


def _named_classes(store: Path, prior_set_id: str, ids: list[str], classes: list[str]) -> dict:
    """Per image: the class indices whose name equals (lower-cased) an object prior's name."""
    from storage import PriorStore

    priors = PriorStore(store).read_priors(prior_set_id, ids)
    names = {
        image_id: {obj["name"].lower() for obj in priors[image_id].objects} for image_id in ids
    }
    return {i: {c for c, name in enumerate(classes) if name in names[i]} for i in ids}


def _split_iou(images: dict, named: dict, num_classes: int) -> dict[int, tuple]:
    """Per class: (named images, named IoU, unnamed images, unnamed IoU), None without images."""
    result = {}
    for c in range(num_classes):
        sides = {True: np.zeros(3, np.int64), False: np.zeros(3, np.int64)}
        counts = {True: 0, False: 0}
        for image_id, per_class in images.items():
            if c in per_class:
                side = c in named[image_id]
                sides[side] += per_class[c]
                counts[side] += 1
        if counts[True] or counts[False]:
            result[c] = tuple(
                value
                for side in (True, False)
                for value in (
                    counts[side],
                    100 * sides[side][2] / (sides[side][0] + sides[side][1] - sides[side][2])
                    if counts[side]
                    else None,
                )
            )
    return result


@pytest.mark.slow
def test_eval_images_views_equal_numpy_and_the_report_draws_them(
    tmp_path, write_random_checkpoint, extract_demo_priors
) -> None:
    from segmentation.demo import DemoSpec, write_demo
    from storage import PriorStore

    data_root, store = tmp_path / "datasets", tmp_path / "store"
    write_demo(DemoSpec(seed=5, num_train=1, num_val=6), data_root / "demo", progress=False)
    prior_set_id = extract_demo_priors(data_root / "demo", store)
    write_random_checkpoint(tmp_path / "random.pth")
    args = ["eval", str(CONFIG), str(tmp_path / "random.pth"), "--datasets", "demo"]
    args += ["--data-root", str(data_root), "--work-dir", str(tmp_path / "eval")]
    args += ["--store", str(store), "--save-predictions", "--run", "random"]
    for option in (f"prior_store_root={store}", f"prior_set_id={prior_set_id}"):
        args += ["--cfg-options", option]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output

    classes = (data_root / "demo/classes.txt").read_text().split()
    images = _numpy_counts(tmp_path / "eval/demo/predictions/val", data_root / "demo/labels/val")
    named = _named_classes(store, prior_set_id, list(images), classes)
    connection = PriorStore(store).connect()
    stored = connection.sql(
        "SELECT image_id, class_index, gt_pixels, pred_pixels, intersection FROM eval_images"
    ).fetchall()
    assert {(i, c, (g, p, n)) for i, c, g, p, n in stored} == {
        (i, c, counts) for i, per_class in images.items() for c, counts in per_class.items()
    }

    table = {
        int(row["class_index"]): float(row["IoU"])
        for row in csv.DictReader((tmp_path / "eval/eval_classes.csv").open())
    }
    view = dict(connection.sql("SELECT class_index, iou FROM eval_class_iou").fetchall())
    assert view.keys() == table.keys()
    for c, iou in table.items():
        assert abs(view[c] - iou) < 1e-6, classes[c]

    split = connection.sql(
        "SELECT class_index, named_images, named_iou, unnamed_images, unnamed_iou "
        "FROM class_iou_by_prior_hit"
    ).fetchall()
    expected = _split_iou(images, named, len(classes))
    assert {row[0] for row in split} == expected.keys()
    for c, *values in split:
        assert values == [
            pytest.approx(v, abs=1e-9) if v is not None else None for v in expected[c]
        ]

    gt_pairs = [(i, c) for i, per_class in images.items() for c, n in per_class.items() if n[0]]
    named_pairs = [(i, c) for i, cs in named.items() for c in cs]
    [(recall, precision, images_count)] = connection.sql(
        "SELECT recall, precision, images FROM prior_recall WHERE prior_set_id = $id",
        params={"id": prior_set_id},
    ).fetchall()
    hits = sum(c in named[i] for i, c in gt_pairs)
    present = sum(images[i].get(c, (0,))[0] > 0 for i, c in named_pairs)
    assert images_count == 6
    assert recall == pytest.approx(hits / len(gt_pairs), abs=1e-12)
    assert precision == pytest.approx(present / len(named_pairs), abs=1e-12)
    assert 0 < hits < len(gt_pairs), "the demo captions miss some objects"

    report = CliRunner().invoke(
        app, ["priors", "report", "--store", str(store), "--out", str(tmp_path / "report")]
    )
    assert report.exit_code == 0, report.output
    out = tmp_path / "report"
    charts = ["class_iou_demo.png", "prior_recall.png", "worst_images.png"]
    assert report.stdout.splitlines() == [str(out / "report.md"), *(str(out / c) for c in charts)]
    page = (out / "report.md").read_text()
    for chart in charts:
        assert f"]({chart})" in page
        with Image.open(out / chart) as picture:
            assert picture.format == "PNG" and min(picture.size) > 200
    assert page.startswith("# Priors report: random\n")
    assert page.count("| demo | val/") == 6  # the worst-images table lists every image


def test_report_on_a_store_without_evaluations_exits_2(tmp_path) -> None:
    from storage import PriorStore

    PriorStore(tmp_path / "store")
    result = CliRunner().invoke(
        app,
        ["priors", "report", "--store", str(tmp_path / "store"), "--out", str(tmp_path / "r")],
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "error: the store holds no per-image evaluation; "
        "run `llmformer eval ... --store STORE` first\n"
    )
    assert not (tmp_path / "r").exists()
