"""Image sources: ids, order, dataset/split keys, and one clear error per malformed input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prior_extraction import sources
from prior_extraction.sources import (
    DatasetSource,
    FolderSource,
    ImageItem,
    ManifestSource,
    SourceError,
    SplitLayout,
    build_source,
)


def _touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def test_folder_lists_images_recursively_with_relative_ids(tmp_path: Path) -> None:
    root = tmp_path / "My Photos"
    _touch(root, "b.png", "a.JPG", "sub/cat_01.jpg", "sub/deeper/x.webp", "notes.txt", "c.jpg.bak")
    items = FolderSource(root).items()
    assert [item.image_id for item in items] == [
        "a.JPG",
        "b.png",
        "sub/cat_01.jpg",
        "sub/deeper/x.webp",
    ]
    assert items[2] == ImageItem("sub/cat_01.jpg", root / "sub/cat_01.jpg", "My_Photos", "all")


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist or is not a folder"):
        FolderSource(tmp_path / "nope").items()


def _manifest(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_manifest_ids_and_paths(tmp_path: Path) -> None:
    absolute = tmp_path / "elsewhere" / "z.png"
    path = _manifest(
        tmp_path,
        [
            json.dumps({"id": "img-2", "path": "pics/2.png"}),
            "",
            json.dumps({"id": 7, "path": str(absolute)}),
        ],
    )
    items = ManifestSource(path).items()
    assert items == [
        ImageItem("img-2", tmp_path / "pics/2.png", "set", "all"),
        ImageItem("7", absolute, "set", "all"),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"set.jsonl:2: not valid JSON"),
        ('["a", "b"]', r"set.jsonl:2: expected a JSON object"),
        ('{"path": "a.png"}', r"set.jsonl:2: 'id' must be"),
        ('{"id": "b", "path": 3}', r"set.jsonl:2: 'path' must be"),
        ('{"id": "a", "path": "again.png"}', r"set.jsonl:2: duplicate id 'a'"),
    ],
)
def test_malformed_manifest_lines_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = _manifest(tmp_path, [json.dumps({"id": "a", "path": "a.png"}), line])
    with pytest.raises(SourceError, match=message):
        ManifestSource(path).items()


def test_coco_stuff_lists_both_splits_with_stem_ids(tmp_path: Path) -> None:
    _touch(
        tmp_path,
        "images/train/000000000009.jpg",
        "images/train/000000000025.jpg",
        "images/val/000000000139.jpg",
    )
    items = DatasetSource("coco_stuff_171", tmp_path).items()
    assert [(item.image_id, item.split) for item in items] == [
        ("000000000009", "train"),
        ("000000000025", "train"),
        ("000000000139", "val"),
    ]
    assert {item.dataset for item in items} == {"coco_stuff_171"}


def test_absent_default_split_is_skipped_but_an_asked_one_is_an_error(tmp_path: Path) -> None:
    _touch(tmp_path, "images/val/000000000139.jpg")
    assert [item.split for item in DatasetSource("coco_stuff_171", tmp_path).items()] == ["val"]
    with pytest.raises(SourceError, match="missing image folder images/train"):
        DatasetSource("coco_stuff_171", tmp_path, splits=["train"]).items()


def test_benchmarks_read_the_prepared_layout(tmp_path: Path) -> None:
    _touch(tmp_path, "images/val/2008_000003.jpg", "images/val/2008_000002.jpg")
    items = DatasetSource("pascal_context_459", tmp_path).items()
    assert [item.image_id for item in items] == ["2008_000002", "2008_000003"]
    assert items[0].path == tmp_path / "images/val/2008_000002.jpg"


def test_demo_ids_are_paths_under_images(tmp_path: Path) -> None:
    _touch(tmp_path, "images/train/00001.png", "images/train/00000.png", "images/val/00000.png")
    items = DatasetSource("demo", tmp_path).items()
    assert [(item.image_id, item.split) for item in items] == [
        ("train/00000.png", "train"),
        ("train/00001.png", "train"),
        ("val/00000.png", "val"),
    ]


def test_dataset_errors_are_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="unknown dataset 'coco'; known: ade20k_150"):
        DatasetSource("coco", tmp_path)
    with pytest.raises(SourceError, match=r"no image folder under .* \(expected images/val"):
        DatasetSource("ade20k_847", tmp_path).items()
    with pytest.raises(SourceError, match="pascal_voc_20 has no split 'train'"):
        DatasetSource("pascal_voc_20", tmp_path, splits=["train"])


def test_layouts_are_data_and_can_be_corrected(tmp_path: Path, monkeypatch) -> None:
    layouts = {**sources.DATASET_LAYOUTS, "mine": (SplitLayout("test", "pics", suffix=".png"),)}
    monkeypatch.setattr(sources, "DATASET_LAYOUTS", layouts)
    _touch(tmp_path, "pics/q.png", "pics/ignored.jpg")
    assert [item.image_id for item in DatasetSource("mine", tmp_path).items()] == ["q"]


def test_build_source_needs_exactly_one_kind(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="exactly one of --images, --manifest or --dataset"):
        build_source()
    with pytest.raises(SourceError, match="exactly one"):
        build_source(images=tmp_path, manifest=tmp_path / "m.jsonl")
    with pytest.raises(SourceError, match="--dataset needs --data-root"):
        build_source(dataset="demo")
    assert build_source(dataset="demo", data_root=tmp_path) == DatasetSource("demo", tmp_path)
    assert isinstance(build_source(images=tmp_path), FolderSource)


def test_a_dataset_name_keys_a_folders_or_manifests_images(tmp_path: Path) -> None:
    _touch(tmp_path / "photos", "a.png")
    manifest = _manifest(tmp_path, [json.dumps({"id": "x", "path": "photos/a.png"})])
    folder = build_source(images=tmp_path / "photos", dataset_name="holiday-2024")
    listed = build_source(manifest=manifest, dataset_name="holiday.v2")
    assert [item.dataset for item in folder.items()] == ["holiday-2024"]
    assert [item.dataset for item in listed.items()] == ["holiday.v2"]
    assert [item.dataset for item in build_source(images=tmp_path / "photos").items()] == ["photos"]
    with pytest.raises(SourceError, match=r"dataset name 'a/b': use letters, .* \(e.g. 'a_b'\)"):
        FolderSource(tmp_path / "photos", "a/b")
