"""The demo set: seeded, labelled as drawn, seen/unseen split, LLM-style imperfect captions."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from segmentation.demo import DemoSpec, generate_image, images_showing_unseen, write_demo
from segmentation.demo.descriptions import NEAR_SHAPES
from segmentation.demo.scenes import (
    CLASSES,
    NOTICEABLE_PIXELS,
    SEEN_SHAPES,
    SHAPES,
    UNSEEN_SHAPES,
)


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    write_demo(DemoSpec(seed=3, num_train=12, num_val=6), root, progress=False)
    return root


def _digest(sample) -> str:
    return hashlib.sha256(
        sample.image.tobytes() + sample.labels.tobytes() + sample.caption.encode()
    ).hexdigest()


def test_same_seed_same_sample_other_seed_other_sample() -> None:
    first = generate_image(DemoSpec(seed=7), "train", 4)
    assert _digest(first) == _digest(generate_image(DemoSpec(seed=7, num_train=1), "train", 4))
    assert _digest(first) != _digest(generate_image(DemoSpec(seed=8), "train", 4))


def test_files_captions_and_ids_line_up(demo_root) -> None:
    captions = [
        json.loads(line) for line in (demo_root / "captions.jsonl").read_text().splitlines()
    ]
    assert [c["id"] for c in captions[:2]] == ["train/00000.png", "train/00001.png"]
    assert len(captions) == 18 and captions[-1]["id"] == "val/00005.png"
    for record in captions:
        image = Image.open(demo_root / "images" / record["id"])
        labels = np.asarray(Image.open(demo_root / "labels" / record["id"]))
        assert image.size == (64, 64) and image.mode == "RGB"
        assert labels.shape == (64, 64) and labels.max() < len(CLASSES)
        assert record["caption"].endswith(".")
    meta = json.loads((demo_root / "meta.json").read_text())
    assert meta["synthetic"] is True and meta["unseen"] == list(UNSEEN_SHAPES)
    assert meta["captions"] == "demo"
    readme = " ".join((demo_root / "README.md").read_text().split())
    assert "**synthetic descriptions written by rules**, not by a language model" in readme
    assert (demo_root / "classes.txt").read_text().split("\n")[:2] == ["background", "circle"]


def test_training_images_hold_only_seen_shapes() -> None:
    seen_ids = {CLASSES.index(name) for name in ("background", *SEEN_SHAPES)}
    for index in range(40):
        assert set(np.unique(generate_image(DemoSpec(), "train", index).labels)) <= seen_ids
    val_ids = set().union(
        *(np.unique(generate_image(DemoSpec(), "val", i).labels) for i in range(40))
    )
    assert {CLASSES.index(name) for name in UNSEEN_SHAPES} <= val_ids


def test_label_map_counts_each_objects_visible_pixels() -> None:
    sample = generate_image(DemoSpec(seed=1), "val", 2)
    for shape in {obj["shape"] for obj in sample.objects}:
        visible = sum(obj["visible_pixels"] for obj in sample.objects if obj["shape"] == shape)
        assert (sample.labels == CLASSES.index(shape)).sum() == visible


def test_captions_vary_and_err_like_an_llm() -> None:
    samples = [generate_image(DemoSpec(seed=0), "train", index) for index in range(200)]
    objects = [obj for sample in samples for obj in sample.objects]
    named = [obj for obj in objects if obj["described_size"] is not None]
    for sample in samples:
        for obj in sample.objects:
            if obj["described_size"] is not None:
                assert f"{obj['described_size']} " in sample.caption
                assert obj["colour"] in sample.caption
                assert obj["described_name"] in sample.caption
    assert len({sample.caption.split(" ")[0] for sample in samples}) >= 3
    assert 0.05 < 1 - len(named) / len(objects) < 0.4  # missed: hidden ones and some visible ones
    wrong_size = sum(obj["described_size"] != obj["size"] for obj in named) / len(named)
    assert 0.05 < wrong_size < 0.25
    assert any(obj["visible_pixels"] < 0.5 * np.pi * obj["radius"] ** 2 for obj in objects)
    assert any("partly covers" in sample.caption for sample in samples)


def test_captions_now_and_then_call_a_shape_by_a_similar_shapes_name() -> None:
    samples = [generate_image(DemoSpec(seed=0), "val", index) for index in range(200)]
    named = [obj for sample in samples for obj in sample.objects if obj["described_name"]]
    wrong = [obj for obj in named if obj["described_name"] != obj["shape"]]
    assert 0.03 < len(wrong) / len(named) < 0.15
    assert all(obj["described_name"] in NEAR_SHAPES[obj["shape"]] for obj in wrong)
    assert set(NEAR_SHAPES) == set(SHAPES)


def test_the_training_split_vocabulary_is_background_and_the_seen_shapes(demo_root) -> None:
    from segmentation.datasets.demo import LLMFormerDemoDataset

    train = LLMFormerDemoDataset(str(demo_root), split="train", pipeline=[])
    val = LLMFormerDemoDataset(str(demo_root), split="val", pipeline=[], test_mode=True)
    assert list(train.metainfo["classes"]) == ["background", *SEEN_SHAPES]
    assert list(val.metainfo["classes"]) == list(CLASSES)
    assert list(val.metainfo["seen_classes"]) == list(SEEN_SHAPES)
    assert list(val.metainfo["unseen_classes"]) == list(UNSEEN_SHAPES)


def test_the_showcase_is_the_first_validation_images_with_a_noticeable_unseen_shape(
    demo_root,
) -> None:
    scenes = [json.loads(line) for line in (demo_root / "scenes.jsonl").open()]
    expected = [
        demo_root / "images" / scene["id"]
        for scene in scenes
        if scene["id"].startswith("val/")
        and any(
            obj["shape"] in UNSEEN_SHAPES and obj["visible_pixels"] >= NOTICEABLE_PIXELS
            for obj in scene["objects"]
        )
    ]
    assert 2 <= len(expected) < 6
    assert images_showing_unseen(demo_root, 2) == expected[:2]
    assert images_showing_unseen(demo_root, 6) == expected
    assert all(path.exists() for path in expected)
