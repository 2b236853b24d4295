"""Both open-vocabulary sources in the tiny model: the prior class boost and the CLIP classifier."""

from __future__ import annotations

import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from segmentation.text.vocabulary import normalize_vocabulary
from segmentation.transforms.priors import PriorGraph

VOCABULARY = ["sky", "grass", "dog", "sofa"]


def build(tiny, boost: float = 0.0, clip: bool = False):
    cfg = tiny.model_cfg(prior_class_boost=boost)
    if clip:
        cfg["clip_classifier"] = dict(checkpoint=None, alpha=0.4, beta=0.8)
        cfg["training_classes"] = ["sky", "grass"]
    init_default_scope("mmseg")
    torch.manual_seed(0)
    return MODELS.build(cfg).eval()


def test_class_presence_marks_the_named_classes_and_background(tiny) -> None:
    model = build(tiny, boost=4.0)
    vocabulary = normalize_vocabulary(["dog", "cat, kitten", "sofa", "background"])
    named = model.class_presence(vocabulary, PriorGraph(objects=("kitten", "dog", "dog")))
    assert named.tolist() == [1.0, 1.0, 0.0, 1.0]
    unnamed = model.class_presence(vocabulary, PriorGraph.EMPTY)
    assert unnamed.tolist() == [1.0, 1.0, 1.0, 1.0]


def test_the_boost_reaches_training_losses_and_predictions(tiny) -> None:
    plain, boosted = build(tiny), build(tiny, boost=6.0)
    images = tiny.make_images(2, 32, 32)
    samples = tiny.make_samples(2, 32, 32)
    for model in (plain, boosted):
        model.set_vocabulary(VOCABULARY)
    losses = [m.loss(images, samples)["decode.loss_cls_ce"].item() for m in (plain, boosted)]
    assert losses[0] != pytest.approx(losses[1])
    scores = [m.predict(images, samples)[0].seg_logits.data for m in (plain, boosted)]
    assert not torch.allclose(scores[0], scores[1])


def test_clip_classifier_flags_seen_classes_and_changes_predictions(tiny) -> None:
    with_clip, without = build(tiny, clip=True), build(tiny)
    without.load_state_dict(with_clip.state_dict(), strict=False)
    images = tiny.make_images(2, 32, 32)
    samples = tiny.make_samples(2, 32, 32)
    classes = with_clip.call_classes([normalize_vocabulary(VOCABULARY)] * 2, None)
    assert classes.seen.tolist() == [True, True, False, False]
    scores = [
        m.predict(images, samples, vocabulary=VOCABULARY)[0].seg_logits.data
        for m in (with_clip, without)
    ]
    assert scores[0].shape == scores[1].shape == (4, 32, 32)
    assert not torch.allclose(scores[0], scores[1])


def test_clip_classifier_works_vocabulary_free(tiny) -> None:
    model = build(tiny, clip=True)
    model.set_vocabulary(VOCABULARY)
    model.test_cfg = dict(mode="whole", vocabulary_free=True)
    samples = tiny.make_samples(2, 32, 32)
    samples[1].priors = PriorGraph(objects=("grass", "cat"))
    results = model.predict(tiny.make_images(2, 32, 32), samples)
    assert results[1].metainfo["vocabulary"] == ["grass", "cat", "background"]


def test_clip_classifier_without_training_classes_is_refused(tiny) -> None:
    cfg = tiny.model_cfg()
    cfg["clip_classifier"] = dict(checkpoint=None)
    init_default_scope("mmseg")
    with pytest.raises(ValueError, match="training_classes"):
        MODELS.build(cfg)


def test_the_clip_tower_runs_once_per_image_batch_with_the_classifier_on(tiny) -> None:
    model = build(tiny, clip=True)
    model.set_vocabulary(VOCABULARY)
    calls = []
    model.backbone.tower.model.register_forward_hook(lambda *_: calls.append(1))
    images = tiny.make_images(2, 32, 32)
    model.predict(images, tiny.make_samples(2, 32, 32))
    assert len(calls) == 1
    tower = model.backbone.tower
    shared = model.backbone(images, tower.run(images))
    for alone, together in zip(model.backbone(images), shared, strict=True):
        torch.testing.assert_close(alone, together)
