"""`prepare_dataset` on tiny releases made in the official archive layouts."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segmentation.datasets import IGNORE_INDEX, LabelMapError
from segmentation.datasets.label_loader import read_label_map
from segmentation.datasets.prepare import (
    COCO_STUFF_IDS,
    JPEG_QUALITY,
    PrepareError,
    prepare_dataset,
)


def _jpg(path: Path, height: int = 4, width: int = 5) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), 120, np.uint8)).save(path)


def _png(path: Path, labels: np.ndarray, palette: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(labels)
    if palette:  # VOC's indexed PNG: the pixel values are palette indices
        image.putpalette([value for i in range(256) for value in (i, 0, 0)])
    image.save(path)


def _zip(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted(folder.rglob("*")):
            bundle.write(path, path.relative_to(folder))
    return archive


def _tar(folder: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz" if archive.name.endswith("gz") else "w") as bundle:
        for path in sorted(folder.iterdir()):
            bundle.add(path, path.name)
    return archive


@pytest.fixture
def ade_zip(tmp_path) -> Path:
    tree = tmp_path / "tree"
    root = tree / "ADEChallengeData2016"
    for split, name in (("training", "ADE_train_00000001"), ("validation", "ADE_val_00000001")):
        _jpg(root / "images" / split / f"{name}.jpg")
        _png(
            root / "annotations" / split / f"{name}.png",
            np.array([[0, 1, 150, 7, 7]] * 4, np.uint8),
        )
    return _zip(tree, tmp_path / "ADEChallengeData2016.zip")


def test_ade20k_150_from_official_zip(ade_zip, tmp_path) -> None:
    report = prepare_dataset("a150", ade_zip, tmp_path / "out", progress=False)
    assert report.images == {"train": 1, "val": 1} and report.num_classes == 150
    labels = read_label_map(str(tmp_path / "out/labels/val/ADE_val_00000001.png"))
    assert labels[0].tolist() == [IGNORE_INDEX, 0, 149, 6, 6]
    assert (tmp_path / "out/images/train/ADE_train_00000001.jpg").is_file()
    assert not list((tmp_path / "out").glob(".extract-*"))  # scratch space removed


def test_coco_stuff_maps_182_ids_to_171_classes(tmp_path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    maps = {"train": [[0, 12, 91, 181]], "val": [[11, 255, 91, 181]]}
    for split, labels in maps.items():
        images = tmp_path / f"{split}-images"
        _jpg(images / f"{split}2017" / "000000000139.jpg", 1, 4)
        _zip(images, src / f"{split}2017.zip")
        _png(tmp_path / "maps" / f"{split}2017" / "000000000139.png", np.array(labels, np.uint8))
    _zip(tmp_path / "maps", src / "stuffthingmaps_trainval2017.zip")
    prepare_dataset("coco171", src, tmp_path / "out", progress=False)
    train = read_label_map(str(tmp_path / "out/labels/train/000000000139.png"))
    val = read_label_map(str(tmp_path / "out/labels/val/000000000139.png"))
    assert train.tolist() == [[0, COCO_STUFF_IDS.index(12), 80, 170]]
    assert val.tolist() == [[IGNORE_INDEX, IGNORE_INDEX, 80, 170]]  # 11 is an unused COCO id


def test_voc_tar_keeps_background_and_palette_indices(tmp_path) -> None:
    tree = tmp_path / "tree"
    voc = tree / "VOCdevkit/VOC2012"
    for split, image_id in (("train", "2007_000032"), ("val", "2007_000033")):
        _jpg(voc / "JPEGImages" / f"{image_id}.jpg", 2, 2)
        _png(
            voc / "SegmentationClass" / f"{image_id}.png",
            np.array([[0, 15], [255, 20]], np.uint8),
            palette=True,
        )
        (voc / "ImageSets/Segmentation").mkdir(parents=True, exist_ok=True)
        (voc / "ImageSets/Segmentation" / f"{split}.txt").write_text(image_id + "\n")
    archive = _tar(tree, tmp_path / "VOCtrainval_11-May-2012.tar")
    prepare_dataset("voc", archive, tmp_path / "out", progress=False)
    labels = read_label_map(str(tmp_path / "out/labels/val/2007_000033.png"))
    assert labels.tolist() == [[0, 15], [IGNORE_INDEX, 20]]


def test_pascal_context_59_shifts_background_to_ignore(tmp_path) -> None:
    voc = tmp_path / "VOCdevkit/VOC2010"
    for split, image_id in (("train", "2008_000002"), ("val", "2008_000003")):
        _jpg(voc / "JPEGImages" / f"{image_id}.jpg", 1, 4)
        _png(
            voc / "SegmentationClassContext" / f"{image_id}.png",
            np.array([[0, 1, 59, 30]], np.uint8),
        )
        (voc / "ImageSets/SegmentationContext").mkdir(parents=True, exist_ok=True)
        (voc / "ImageSets/SegmentationContext" / f"{split}.txt").write_text(image_id + "\n")
    report = prepare_dataset("pc59", tmp_path, tmp_path / "out", progress=False)
    assert report.images == {"train": 1, "val": 1} and report.num_classes == 59
    labels = read_label_map(str(tmp_path / "out/labels/val/2008_000003.png"))
    assert labels.tolist() == [[IGNORE_INDEX, 0, 58, 29]]
    names = (tmp_path / "out/classes.txt").read_text().splitlines()
    assert (names[0].split(",")[0], names[58]) == ("aeroplane", "wood")


def test_pascal_context_459_from_mat_files_is_16_bit(tmp_path) -> None:
    scipy_io = pytest.importorskip("scipy.io")
    tree = tmp_path / "tree"
    voc = tree / "VOCdevkit/VOC2010"
    context = tree / "context"
    for split, image_id in (("train", "2008_000002"), ("val", "2008_000003")):
        _jpg(voc / "JPEGImages" / f"{image_id}.jpg", 1, 3)
        (voc / "ImageSets/Main").mkdir(parents=True, exist_ok=True)
        (voc / "ImageSets/Main" / f"{split}.txt").write_text(image_id + "\n")
        (context / "trainval").mkdir(parents=True, exist_ok=True)
        label_map = np.array([[0, 300, 459]], np.uint16)
        scipy_io.savemat(context / "trainval" / f"{image_id}.mat", {"LabelMap": label_map})
    (context / "labels.txt").write_text("".join(f"{i}: name {i}\n" for i in range(1, 460)))
    src = tmp_path / "src"
    src.mkdir()
    _tar(tree / "VOCdevkit", src / "VOCtrainval_03-May-2010.tar")
    _tar(context, src / "trainval.tar.gz")
    report = prepare_dataset("pc459", src, tmp_path / "out", progress=False)
    assert report.num_classes == 459
    with Image.open(tmp_path / "out/labels/val/2008_000003.png") as image:
        assert np.asarray(image).dtype == np.uint16
    labels = read_label_map(str(tmp_path / "out/labels/val/2008_000003.png"))
    assert labels.tolist() == [[IGNORE_INDEX, 299, 458]]
    assert (tmp_path / "out/classes.txt").read_text().splitlines()[299] == "name 300"


def _ade_full_tree(tree: Path, labels: np.ndarray) -> Path:
    """The converted ADE20K-full release: images_detectron2 and 16-bit TIFF label maps."""
    root = tree / "ADE20K_2021_17_01"
    for split, name in (("training", "ADE_train_00000001"), ("validation", "ADE_val_00000001")):
        _jpg(root / "images_detectron2" / split / f"{name}.jpg", *labels.shape)
        (root / "annotations_detectron2" / split).mkdir(parents=True, exist_ok=True)
        Image.fromarray(labels).save(root / "annotations_detectron2" / split / f"{name}.tif")
    return tree


def test_ade20k_847_from_tiff_zip_uses_packaged_names(tmp_path) -> None:
    labels = np.array([[0, 255, 256, 846, IGNORE_INDEX]] * 4, np.uint16)
    archive = _zip(_ade_full_tree(tmp_path / "tree", labels), tmp_path / "ADE20K_2021_17_01.zip")
    report = prepare_dataset("a847", archive, tmp_path / "out", progress=False)
    assert report.images == {"train": 1, "val": 1} and report.num_classes == 847
    with Image.open(tmp_path / "out/labels/val/ADE_val_00000001.png") as image:
        assert np.asarray(image).dtype == np.uint16
    converted = read_label_map(str(tmp_path / "out/labels/val/ADE_val_00000001.png"))
    assert converted.tolist() == labels.tolist()
    names = (tmp_path / "out/classes.txt").read_text().splitlines()
    assert len(names) == 847
    assert [names[i] for i in (0, 255, 256)] == ["wall", "pier", "shanties"]
    assert names[846] == "adding machine, totalizer, totaliser"


def test_ade20k_847_label_above_846_is_named(tmp_path) -> None:
    tree = _ade_full_tree(tmp_path / "tree", np.array([[3, 847]], np.uint16))
    with pytest.raises(LabelMapError, match=r"ADE_train_00000001\.tif has ids \[847\] outside"):
        prepare_dataset("a847", tree, tmp_path / "out", progress=False)


def _seg_png(path: Path, object_ids: np.ndarray, instance: int = 3) -> None:
    """A release `*_seg.png`: R // 10 * 256 + G is the object class, B the instance."""
    red = object_ids // 256 * 10 + instance % 10  # R % 10 names no class: the decoder floors
    rgb = np.stack([red, object_ids % 256, np.full_like(object_ids, instance)], axis=-1)
    _png(path, rgb.astype(np.uint8))


