"""Convert the official benchmark releases into the layout the datasets read.

`prepare_dataset(name, src, out)` takes `src` as an archive (.zip, .tar, .tar.gz, .tgz), a folder
of archives, or a folder of extracted releases; it finds each release's folders by name, converts
every label map to class ids with `IGNORE_INDEX` as ignore, checks it against its image and the
class count, and writes::

    OUT/images/<split>/<image id>.jpg
    OUT/labels/<split>/<image id>.png   8-bit (255 = ignore) up to 255 classes, else 16-bit
    OUT/classes.txt                     the class names, in label-id order
    OUT/prepared.json                   what was converted from where

Sources per name (official layouts; Pascal Context-59 in the widely used converted PNG layout):

    a150     ADEChallengeData2016/{images,annotations}/{training,validation}
    a847     ADE20K_2021_17_01/images/ADE/{training,validation}/**/<id>.jpg + <id>_seg.png (the
             release), or its widely used conversion {images,annotations}_detectron2/... (.tif)
    coco171  train2017/, val2017/ (images) and stuffthingmaps_trainval2017 {train,val}2017/ (PNG)
    voc      VOC2012/{JPEGImages,SegmentationClass,ImageSets/Segmentation}
    pc59     VOC2010/{JPEGImages,SegmentationClassContext,ImageSets/SegmentationContext}
    pc459    VOC2010/{JPEGImages,ImageSets/Main}, the Context release's trainval/*.mat, labels.txt
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from segmentation.datasets.class_names import PACKAGED_CLASSES, ClassNames
from segmentation.datasets.constants import EIGHT_BIT_IGNORE, IGNORE_INDEX, MAX_8BIT_CLASSES
from segmentation.datasets.label_loader import (
    LabelMapError,
    apply_label_map,
    check_label_map,
    read_label_map,
)

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
# stuffthingmaps hold COCO id - 1 (0..181); these 11 thing ids are never annotated.
COCO_UNUSED_IDS = (11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90)
COCO_STUFF_IDS = tuple(i for i in range(182) if i not in COCO_UNUSED_IDS)
SPLIT_FOLDERS = {"train": "training", "val": "validation"}
ADE20K_FULL_RELEASE = "ADE20K_2021_17_01"
# The ADE20K-847 benchmark's pictures and labels have their shorter side scaled down to 512.
ADE20K_FULL_SHORT_SIDE = 512
# Scaled pictures are re-encoded once; PIL's default quality (75) adds visible JPEG artefacts.
JPEG_QUALITY = 95


class PrepareError(RuntimeError):
    """The source cannot be converted; the message names the file or folder at fault."""


@dataclass(frozen=True)
class SourcePair:
    """One image of a release with its label file, split and image id."""

    split: str
    image_id: str
    image: Path
    label: Path


@dataclass(frozen=True)
class PrepareReport:
    """What `prepare_dataset` wrote."""

    name: str
    out: Path
    images: dict[str, int]
    num_classes: int


# -- label decoding: release label file -> uint16 class ids, IGNORE_INDEX = ignore ------------

COCO_STUFF_MAP = {
    **{source: IGNORE_INDEX for source in COCO_UNUSED_IDS},
    **{source: target for target, source in enumerate(COCO_STUFF_IDS)},
}


def decode_png(path: Path) -> np.ndarray:
    return read_label_map(str(path))


def shift_down(labels: np.ndarray) -> np.ndarray:
    """0 (background / "other") -> ignore, k -> k - 1; ignore stays ignore."""
    background = (labels == 0) | (labels == IGNORE_INDEX)
    return np.where(background, IGNORE_INDEX, labels.astype(np.int64) - 1).astype(np.uint16)


def decode_png_shift_down(path: Path) -> np.ndarray:
    return shift_down(read_label_map(str(path)))


def decode_coco_stuff(path: Path) -> np.ndarray:
    return apply_label_map(read_label_map(str(path)), COCO_STUFF_MAP)


@cache
def ade20k_full_lookup() -> np.ndarray:
    """ADE20K_2021_17_01 object class -> ADE20K-847 class id (ignore for the other objects),
    from the packaged `classes/ade20k_847_object_ids.txt`."""
    text = resources.files(PACKAGED_CLASSES).joinpath("ade20k_847_object_ids.txt").read_text()
    object_ids = [int(line) for line in text.splitlines() if line.strip() and line[0] != "#"]
    lookup = np.full(max(object_ids) + 1, IGNORE_INDEX, dtype=np.uint16)
    lookup[object_ids] = np.arange(len(object_ids))
    return lookup


def decode_ade20k_full_seg(path: Path) -> np.ndarray:
    """A release `*_seg.png` (object class = R // 10 * 256 + G) -> ADE20K-847 class ids."""
    try:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB")).astype(np.int64)
    except (UnidentifiedImageError, OSError) as error:
        raise LabelMapError(f"label map {path} cannot be decoded: {error}") from error
    objects = rgb[..., 0] // 10 * 256 + rgb[..., 1]
    lookup = ade20k_full_lookup()
    known = objects < len(lookup)
    return np.where(known, lookup[np.where(known, objects, 0)], IGNORE_INDEX).astype(np.uint16)


def decode_ade20k_full(path: Path) -> np.ndarray:
    """Either ADE20K-847 layout: a release `*_seg.png` or a converted 16-bit TIFF of class ids."""
    if path.name.endswith("_seg.png"):
        return decode_ade20k_full_seg(path)
    return read_label_map(str(path))


def decode_context_mat(path: Path) -> np.ndarray:
    """Pascal Context `LabelMap` (0 unlabelled, 1..459) -> 0..458 with ignore."""
    try:
        from scipy.io import loadmat
    except ImportError as error:
        raise PrepareError("reading Pascal Context .mat files needs scipy") from error
    try:
        label_map = loadmat(str(path))["LabelMap"]
    except (ValueError, KeyError, OSError) as error:
        raise PrepareError(f"cannot read LabelMap from {path}: {error}") from error
    return shift_down(label_map.astype(np.uint16))


# -- locating a release's folders inside the search roots -------------------------------------


def find_folder(roots: list[Path], name: str, containing: str | None = None) -> Path:
    """The first folder called `name` under any root (holding a `containing` file, if given)."""
    for root in roots:
        for folder, subfolders, files in os.walk(root):
            subfolders.sort()
            path = Path(folder)
            if path.name == name and (
                containing is None or any(f.endswith(containing) for f in files)
            ):
                return path
    what = f"folder {name!r}" + (f" with {containing} files" if containing else "")
    raise PrepareError(f"{what} not found under {', '.join(map(str, roots))}")


def find_file(roots: list[Path], name: str) -> Path:
    for root in roots:
        for folder, subfolders, files in os.walk(root):
            subfolders.sort()
            if name in files:
                return Path(folder) / name
    raise PrepareError(f"file {name!r} not found under {', '.join(map(str, roots))}")


def pairs_in_folders(image_dir: Path, label_dir: Path, split: str, suffix: str) -> list[SourcePair]:
    """Every .jpg of `image_dir` with the label of the same stem in `label_dir`."""
    pairs = []
    for image in sorted(image_dir.glob("*.jpg")):
        label = label_dir / f"{image.stem}{suffix}"
        if not label.is_file():
            raise PrepareError(f"missing label map {label} for image {image}")
        pairs.append(SourcePair(split, image.stem, image, label))
    return pairs


def pairs_in_list(list_file: Path, image_dir: Path, label_dir: Path, split: str, suffix: str):
    """The ids of a split list, each with its .jpg and its label file (both must exist)."""
    if not list_file.is_file():
        raise PrepareError(f"split list not found: {list_file}")
    pairs = []
    for image_id in list_file.read_text().split():
        image, label = image_dir / f"{image_id}.jpg", label_dir / f"{image_id}{suffix}"
        for path in (image, label):
            if not path.is_file():
                raise PrepareError(f"missing file {path} (listed in {list_file})")
        pairs.append(SourcePair(split, image_id, image, label))
    return pairs


def ade20k_pairs(roots: list[Path]) -> list[SourcePair]:
    root = find_folder(roots, "ADEChallengeData2016")
    return [
        pair
        for split, folder in SPLIT_FOLDERS.items()
        for pair in pairs_in_folders(
            root / "images" / folder, root / "annotations" / folder, split, ".png"
        )
    ]


def ade20k_full_pairs(roots: list[Path]) -> list[SourcePair]:
    """The converted layout's pairs if the release was converted, else the release's own."""
    root = find_folder(roots, ADE20K_FULL_RELEASE)
    if (root / "annotations_detectron2").is_dir():
        return [
            pair
            for split, folder in SPLIT_FOLDERS.items()
            for pair in pairs_in_folders(
                root / "images_detectron2" / folder,
                root / "annotations_detectron2" / folder,
                split,
                ".tif",
            )
        ]
    if (root / "images" / "ADE").is_dir():
        return ade20k_full_release_pairs(root / "images" / "ADE")
    raise PrepareError(f"{root} holds neither images/ADE nor annotations_detectron2")


def ade20k_full_release_pairs(image_root: Path) -> list[SourcePair]:
    """Every <id>.jpg under the release's scene folders with the <id>_seg.png beside it."""
    pairs = []
    for split, folder in SPLIT_FOLDERS.items():
        for image in sorted((image_root / folder).rglob("*.jpg")):
            label = image.with_name(f"{image.stem}_seg.png")
            if not label.is_file():
                raise PrepareError(f"missing label map {label} for image {image}")
            pairs.append(SourcePair(split, image.stem, image, label))
    return pairs


def coco_stuff_pairs(roots: list[Path]) -> list[SourcePair]:
    return [
        pair
        for split in ("train", "val")
        for pair in pairs_in_folders(
            find_folder(roots, f"{split}2017", ".jpg"),
            find_folder(roots, f"{split}2017", ".png"),
            split,
            ".png",
        )
    ]


def split_list_pairs(
    list_dir: Path, image_dir: Path, label_dir: Path, suffix: str
) -> list[SourcePair]:
    """The train and val pairs of a release whose splits are id lists (`list_dir/<split>.txt`)."""
    return [
        pair
        for split in ("train", "val")
        for pair in pairs_in_list(list_dir / f"{split}.txt", image_dir, label_dir, split, suffix)
    ]


def voc_pairs(roots: list[Path]) -> list[SourcePair]:
    root = find_folder(roots, "VOC2012")
    return split_list_pairs(
        root / "ImageSets/Segmentation", root / "JPEGImages", root / "SegmentationClass", ".png"
    )


def context59_pairs(roots: list[Path]) -> list[SourcePair]:
    root = find_folder(roots, "VOC2010")
    return split_list_pairs(
        root / "ImageSets/SegmentationContext",
        root / "JPEGImages",
        root / "SegmentationClassContext",
        ".png",
    )


def context459_pairs(roots: list[Path]) -> list[SourcePair]:
    root = find_folder(roots, "VOC2010")
    labels = find_folder(roots, "trainval", ".mat")
    return split_list_pairs(root / "ImageSets/Main", root / "JPEGImages", labels, ".mat")


# -- class names ------------------------------------------------------------------------------


def context459_names(roots: list[Path]) -> ClassNames:
    """The Context release's `labels.txt` ("1: accordion" ...), in id order."""
    labels = find_file(roots, "labels.txt")
    rows = []
    for line in labels.read_text().splitlines():
        number, _, name = line.partition(":")
        if name.strip():
            rows.append((int(number), name.strip()))
    return ClassNames(tuple((name,) for _, name in sorted(rows)))


def packaged(name: str) -> Callable[[list[Path]], ClassNames]:
    return lambda roots: ClassNames.packaged(name)


@dataclass(frozen=True)
class Recipe:
    """How to convert one release: its image/label pairs, label decoding, class names and the
    shorter side larger pictures are scaled down to (None: kept as they are)."""

    pairs: Callable[[list[Path]], list[SourcePair]]
    decode: Callable[[Path], np.ndarray]
    class_names: Callable[[list[Path]], ClassNames]
    max_short_side: int | None = None


RECIPES: dict[str, Recipe] = {
    "a150": Recipe(ade20k_pairs, decode_png_shift_down, packaged("ade20k_150")),
    "a847": Recipe(
        ade20k_full_pairs, decode_ade20k_full, packaged("ade20k_847"), ADE20K_FULL_SHORT_SIDE
    ),
    "coco171": Recipe(coco_stuff_pairs, decode_coco_stuff, packaged("coco_stuff_171")),
    "voc": Recipe(voc_pairs, decode_png, packaged("pascal_voc_21")),
    "pc59": Recipe(context59_pairs, decode_png_shift_down, packaged("pascal_context_59")),
    "pc459": Recipe(context459_pairs, decode_context_mat, context459_names),
}


# -- archives ---------------------------------------------------------------------------------


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.endswith(ARCHIVE_SUFFIXES)


def extract(archive: Path, destination: Path) -> None:
    """Unpack a zip or tar archive; an unreadable one raises `PrepareError` naming it."""
    try:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as bundle:
                bundle.extractall(destination)
        else:
            with tarfile.open(archive) as bundle:
                bundle.extractall(destination, filter="data")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as error:
        reason = str(error).splitlines()[0].rstrip(":") if str(error) else type(error).__name__
        raise PrepareError(f"cannot read archive {archive}: {reason}") from error


@contextmanager
def search_roots(src: Path, scratch: Path) -> Iterator[list[Path]]:
    """The folders to look for a release in: `src` itself and its archives, unpacked to a
    temporary folder under `scratch` that is removed afterwards."""
    if not src.exists():
        raise PrepareError(f"source not found: {src}")
    archives = [src] if is_archive(src) else sorted(p for p in src.iterdir() if is_archive(p))
    folders = [] if is_archive(src) else [src]
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch, prefix=".extract-") as tmp:
        for index, archive in enumerate(tqdm(archives, desc="extract", disable=len(archives) < 2)):
            extract(archive, Path(tmp) / f"archive{index}")
        yield [*folders, Path(tmp)]


