"""`llmformer data prepare|demo` from the command line: output, exit codes, one-line errors."""

from __future__ import annotations

import json
import zipfile

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()


def _ade_zip(tmp_path):
    root = tmp_path / "tree/ADEChallengeData2016"
    for split, name in (("training", "ADE_train_00000001"), ("validation", "ADE_val_00000001")):
        (root / "images" / split).mkdir(parents=True)
        (root / "annotations" / split).mkdir(parents=True)
        Image.fromarray(np.zeros((3, 3, 3), np.uint8)).save(root / "images" / split / f"{name}.jpg")
        Image.fromarray(np.full((3, 3), 5, np.uint8)).save(
            root / "annotations" / split / f"{name}.png"
        )
    archive = tmp_path / "ADEChallengeData2016.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted((tmp_path / "tree").rglob("*")):
            bundle.write(path, path.relative_to(tmp_path / "tree"))
    return archive


def test_prepare_converts_and_reports(tmp_path) -> None:
    archive = _ade_zip(tmp_path)
    result = runner.invoke(
        app,
        [
            "data",
            "prepare",
            "a150",
            "--src",
            str(archive),
            "--out",
            str(tmp_path / "a150"),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "a150: 1 train, 1 val images, 150 classes" in result.output
    assert json.loads((tmp_path / "a150/prepared.json").read_text())["images"] == {
        "train": 1,
        "val": 1,
    }


def test_prepare_unreadable_archive_exits_2_naming_it(tmp_path) -> None:
    broken = tmp_path / "VOCtrainval_11-May-2012.tar"
    broken.write_bytes(b"\x00" * 10)
    result = runner.invoke(
        app, ["data", "prepare", "voc", "--src", str(broken), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("error: cannot read archive")
    assert "VOCtrainval_11-May-2012.tar" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_prepare_into_a_file_exits_2_naming_it(tmp_path) -> None:
    archive = _ade_zip(tmp_path)
    (tmp_path / "taken").write_text("a file, not a folder\n")
    args = ["data", "prepare", "a150", "--src", str(archive), "--out", str(tmp_path / "taken")]
    result = runner.invoke(app, [*args, "--no-progress"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and str(tmp_path / "taken") in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert (tmp_path / "taken").read_text() == "a file, not a folder\n"


def test_prepare_unknown_dataset_exits_2(tmp_path) -> None:
    result = runner.invoke(
        app, ["data", "prepare", "cityscapes", "--src", str(tmp_path), "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "unknown dataset 'cityscapes'" in result.stderr


def test_demo_writes_the_set_and_its_captions(tmp_path) -> None:
    out = tmp_path / "demo"
    args = [
        "data",
        "demo",
        "--out",
        str(out),
        "--seed",
        "5",
        "--num-train",
        "3",
        "--num-val",
        "2",
        "--no-progress",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = (out / "captions.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [
        "train/00000.png",
        "train/00001.png",
        "train/00002.png",
        "val/00000.png",
        "val/00001.png",
    ]
    assert len(list((out / "labels/val").glob("*.png"))) == 2


def test_prepare_a847_needs_no_classes_file(tmp_path) -> None:
    root = tmp_path / "src/ADE20K_2021_17_01"
    for split, name in (("training", "ADE_train_00000001"), ("validation", "ADE_val_00000001")):
        (root / "images_detectron2" / split).mkdir(parents=True)
        (root / "annotations_detectron2" / split).mkdir(parents=True)
        Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(
            root / "images_detectron2" / split / f"{name}.jpg"
        )
        Image.fromarray(np.array([[0, 300], [846, 65535]], np.uint16)).save(
            root / "annotations_detectron2" / split / f"{name}.tif"
        )
    out = tmp_path / "ade20k_847"
    args = ["data", "prepare", "a847", "--src", str(tmp_path / "src"), "--out", str(out)]
    result = runner.invoke(app, [*args, "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "a847: 1 train, 1 val images, 847 classes" in result.output
    assert (out / "classes.txt").read_text().splitlines()[
        300
    ] == "altar, communion table, lord's table"


def test_demo_with_a_failed_captioners_profile_names_nothing(tmp_path) -> None:
    out = tmp_path / "demo"
    args = ["data", "demo", "--out", str(out), "--num-train", "2", "--num-val", "2"]
    result = runner.invoke(app, [*args, "--captions", "empty", "--no-progress"])
    assert result.exit_code == 0, result.output
    captions = {json.loads(line)["caption"] for line in (out / "captions.jsonl").open()}
    assert captions == {"I am not able to tell what is shown here."}


def test_demo_with_an_unknown_caption_profile_exits_2_naming_the_known_ones(tmp_path) -> None:
    out = tmp_path / "demo"
    result = runner.invoke(app, ["data", "demo", "--out", str(out), "--captions", "gpt4"])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: unknown caption profile 'gpt4'; known: demo, llava-like, empty"
    )
    assert not out.exists()