def _ade_release_zip(tmp_path: Path, object_ids: np.ndarray) -> Path:
    tree = tmp_path / "tree"
    scenes = tree / "ADE20K_2021_17_01/images/ADE"
    for split, scene, name in (
        ("training", "cultural/apse_indoor", "ADE_train_00000001"),
        ("validation", "home_or_hotel/bathroom", "ADE_val_00000001"),
    ):
        _jpg(scenes / split / scene / f"{name}.jpg", *object_ids.shape)
        _seg_png(scenes / split / scene / f"{name}_seg.png", object_ids)
        _png(scenes / split / scene / f"{name}_parts_1.png", np.zeros(object_ids.shape, np.uint8))
    (tree / "ADE20K_2021_17_01/objects.txt").write_text("not read\n")
    return _zip(tree, tmp_path / "ADE20K_2021_17_01.zip")


def test_ade20k_847_from_the_release_maps_object_classes_to_847_ids(tmp_path) -> None:
    # wall, adding machine, alga, unlabelled, an object outside the 847 (id 5), person
    object_ids = np.array([[2978, 3148, 3156, 0, 5, 1831]] * 2)
    archive = _ade_release_zip(tmp_path, object_ids)
    report = prepare_dataset("a847", archive, tmp_path / "out", progress=False)
    assert report.images == {"train": 1, "val": 1} and report.num_classes == 847
    labels = read_label_map(str(tmp_path / "out/labels/val/ADE_val_00000001.png"))
    assert labels[0].tolist() == [0, 846, 358, IGNORE_INDEX, IGNORE_INDEX, 11]
    names = (tmp_path / "out/classes.txt").read_text().splitlines()
    assert [names[i].split(",")[0] for i in (0, 846, 358, 11)] == [
        "wall",
        "adding machine",
        "alga",
        "person",
    ]


