"""segmentation.inference: pictures in any orientation/mode/size -> label maps at original size."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from segmentation.inference import (
    CaptionPriors,
    ImageLoadError,
    PriorsUnavailable,
    SegmentationResult,
    Segmenter,
    VocabularyError,
    evaluation_resize_steps,
    output_paths,
    resize_for_model,
    segment_files,
    vocabulary_from_priors,
)

CONFIG = Path("segmentation/configs/llmformer_tiny_demo.py")


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory, write_random_checkpoint) -> Segmenter:
    """The tiny demo model with random weights, saved and reloaded as an MMEngine checkpoint."""
    checkpoint = write_random_checkpoint(tmp_path_factory.mktemp("ckpt") / "random.pth")
    return Segmenter(CONFIG, checkpoint, max_side=64)


def _gradient(width: int, height: int) -> np.ndarray:
    """An RGB picture whose colour changes across it, so orientation is visible in the pixels."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    return np.stack([x + 0 * y, y + 0 * x, np.full((height, width), 40.0)], -1).astype(np.uint8)


def read_rgb(path: Path) -> np.ndarray:
    """The loader these tests hand `segment_files` (the CLI hands it stage 1's)."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except OSError as error:
        raise ImageLoadError(f"cannot read {path} as a picture: {error}") from None


def test_resize_shrinks_the_long_side_and_never_enlarges() -> None:
    assert resize_for_model(np.zeros((4000, 6000, 3), np.uint8), 640).shape == (427, 640, 3)
    assert resize_for_model(np.zeros((30, 50, 3), np.uint8), 640).shape == (30, 50, 3)


EVAL_SCALE_CONFIG = """
_base_ = [{base!r}]
test_dataloader = dict(
    dataset=dict(
        pipeline=[
            dict(type="LoadImageFromFile"),
            dict(type="Resize", scale=(256, 48), keep_ratio=True),
            dict(type="PackLLMFormerInputs"),
        ]
    )
)
"""


@pytest.fixture(scope="module")
def eval_scale_segmenter(tmp_path_factory, write_random_checkpoint) -> Segmenter:
    """The tiny demo model with a test pipeline that fixes the short side at 48 px."""
    folder = tmp_path_factory.mktemp("eval_scale")
    config = folder / "eval_scale.py"
    config.write_text(EVAL_SCALE_CONFIG.format(base=str(CONFIG.resolve())))
    return Segmenter(config, write_random_checkpoint(folder / "random.pth"))


def test_segment_feeds_pictures_at_the_eval_pipelines_scale(eval_scale_segmenter, tmp_path) -> None:
    from mmcv.transforms import Compose

    rgb = _gradient(300, 200)
    fed = eval_scale_segmenter.model_input(rgb)
    assert fed.shape == (48, 72, 3)  # short side 48, as evaluation; not the long side capped
    path = tmp_path / "picture.png"
    Image.fromarray(rgb).save(path)
    steps = eval_scale_segmenter.resize_steps
    pipeline = Compose([dict(type="LoadImageFromFile"), *steps])  # what `llmformer eval` runs
    evaluated = pipeline({"img_path": str(path)})["img"][:, :, ::-1]  # BGR -> RGB
    np.testing.assert_array_equal(fed, evaluated)


def test_the_eval_scale_is_read_from_the_configs_test_pipeline(segmenter) -> None:
    from mmengine.config import Config

    paper = Config.fromfile("segmentation/configs/llmformer_vitl14_336_coco-stuff171.py")
    assert evaluation_resize_steps(paper) == [
        dict(type="Resize", scale=(2560, 640), keep_ratio=True)
    ]
    assert segmenter.resize_steps == []  # the demo set is evaluated at its own 64 px
    assert segmenter.model_input(_gradient(50, 40)).shape == (40, 50, 3)
    assert segmenter.model_input(_gradient(300, 200)).shape == (43, 64, 3)  # --max-side 64


def test_the_label_map_is_the_argmax_of_scores_upsampled_to_the_picture(
    segmenter, monkeypatch
) -> None:
    """Columns alternate between classes 0 and 1 at the model's scale, class 2 scores 0.6
    everywhere: between two columns the upsampled scores of 0 and 1 fall to about 0.5, so
    class 2 wins there, which no upsampling of the label map itself could give."""
    picture = _gradient(200, 120)
    fed_shape = segmenter.model_input(picture).shape[:2]
    assert fed_shape == (38, 64)  # padded to 64 x 64 for the model
    even = (torch.arange(fed_shape[1]) % 2 == 0).float().expand(*fed_shape)
    crafted = torch.stack([even, 1 - even, torch.full(fed_shape, 0.6)])[None]

    def scores(inputs, metas, priors, vocabulary):
        padded = torch.zeros(1, 3, *inputs.shape[2:])
        padded[:, 0] = 5.0  # padding: it must be cropped, not stretched over the picture
        padded[:, :, : fed_shape[0], : fed_shape[1]] = crafted
        return padded

    monkeypatch.setattr(segmenter.model, "encode_decode", scores)
    result = segmenter.segment(picture, ["a", "b", "c"])
    upsampled = F.interpolate(crafted, size=(120, 200), mode="bilinear", align_corners=False)
    np.testing.assert_array_equal(result.label_map, upsampled[0].argmax(0).numpy())
    assert set(np.unique(result.label_map).tolist()) == {0, 1, 2}


def test_vocabulary_from_priors_keeps_distinct_objects_in_order_then_background() -> None:
    priors = {"objects": [{"name": "dog"}, {"name": "sofa"}, {"name": "dog"}]}
    assert vocabulary_from_priors(priors) == ["dog", "sofa", "background"]
    named = {"objects": [{"name": "Background"}, {"name": "dog"}]}
    assert vocabulary_from_priors(named) == ["Background", "dog"]
    with pytest.raises(VocabularyError, match="names no object"):
        vocabulary_from_priors({"objects": [{"name": " "}]})


def test_class_areas_sum_to_one_and_count_pixels() -> None:
    labels = np.array([[0, 0, 2, 2], [0, 0, 2, 2]], np.uint16)
    result = SegmentationResult(labels, ("cat", "dog", "sky"))
    assert [(c.name, c.area) for c in result.classes] == [("cat", 0.5), ("dog", 0.0), ("sky", 0.5)]
    summary = result.to_dict()
    assert (summary["width"], summary["height"]) == (4, 2)
    assert summary["classes"][2] == {"id": 2, "name": "sky", "area": 0.5}


def test_segment_returns_labels_at_the_original_size(segmenter) -> None:
    rgb = _gradient(300, 200)
    result = segmenter.segment(rgb, ["cat", " dog ", "sky,heaven"], None)
    assert result.label_map.shape == (200, 300)
    assert result.vocabulary == ("cat", "dog", "sky")
    assert int(result.label_map.max()) < 3
    assert sum(c.area for c in result.classes) == pytest.approx(1.0)


def test_segment_uses_priors_and_rejects_an_empty_vocabulary(segmenter) -> None:
    priors = {
        "objects": [{"name": "dog", "span": "a dog", "count": 1}],
        "attributes": [{"object": 0, "value": "brown", "kind": "color"}],
        "relations": [],
    }
    result = segmenter.segment(_gradient(64, 48), ["dog"], priors)
    assert result.label_map.shape == (48, 64)
    assert set(np.unique(result.label_map).tolist()) == {0}
    with pytest.raises(VocabularyError, match="empty"):
        segmenter.segment(_gradient(8, 8), [" ", ""], None)


def test_segment_without_captions_runs_the_prior_free_path(segmenter) -> None:
    """`llmformer segment` with no --captions and no --captioner: no boost and no pointer term,
    the labels of the same model with both switched off; a caption naming the class it labels
    least does move them (the terms are live)."""
    picture, vocabulary = _gradient(64, 48), ["circle", "square", "hexagon", "background"]
    head = segmenter.model.decode_head
    without_captions = segmenter.segment(picture, vocabulary, None).label_map
    rarest = vocabulary[int(np.bincount(without_captions.ravel(), minlength=3)[:3].argmin())]
    named = {"objects": [{"name": rarest, "span": f"a {rarest}", "count": 1}]}
    with_caption = segmenter.segment(picture, vocabulary, named).label_map
    boost, pointer = head.prior_class_boost, head.name_pointer
    assert boost > 0 and pointer is not None
    try:
        head.prior_class_boost, head.name_pointer = 0.0, None
        prior_free = segmenter.segment(picture, vocabulary, None).label_map
    finally:
        head.prior_class_boost, head.name_pointer = boost, pointer
    np.testing.assert_array_equal(without_captions, prior_free)
    assert not np.array_equal(with_caption, without_captions)


def test_segment_files_writes_outputs_and_skips_bad_pictures(segmenter, tmp_path, capsys) -> None:
    large = tmp_path / "large.jpg"
    Image.fromarray(_gradient(6000, 4000)).save(large, quality=80)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    small = tmp_path / "small.png"
    Image.fromarray(_gradient(40, 30)).save(small)
    out = tmp_path / "out"
    outcomes = segment_files(
        segmenter, [large, broken, small], out, ["cat", "dog"], progress=False, load=read_rgb
    )
    assert [o.error is None for o in outcomes] == [True, False, True]
    assert f"skipped {broken}: cannot read" in capsys.readouterr().err
    with Image.open(out / "large_labels.png") as labels:
        assert labels.size == (6000, 4000)
    with Image.open(out / "large_overlay.png") as overlay:
        assert overlay.height == 4000 and overlay.width > 6000  # the picture, then the legend
        assert overlay.getpixel((10, 3990)) != (255, 255, 255)
    summary = json.loads((out / "large.json").read_text())
    assert summary["image"] == str(large)
    assert sum(c["area"] for c in summary["classes"]) == pytest.approx(1.0)
    assert sorted(p.name for p in out.iterdir()) == [
        "large.json",
        "large_labels.png",
        "large_overlay.png",
        "small.json",
        "small_labels.png",
        "small_overlay.png",
    ]
    assert set(out.iterdir()) < set(output_paths(out, [large, broken, small]))


def test_segment_files_takes_each_vocabulary_from_its_priors(
    segmenter, tmp_path, monkeypatch
) -> None:
    pictures = [tmp_path / "a" / "x.png", tmp_path / "b" / "x.png", tmp_path / "c.png"]
    for picture in pictures:
        picture.parent.mkdir(exist_ok=True)
        Image.fromarray(_gradient(32, 32)).save(picture)
    captions = {pictures[0]: "a red ball", pictures[1]: "a cube and a ball"}

    def describe(path: Path, rgb: np.ndarray) -> CaptionPriors:
        if path not in captions:
            raise PriorsUnavailable("no caption")
        names = captions[path].replace("a ", "").replace("red ", "").split(" and ")
        return CaptionPriors(captions[path], {"objects": [{"name": n} for n in names]})

    passed: list[list[str]] = []
    predict = segmenter.model.predict

    def spy(inputs, data_samples, vocabulary):
        passed.append(list(vocabulary))
        return predict(inputs, data_samples, vocabulary)

    monkeypatch.setattr(segmenter.model, "predict", spy)
    outcomes = segment_files(
        segmenter, pictures, tmp_path / "out", None, describe, False, load=read_rgb
    )
    assert [o.error for o in outcomes] == [None, None, "no caption"]
    assert passed == [["ball", "background"], ["cube", "ball", "background"]]
    first = json.loads((tmp_path / "out" / "x.json").read_text())
    second = json.loads((tmp_path / "out" / "x-2.json").read_text())
    assert (first["vocabulary"], first["caption"]) == (["ball", "background"], "a red ball")
    assert second["vocabulary"] == ["cube", "ball", "background"]
    for summary in (first, second):
        assert summary["classes"][-1]["name"] == "background"
        assert sum(c["area"] for c in summary["classes"]) == pytest.approx(1.0)
