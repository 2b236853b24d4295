"""OpenIoUMetric against an independent numpy computation, mmseg's IoUMetric and hand values."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
import torch
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS

import segmentation  # noqa: F401  (registers the plugin)
from segmentation.datasets import IGNORE_INDEX
from segmentation.evaluation import class_similarity, confusion_matrix, open_iou_per_class
from segmentation.text import TextEncoder


def _samples(preds, gts) -> list[dict]:
    return [
        {
            "pred_sem_seg": {"data": torch.as_tensor(p)[None]},
            "gt_sem_seg": {"data": torch.as_tensor(g)[None]},
        }
        for p, g in zip(preds, gts, strict=True)
    ]


def _evaluate(metric, preds, gts, classes) -> dict:
    metric.dataset_meta = {"classes": classes}
    metric.process({}, _samples(preds, gts))
    return metric.evaluate(len(preds))


def _numpy_miou(preds, gts, num_classes: int) -> float:
    """Plain per-class loop over all images; classes in neither labels nor predictions skipped."""
    ious = []
    for c in range(num_classes):
        inter = union = 0
        for pred, gt in zip(preds, gts, strict=True):
            valid = gt != IGNORE_INDEX
            inter += int(((pred == c) & (gt == c) & valid).sum())
            union += int((((pred == c) | (gt == c)) & valid).sum())
        if union:
            ious.append(inter / union)
    return round(100 * float(np.mean(ious)), 2)


@pytest.fixture
def predictions_847():
    rng = np.random.default_rng(0)
    gts, preds = [], []
    for _ in range(4):
        gt = rng.integers(250, 270, (20, 30)).astype(np.int64)  # straddles 255
        gt[rng.random(gt.shape) < 0.2] = IGNORE_INDEX
        pred = np.where(rng.random(gt.shape) < 0.6, gt, rng.integers(250, 275, gt.shape))
        pred[gt == IGNORE_INDEX] = rng.integers(0, 847, int((gt == IGNORE_INDEX).sum()))
        gts.append(gt)
        preds.append(pred)
    return preds, gts


def test_miou_matches_independent_numpy_above_255_with_ignored_pixels(predictions_847) -> None:
    preds, gts = predictions_847
    classes = tuple(f"c{i}" for i in range(847))
    metrics = _evaluate(METRICS.build(dict(type="OpenIoUMetric")), preds, gts, classes)
    assert metrics["mIoU"] == _numpy_miou(preds, gts, 847)
    assert 20 < metrics["mIoU"] < 90
    assert "Open-mIoU" not in metrics


def test_miou_matches_mmseg_iou_metric_below_256_classes() -> None:
    rng = np.random.default_rng(1)
    gts = [rng.integers(0, 150, (16, 16)) for _ in range(3)]
    gts[0][:4] = IGNORE_INDEX
    preds = [np.where(rng.random(g.shape) < 0.5, g, rng.integers(0, 150, g.shape)) for g in gts]
    classes = tuple(f"c{i}" for i in range(150))
    ours = _evaluate(METRICS.build(dict(type="OpenIoUMetric")), preds, gts, classes)
    theirs = _evaluate(IoUMetric(ignore_index=IGNORE_INDEX), preds, gts, classes)
    assert ours["mIoU"] == pytest.approx(float(theirs["mIoU"]), abs=0.011)
    assert ours["aAcc"] == pytest.approx(float(theirs["aAcc"]), abs=0.011)


def test_open_miou_gives_partial_credit_by_similarity(tmp_path) -> None:
    # gt: 4 cat pixels; pred says "kitten" on 2 of them. s(kitten, cat) = 0.8.
    gt = np.array([[0, 0, 0, 0, 2, 2]])
    pred = np.array([[0, 0, 1, 1, 2, 2]])
    similarity = np.array([[1.0, 0.8, 0.0], [0.8, 1.0, 0.0], [0.0, 0.0, 1.0]])
    np.save(tmp_path / "s.npy", similarity)
    metric = METRICS.build(dict(type="OpenIoUMetric", similarity_file=str(tmp_path / "s.npy")))
    metrics = _evaluate(metric, [pred], [gt], ("cat", "kitten", "dog"))
    # IoU: cat 2/4, kitten 0/2, dog 1 -> 50.0; Open-IoU: cat (2 + 1.6)/4 = 0.9,
    # kitten 0/(0 + 2 * 0.2) = 0, dog 1 -> 63.33
    assert metrics["mIoU"] == 50.0
    assert metrics["Open-mIoU"] == 63.33


def test_open_iou_with_identity_similarity_is_iou(predictions_847) -> None:
    preds, gts = predictions_847
    confusion = sum(
        confusion_matrix(p, g, 847, IGNORE_INDEX) for p, g in zip(preds, gts, strict=True)
    )
    from segmentation.evaluation import iou_per_class

    np.testing.assert_allclose(open_iou_per_class(confusion, np.eye(847)), iou_per_class(confusion))


def test_predictions_outside_the_class_range_count_as_misses() -> None:
    confusion = confusion_matrix(np.array([5, 0, -1]), np.array([0, 0, 1]), 2, IGNORE_INDEX)
    assert confusion.tolist() == [[1, 0, 1], [0, 0, 1]]


def test_label_outside_the_class_range_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"outside 0\.\.1"):
        confusion_matrix(np.array([0]), np.array([7]), 2, IGNORE_INDEX)


def test_class_similarity_thresholds_and_keeps_the_diagonal() -> None:
    embeddings = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    similarity = class_similarity(embeddings, threshold=0.5)
    np.testing.assert_allclose(similarity, [[1, 0.8, 0], [0.8, 1, 0.6], [0, 0.6, 1]])


def test_seen_and_unseen_means_come_from_the_metainfo() -> None:
    metric = METRICS.build(dict(type="OpenIoUMetric"))
    metric.dataset_meta = {
        "classes": ("a", "b", "c"),
        "seen_classes": ["a", "b"],
        "unseen_classes": ["c"],
    }
    metric.process({}, _samples([np.array([[0, 1, 0]])], [np.array([[0, 1, 2]])]))
    metrics = metric.evaluate(1)
    assert metrics["mIoU_seen"] == 75.0 and metrics["mIoU_unseen"] == 0.0


def test_a_class_is_recognised_in_an_image_where_half_its_pixels_are_predicted_as_it() -> None:
    metric = METRICS.build(dict(type="OpenIoUMetric"))
    metric.dataset_meta = {
        "classes": ("background", "a", "b"),
        "seen_classes": ["a"],
        "unseen_classes": ["b"],
    }
    gts = [np.array([[1, 1, 2, 2]]), np.array([[2, 2, 2, 0]]), np.array([[1, 0, 0, 0]])]
    preds = [np.array([[1, 0, 2, 1]]), np.array([[2, 1, 1, 2]]), np.array([[2, 1, 1, 1]])]
    metric.process({}, _samples(preds, gts))
    metrics = metric.evaluate(3)
    # a: 1 of 2 pixels in image 0 (recognised), 0 of 1 in image 2; b: 1 of 2, then 1 of 3
    assert metrics["recognised_seen"] == 50.0 and metrics["recognised_unseen"] == 50.0


def test_bad_similarity_file_is_rejected_with_its_name(tmp_path) -> None:
    np.save(tmp_path / "bad.npy", np.zeros((2, 2)))
    metric = METRICS.build(dict(type="OpenIoUMetric", similarity_file=str(tmp_path / "bad.npy")))
    with pytest.raises(ValueError, match=r"bad\.npy must be \(2, 2\) with ones on the diagonal"):
        _evaluate(metric, [np.array([[0]])], [np.array([[0]])], ("a", "b"))


class _WordVectors(TextEncoder):
    """A stand-in text encoder: fixed 3-d vectors per word."""

    VECTORS: ClassVar[dict[str, list[float]]] = {
        "cat": [1.0, 0.0, 0.0],
        "kitten": [0.9, 0.1, 0.0],
        "sky": [0.0, 1.0, 0.0],
        "dog": [0.0, 0.0, 1.0],
        "background": [0.1, 0.8, 0.6],
    }
    embed_dim = 3
    name = "word-vectors"

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def encode_batch(self, texts: list[str]) -> torch.Tensor:
        return torch.tensor([self.VECTORS[text] for text in texts])


class _OtherWordVectors(_WordVectors):
    """Another encoder: it puts "kitten" next to "dog"."""

    VECTORS: ClassVar[dict[str, list[float]]] = {**_WordVectors.VECTORS, "kitten": [0.1, 0.0, 0.9]}
    name = "other-word-vectors"


def _metric_embedding_with(encoder: TextEncoder):
    metric = METRICS.build(dict(type="OpenIoUMetric"))
    metric.set_text_encoder(encoder)
    return metric


def test_vocabulary_free_names_are_scored_as_their_nearest_dataset_class() -> None:
    metric = _metric_embedding_with(_WordVectors())
    metric.dataset_meta = {"classes": ("cat", "sky", "dog")}
    sample = _samples([np.array([[0, 0, 1, 2]])], [np.array([[0, 0, 1, 2]])])[0]
    sample["vocabulary"] = ["kitten", "sky"]  # id 2 names nothing: counted as a miss
    metric.process({}, [sample])
    metrics = metric.evaluate(1)
    # cat 2/2, sky 1/1, dog 0/1 -> 66.67
    assert metrics["mIoU"] == 66.67
    assert metric.per_class["IoU"].tolist()[:2] == [1.0, 1.0]


def test_vocabulary_free_background_is_no_prediction_unless_the_dataset_has_it() -> None:
    gt = np.array([[0, 0, 1, 2]])
    pred = np.array([[0, 1, 1, 1]])  # "kitten", then three "background" pixels
    metric = _metric_embedding_with(_WordVectors())
    metric.dataset_meta = {"classes": ("cat", "sky", "dog")}
    sample = _samples([pred], [gt])[0]
    sample["vocabulary"] = ["kitten", "background"]
    metric.process({}, [sample])
    assert metric.evaluate(1)["mIoU"] == 16.67  # cat 1/2, sky 0/1, dog 0/1; sky gets no FP
    assert metric.per_class["IoU"].tolist() == [0.5, 0.0, 0.0]
    metric = _metric_embedding_with(_WordVectors())
    metric.dataset_meta = {"classes": ("cat", "background")}
    sample = _samples([pred], [np.array([[0, 1, 1, 1]])])[0]
    sample["vocabulary"] = ["kitten", "background"]
    metric.process({}, [sample])
    assert metric.evaluate(1)["mIoU"] == 100.0


def test_vocabulary_free_names_are_mapped_in_the_given_encoders_space() -> None:
    names, classes = ["kitten", "sky"], ("cat", "sky", "dog")
    metric = _metric_embedding_with(_WordVectors())
    metric.dataset_meta = {"classes": classes}
    pred = np.array([[0, 1, 2]])
    assert metric.map_to_dataset_classes(pred, names).tolist() == [[0, 1, 3]]
    metric.set_text_encoder(_OtherWordVectors())  # memoised embeddings of the first are dropped
    assert metric.map_to_dataset_classes(pred, names).tolist() == [[2, 1, 3]]


def test_named_predictions_without_a_text_encoder_fail_naming_the_hook() -> None:
    metric = METRICS.build(dict(type="OpenIoUMetric"))
    metric.dataset_meta = {"classes": ("cat", "sky")}
    sample = _samples([np.array([[0, 1]])], [np.array([[0, 1]])])[0]
    sample["vocabulary"] = ["kitten", "sky"]
    with pytest.raises(ValueError, match=r"no text encoder .* add EvaluatorTextEncoderHook"):
        metric.process({}, [sample])


def test_open_miou_similarities_come_from_the_given_encoder() -> None:
    metric = _metric_embedding_with(_WordVectors())
    metric.dataset_meta = {"classes": ("cat", "kitten", "sky")}
    close = 0.9 / np.sqrt(0.82)  # cos(cat, kitten) with _WordVectors
    np.testing.assert_allclose(metric.class_similarity()[0], [1.0, close, 0.0], rtol=1e-6)
    metric.set_text_encoder(_OtherWordVectors())  # cos 0.11: below the 0.5 threshold
    np.testing.assert_allclose(metric.class_similarity()[0], [1.0, 0.0, 0.0])


def test_per_image_class_counts_match_numpy_and_sum_to_the_class_iou(predictions_847) -> None:
    preds, gts = predictions_847
    metric = METRICS.build(dict(type="OpenIoUMetric"))
    samples = _samples(preds, gts)
    for index, sample in enumerate(samples):
        sample["img_id"] = f"val/{index}"
    metric.dataset_meta = {"classes": tuple(f"c{i}" for i in range(847))}
    metric.process({}, samples)
    metric.evaluate(len(samples))
    assert list(metric.per_image) == ["val/0", "val/1", "val/2", "val/3"]
    totals = np.zeros((3, 847), dtype=np.int64)
    for pred, gt, counts in zip(preds, gts, metric.per_image.values(), strict=True):
        valid = gt != IGNORE_INDEX
        in_either = [c for c in range(847) if ((pred == c) & valid).any() or (gt == c).any()]
        assert counts.classes.tolist() == in_either
        for c, *values in zip(
            counts.classes, counts.gt_pixels, counts.pred_pixels, counts.intersection, strict=True
        ):
            expected = [
                (gt == c).sum(),
                ((pred == c) & valid).sum(),
                ((pred == c) & (gt == c)).sum(),
            ]
            assert values == expected, c
            totals[:, c] += values
    union = totals[0] + totals[1] - totals[2]
    present = union > 0
    iou = metric.per_class["IoU"]
    np.testing.assert_allclose(
        totals[2][present] / union[present], iou[present], rtol=0, atol=1e-12
    )
    assert np.isnan(iou[~present]).all()


def test_per_image_counts_leave_out_predictions_outside_the_classes() -> None:
    from segmentation.evaluation.confusion import class_pixel_counts

    gt = np.array([[0, 0, 1, 255]])
    pred = np.array([[0, 7, 1, 2]])  # 7 is no class; the ignored pixel's 2 does not count
    cells = confusion_matrix(pred, gt, 3, 255).ravel()
    counts = class_pixel_counts(np.flatnonzero(cells), cells[cells > 0], 3)
    assert counts.classes.tolist() == [0, 1]
    assert counts.gt_pixels.tolist() == [2, 1]
    assert counts.pred_pixels.tolist() == [1, 1]
    assert counts.intersection.tolist() == [1, 1]


def test_a_group_with_no_ground_truth_occurrence_has_no_recognised_share() -> None:
    metric = METRICS.build(dict(type="OpenIoUMetric"))
    metric.dataset_meta = {"classes": ("a", "b"), "seen_classes": ["a"], "unseen_classes": ["b"]}
    metric.process({}, _samples([np.array([[0, 1]])], [np.array([[0, 0]])]))
    metrics = metric.evaluate(1)
    assert metrics["recognised_seen"] == 100.0 and np.isnan(metrics["recognised_unseen"])
