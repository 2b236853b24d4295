"""Both open-vocabulary sources in the tiny model: the prior class boost and the CLIP classifier."""

from __future__ import annotations

import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from segmentation.models.clip_classifier import clip_logits, geometric_ensemble, mask_pool
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


class HeadCalls:
    """What the head got and gave in its last call: HeadInputs, forward's outputs, and the class
    logits `predict_by_feat` turned into scores."""

    def __init__(self, model) -> None:
        head = model.decode_head
        forward, predict_by_feat = head.forward, head.predict_by_feat

        def recorded_forward(inputs):
            self.inputs, self.outputs = inputs, forward(inputs)
            return self.outputs

        def scored(seg_logits, metas):
            self.scored_logits = seg_logits[0]
            return predict_by_feat(seg_logits, metas)

        head.forward, head.predict_by_feat = recorded_forward, scored


def test_class_presence_marks_the_named_classes_and_background(tiny) -> None:
    model = build(tiny, boost=4.0)
    vocabulary = normalize_vocabulary(["dog", "cat, kitten", "sofa", "background"])
    graphs = [PriorGraph(objects=("kitten", "dog", "dog")), PriorGraph.EMPTY]
    presence = model.call_classes([vocabulary] * 2, graphs).presence
    assert presence.tolist() == [[1.0, 1.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]]


@pytest.mark.parametrize("mode", ["loss", "predict"])
def test_the_boost_lowers_exactly_the_unnamed_classes_in_training_and_prediction(
    tiny, mode: str
) -> None:
    boost = 6.0
    images = tiny.make_images(2, 32, 32)
    samples = tiny.make_samples(2, 32, 32, priors=[PriorGraph(objects=("dog", "sofa"))] * 2)
    last_logits = []
    for model in (build(tiny), build(tiny, boost=boost)):
        model.set_vocabulary(VOCABULARY)
        calls = HeadCalls(model)
        getattr(model, mode)(images, samples)
        last_logits.append(calls.outputs.class_logits[-1])
    shift = last_logits[1] - last_logits[0]  # (B, Q, sky grass dog sofa void)
    expected = torch.tensor([-boost, -boost, 0.0, 0.0, 0.0]).expand_as(shift)
    torch.testing.assert_close(shift, expected, atol=1e-4, rtol=0)


def clip_ensembled(model, calls: HeadCalls, image: int | None = None) -> torch.Tensor:
    """The formula on the head's own tensors: FC-CLIP's ensemble of its last class logits with
    CLIP's logits of the dense features pooled under its last masks, the boost's
    `boost * (presence - 1)` added to the CLIP side as to the learnt side."""
    inputs, outputs = calls.inputs, calls.outputs
    logits, vocabulary, seen = outputs.class_logits[-1], inputs.vocabulary, inputs.clip.seen
    presence = inputs.class_presence
    pooled = mask_pool(inputs.clip.dense, outputs.mask_logits[-1])
    if image is not None:
        logits, vocabulary, seen, pooled = (
            logits[image],
            vocabulary[image],
            seen[image],
            pooled[image],
        )
        presence = None if presence is None else presence[image]
    out_vocab = clip_logits(pooled, vocabulary, inputs.clip.logit_scale)
    if presence is not None:
        out_vocab = out_vocab + model.decode_head.prior_class_boost * (presence - 1).unsqueeze(-2)
    return geometric_ensemble(logits, out_vocab, seen, alpha=0.4, beta=0.8)


@pytest.mark.parametrize("boost", [0.0, 6.0])
def test_predictions_score_the_clip_ensemble_with_seen_classes_flagged(tiny, boost: float) -> None:
    model = build(tiny, boost=boost, clip=True)
    calls = HeadCalls(model)
    samples = tiny.make_samples(2, 32, 32, priors=[PriorGraph(objects=("dog", "sofa"))] * 2)
    model.predict(tiny.make_images(2, 32, 32), samples, vocabulary=VOCABULARY)
    assert calls.inputs.clip.seen.tolist() == [True, True, False, False]
    if boost:
        assert calls.inputs.class_presence.tolist() == [[0.0, 0.0, 1.0, 1.0]] * 2
    torch.testing.assert_close(calls.scored_logits, clip_ensembled(model, calls))


def test_a_negative_boost_is_refused(tiny) -> None:
    with pytest.raises(ValueError, match=r"prior_class_boost must be >= 0, got -1\.0"):
        build(tiny, boost=-1.0)


def test_clip_classifier_works_vocabulary_free(tiny) -> None:
    model = build(tiny, clip=True)
    model.set_vocabulary(VOCABULARY)
    model.test_cfg = dict(mode="whole", vocabulary_free=True)
    samples = tiny.make_samples(2, 32, 32)
    samples[1].priors = PriorGraph(objects=("grass", "cat"))
    calls = HeadCalls(model)
    results = model.predict(tiny.make_images(2, 32, 32), samples)
    assert results[1].metainfo["vocabulary"] == ["grass", "cat", "background"]
    assert calls.inputs.clip.seen[1].tolist() == [True, False, False]
    torch.testing.assert_close(calls.scored_logits[1], clip_ensembled(model, calls, image=1))


def test_clip_classifier_without_training_classes_is_refused(tiny) -> None:
    cfg = tiny.model_cfg()
    cfg["clip_classifier"] = dict(checkpoint=None)
    init_default_scope("mmseg")
    with pytest.raises(ValueError, match="training_classes"):
        MODELS.build(cfg)


@pytest.mark.parametrize(
    ("ensemble", "error"),
    [
        (
            dict(aplha=0.5),
            r"clip_classifier got unknown keys \['aplha'\]; known: \['alpha', 'beta'\]",
        ),
        (dict(beta=1.5), r"clip_classifier beta must be in \[0, 1\], got 1\.5"),
    ],
)
def test_clip_ensemble_settings_are_checked_when_the_model_is_built(
    tiny, ensemble: dict, error: str
) -> None:
    cfg = tiny.model_cfg()
    cfg["clip_classifier"] = dict(checkpoint=None, **ensemble)
    cfg["training_classes"] = ["sky"]
    init_default_scope("mmseg")
    with pytest.raises(ValueError, match=error):
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
