"""Dataset classes: vocabularies, data-info keys the store and priors need, bad layouts."""

from __future__ import annotations

import numpy as np
import pytest
from mmseg.datasets import (
    ADE20KDataset,
    COCOStuffDataset,
    PascalContextDataset59,
    PascalVOCDataset,
)
from mmseg.registry import DATASETS

import segmentation  # noqa: F401  (registers the plugin)
from segmentation.datasets import IGNORE_INDEX, ClassNames, ClassNamesError, DataLayoutError
from segmentation.datasets.catalog import BENCHMARKS, benchmark


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("ade20k_150", 150),
        ("coco_stuff_171", 171),
        ("pascal_context_59", 59),
        ("pascal_voc_20", 20),
        ("pascal_voc_21", 21),
    ],
)
def test_packaged_class_lists_have_the_benchmark_sizes_and_unique_names(name, size) -> None:
    names = ClassNames.packaged(name)
    assert len(names) == size
    assert len(set(names.names)) == size


@pytest.mark.parametrize(
    ("name", "mmseg_dataset"),
    [
        ("ade20k_150", ADE20KDataset),
        ("pascal_context_59", PascalContextDataset59),
        ("pascal_voc_21", PascalVOCDataset),
    ],
)
def test_class_order_matches_mmseg_label_ids(name, mmseg_dataset) -> None:
    ours = ClassNames.packaged(name).synonyms
    theirs = [label.strip() for label in mmseg_dataset.METAINFO["classes"]]
    theirs = theirs[1:] if len(theirs) == len(ours) + 1 else theirs
    mismatches = [
        (theirs_name, synonyms)
        for theirs_name, synonyms in zip(theirs, ours, strict=True)
        if theirs_name not in synonyms and theirs_name != "".join(synonyms[0].split())
    ]
    assert mismatches == []


def test_coco_stuff_things_match_mmseg_and_stuff_count_is_91() -> None:
    ours = ClassNames.packaged("coco_stuff_171").names
    assert ours[:80] == list(COCOStuffDataset.METAINFO["classes"][:80])
    assert len(ours[80:]) == 91


def test_class_file_errors_name_file_and_line(tmp_path) -> None:
    bad = tmp_path / "classes.txt"
    bad.write_text("cat, kitty\ndog, , hound\n")
    with pytest.raises(ClassNamesError, match=r"classes\.txt:2: empty class name"):
        ClassNames.from_file(bad)
    with pytest.raises(ClassNamesError, match="not found"):
        ClassNames.from_file(tmp_path / "absent.txt")


def test_847_names_ship_in_benchmark_label_order() -> None:
    names = ClassNames.packaged("ade20k_847")
    assert len(names) == 847
    assert len(set(names.synonyms)) == 847  # first names repeat ("bag" x3), synonym rows do not
    assert names.names[:5] == ["wall", "building", "sky", "tree", "road"]
    assert names.synonyms[300] == ("altar", "communion table", "lord's table")
    assert names.names[846] == "adding machine"
    assert names.synonyms[782][:3] == ("central processing unit", "cpu", "c p u")


def test_847_dataset_uses_packaged_names_and_fills_data_infos(prepared_root) -> None:
    dataset = DATASETS.build(
        dict(type="ADE20K847Dataset", data_root=str(prepared_root), split="val")
    )
    assert len(dataset.metainfo["classes"]) == 847
    assert dataset.metainfo["classes"][301] == "fish"
    assert dataset.metainfo["synonyms"][5] == ["floor", "flooring"]
    info = dataset.get_data_info(1)
    assert info["img_id"] == "ADE_val_00000002"
    assert info["dataset_name"] == "ade20k_847" and info["split"] == "val"
    assert info["num_classes"] == 847
    assert info["seg_map_path"].endswith("labels/val/ADE_val_00000002.png")


def test_classes_file_overrides_packaged_names(prepared_root, tmp_path) -> None:
    names = tmp_path / "names.txt"
    names.write_text("".join(f"class {i}, thing {i}\n" for i in range(847)))
    dataset = DATASETS.build(
        dict(type="ADE20K847Dataset", data_root=str(prepared_root), classes_file=str(names))
    )
    assert dataset.metainfo["synonyms"][846] == ["class 846", "thing 846"]


def test_full_pipeline_keeps_ids_above_255(prepared_root) -> None:
    pipeline = [
        dict(type="LoadImageFromFile"),
        dict(type="LoadLabelMap"),
        dict(type="PackSegInputs"),
    ]
    dataset = DATASETS.build(
        dict(type="ADE20K847Dataset", data_root=str(prepared_root), split="val", pipeline=pipeline)
    )
    gt = dataset[1]["data_samples"].gt_sem_seg.data
    assert gt[0, 0, 0].item() == IGNORE_INDEX
    assert gt[0, 1:, :].unique().tolist() == [301]


def test_voc20_ignores_background_that_voc21_counts(tmp_path, write_image, write_labels) -> None:
    root = tmp_path / "pascal_voc"
    write_image(root / "images/val/2007_000033.jpg", 2, 3)
    write_labels(root / "labels/val/2007_000033.png", np.array([[0, 1, 20], [255, 5, 0]], np.uint8))
    pipeline = [dict(type="LoadLabelMap"), dict(type="PackSegInputs")]
    gts = {
        key: DATASETS.build(benchmark(key).dataset_cfg(str(tmp_path), pipeline))[0]["data_samples"]
        .gt_sem_seg.data[0]
        .tolist()
        for key in ("voc20", "voc21")
    }
    assert gts["voc21"] == [[0, 1, 20], [IGNORE_INDEX, 5, 0]]
    assert gts["voc20"] == [[IGNORE_INDEX, 0, 19], [IGNORE_INDEX, 4, IGNORE_INDEX]]


def test_missing_label_map_is_named(prepared_root) -> None:
    (prepared_root / "labels/val/ADE_val_00000001.png").unlink()
    with pytest.raises(DataLayoutError, match=r"missing label map .*ADE_val_00000001\.png"):
        DATASETS.build(dict(type="ADE20K847Dataset", data_root=str(prepared_root)))


def test_missing_image_listed_in_split_file_is_named(prepared_root) -> None:
    (prepared_root / "val.txt").write_text("ADE_val_00000001\nADE_val_00000009\n")
    with pytest.raises(DataLayoutError, match=r"missing image .*ADE_val_00000009\.jpg"):
        DATASETS.build(
            dict(type="ADE20K847Dataset", data_root=str(prepared_root), ann_file="val.txt")
        )


def test_unprepared_root_says_how_to_prepare(tmp_path) -> None:
    with pytest.raises(DataLayoutError, match="llmformer data prepare"):
        DATASETS.build(dict(type="ADE20K150Dataset", data_root=str(tmp_path)))


def test_catalog_names_every_registered_dataset() -> None:
    assert {info.type for info in BENCHMARKS.values()} <= set(DATASETS.module_dict)
    with pytest.raises(ValueError, match="unknown dataset 'a900'"):
        benchmark("a900")