# -- conversion -------------------------------------------------------------------------------


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image file, or `PrepareError` naming it."""
    try:
        with Image.open(path) as image:
            return image.height, image.width
    except (UnidentifiedImageError, OSError) as error:
        raise PrepareError(f"cannot read image {path}: {error}") from error


def write_label_map(labels: np.ndarray, num_classes: int, path: Path) -> None:
    """8-bit PNG with 255 as ignore when the classes fit, else 16-bit PNG with 65535."""
    if num_classes <= MAX_8BIT_CLASSES:
        encoded = np.where(labels == IGNORE_INDEX, EIGHT_BIT_IGNORE, labels).astype(np.uint8)
    else:
        encoded = labels.astype(np.uint16)
    Image.fromarray(encoded).save(path)


def scaled_size(shape: tuple[int, int], short_side: int | None) -> tuple[int, int] | None:
    """(width, height) with the shorter side scaled down to `short_side`; None if no larger."""
    height, width = shape
    if short_side is None or min(height, width) <= short_side:
        return None
    if width >= height:
        return round(width / height * short_side), short_side
    return short_side, round(height / width * short_side)


def write_scaled(
    image_path: Path, labels: np.ndarray, size: tuple[int, int], out: Path
) -> np.ndarray:
    """Write the image scaled to `size` (bilinear) to `out`; return the labels scaled (nearest)."""
    import cv2

    with Image.open(image_path) as image:
        pixels = np.asarray(image.convert("RGB"))
    scaled = Image.fromarray(cv2.resize(pixels, size, interpolation=cv2.INTER_LINEAR))
    scaled.save(out, quality=JPEG_QUALITY)
    return cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)


def convert_pair(pair: SourcePair, recipe: Recipe, num_classes: int, out: Path) -> None:
    """Copy (or scale down) one image and write its converted, checked label map."""
    labels = recipe.decode(pair.label)
    check_label_map(labels, num_classes, str(pair.label), image_size(pair.image))
    image_out = out / "images" / pair.split / f"{pair.image_id}.jpg"
    size = scaled_size(labels.shape, recipe.max_short_side)
    if size is None:
        shutil.copyfile(pair.image, image_out)
    else:
        labels = write_scaled(pair.image, labels, size, image_out)
    write_label_map(labels, num_classes, out / "labels" / pair.split / f"{pair.image_id}.png")


def prepare_dataset(
    name: str, src: str | Path, out: str | Path, progress: bool = True
) -> PrepareReport:
    """Convert the release of benchmark `name` found in `src` into `out` (see module doc)."""
    if name not in RECIPES:
        raise PrepareError(f"unknown dataset {name!r}; known: {', '.join(RECIPES)}")
    recipe, src, out = RECIPES[name], Path(src), Path(out)
    with search_roots(src, out) as roots:
        pairs = recipe.pairs(roots)
        if not pairs:
            raise PrepareError(f"no images of {name} found under {src}")
        class_names = recipe.class_names(roots)
        for split in {pair.split for pair in pairs}:
            (out / "images" / split).mkdir(parents=True, exist_ok=True)
            (out / "labels" / split).mkdir(parents=True, exist_ok=True)
        for pair in tqdm(pairs, desc=f"prepare {name}", disable=not progress):
            convert_pair(pair, recipe, len(class_names), out)
    (out / "classes.txt").write_text(class_names.to_text())
    counts = {split: sum(pair.split == split for pair in pairs) for split in ("train", "val")}
    report = PrepareReport(name, out, counts, len(class_names))
    manifest = {"name": name, "source": str(src), "images": counts, "num_classes": len(class_names)}
    (out / "prepared.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return report