def test_ade20k_847_object_ids_are_847_distinct_classes() -> None:
    from segmentation.datasets.prepare import ade20k_full_lookup

    lookup = ade20k_full_lookup()
    classes = lookup[lookup != IGNORE_INDEX]
    assert sorted(classes.tolist()) == list(range(847))


def test_ade20k_847_scales_large_pictures_to_a_512_shorter_side(tmp_path) -> None:
    object_ids = np.full((600, 800), 2978)
    object_ids[:, 400:] = 3148
    archive = _ade_release_zip(tmp_path, object_ids)
    report = prepare_dataset("a847", archive, tmp_path / "out", progress=False)
    assert report.images == {"train": 1, "val": 1}
    labels = read_label_map(str(tmp_path / "out/labels/train/ADE_train_00000001.png"))
    assert labels.shape == (512, 683)  # 800 / 600 * 512 = 682.7
    assert (labels[:, :341] == 0).all() and (labels[:, 342:] == 846).all()
    with Image.open(tmp_path / "out/images/train/ADE_train_00000001.jpg") as image:
        assert image.size == (683, 512)
        assert image.quantization == _quantization_at(JPEG_QUALITY)
        assert image.quantization != _quantization_at(75)  # PIL's default


def _quantization_at(quality: int) -> dict[int, list[int]]:
    """The JPEG quantisation tables PIL writes at `quality`."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="JPEG", quality=quality)
    with Image.open(buffer) as image:
        return image.quantization


def test_ade20k_full_folder_without_either_layout_is_named(tmp_path) -> None:
    _jpg(tmp_path / "ADE20K_2021_17_01/pictures/ADE_val_00000001.jpg")
    with pytest.raises(PrepareError, match="holds neither images/ADE nor annotations_detectron2"):
        prepare_dataset("a847", tmp_path, tmp_path / "out", progress=False)


def test_unreadable_archive_is_named(tmp_path) -> None:
    broken = tmp_path / "ADEChallengeData2016.zip"
    broken.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(PrepareError, match=r"cannot read archive .*ADEChallengeData2016\.zip"):
        prepare_dataset("a150", broken, tmp_path / "out", progress=False)


def test_label_map_of_wrong_size_is_named(ade_zip, tmp_path) -> None:
    tree = tmp_path / "tree"
    _png(
        tree / "ADEChallengeData2016/annotations/validation/ADE_val_00000001.png",
        np.zeros((3, 3), np.uint8),
    )
    with pytest.raises(LabelMapError, match=r"ADE_val_00000001\.png is 3x3 but its image is 4x5"):
        prepare_dataset("a150", tree, tmp_path / "out", progress=False)


def test_label_value_outside_the_classes_is_named(tmp_path) -> None:
    tree = tmp_path / "tree"
    _jpg(tree / "ADEChallengeData2016/images/validation/ADE_val_00000009.jpg", 1, 2)
    _png(
        tree / "ADEChallengeData2016/annotations/validation/ADE_val_00000009.png",
        np.array([[3, 200]], np.uint8),
    )
    with pytest.raises(
        LabelMapError, match=r"ADE_val_00000009\.png has ids \[199\] outside 0\.\.149"
    ):
        prepare_dataset("a150", tree, tmp_path / "out", progress=False)


def test_missing_image_listed_in_a_split_is_named(tmp_path) -> None:
    voc = tmp_path / "VOCdevkit/VOC2012"
    (voc / "ImageSets/Segmentation").mkdir(parents=True)
    (voc / "ImageSets/Segmentation/train.txt").write_text("2007_000099\n")
    _png(voc / "SegmentationClass/2007_000099.png", np.zeros((2, 2), np.uint8))
    with pytest.raises(PrepareError, match=r"missing file .*JPEGImages/2007_000099\.jpg"):
        prepare_dataset("voc", tmp_path, tmp_path / "out", progress=False)


def test_missing_release_folder_and_unknown_name_are_clear(tmp_path) -> None:
    with pytest.raises(PrepareError, match="folder 'ADEChallengeData2016' not found"):
        prepare_dataset("a150", tmp_path, tmp_path / "out", progress=False)
    with pytest.raises(PrepareError, match="unknown dataset 'a151'"):
        prepare_dataset("a151", tmp_path, tmp_path / "out", progress=False)
