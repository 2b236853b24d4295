"""Both open-vocabulary sources in the tiny model: the prior class boost and the CLIP classifier."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from segmentation.models.clip_classifier import clip_logits, geometric_ensemble, mask_pool
from segmentation.models.llmformer_head import (
    CLIPFeatures,
    HeadInputs,
    PriorClassTerms,
    mask_invalid_classes,
)
from segmentation.text.vocabulary import VocabularyEmbedding, normalize_vocabulary
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
    """What the head got and gave in its last call: the segmentor's CallClasses, HeadInputs,
    forward's outputs, and the class logits `predict_by_feat` turned into scores."""

    def __init__(self, model) -> None:
        head = model.decode_head
        forward, predict_by_feat = head.forward, head.predict_by_feat
        call_classes = model.call_classes

        def recorded_call_classes(vocabularies, graphs):
            self.classes = call_classes(vocabularies, graphs)
            return self.classes

        def recorded_forward(inputs):
            self.inputs, self.outputs = inputs, forward(inputs)
            return self.outputs

        def scored(seg_logits, metas, class_valid=None):
            self.scored_logits = seg_logits[0]
            return predict_by_feat(seg_logits, metas, class_valid)

        head.forward, head.predict_by_feat = recorded_forward, scored
        model.call_classes = recorded_call_classes


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
    `boost * (presence - 1)` added to the CLIP side as to the learnt side. For one `image`, over
    its own vocabulary's classes (then void)."""
    inputs, outputs = calls.inputs, calls.outputs
    logits, vocabulary, seen = outputs.class_logits[-1], inputs.vocabulary, inputs.clip.seen
    presence = inputs.class_presence
    pooled = mask_pool(inputs.clip.dense, outputs.mask_logits[-1])
    if image is not None:
        columns = list(calls.classes.batch.columns[image])
        logits, seen, pooled = logits[image][:, [*columns, -1]], seen[columns], pooled[image]
        vocabulary = model.embed_vocabulary(calls.classes.batch.vocabularies[image])
        presence = None if presence is None else presence[image, columns]
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
    columns = list(calls.classes.batch.columns[1])
    assert calls.inputs.clip.seen[columns].tolist() == [True, False, False]
    scored = calls.scored_logits[1]
    torch.testing.assert_close(scored[:, [*columns, -1]], clip_ensembled(model, calls, image=1))
    assert scored[:, :-1][:, ~calls.inputs.class_valid[1]].isneginf().all()


@pytest.mark.parametrize(("alpha", "beta"), [(0.0, 0.0), (0.4, 0.8), (1.0, 1.0)])
def test_classes_outside_an_images_vocabulary_never_win_nor_give_nan_in_the_clip_ensemble(
    tiny, alpha: float, beta: float
) -> None:
    """Their -inf logits give p_in = p_out = 0 (and 0 ** 0 = 1 at the weights 0 and 1); every
    other class gets what the head gives the image with its own vocabulary alone."""
    head = build(tiny, boost=3.0, clip=True).decode_head
    head.clip_ensemble = {"alpha": alpha, "beta": beta}
    torch.manual_seed(0)
    valid = torch.tensor([[True, False, True, False], [False, True, True, True]])
    presence = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0]])
    seen = torch.tensor([True, True, False, False])
    embeddings = F.normalize(torch.randn(4, 16), dim=1)
    dense = F.normalize(torch.randn(2, 16, 4, 4), dim=1)
    logits = mask_invalid_classes(torch.randn(2, 6, 5) * 10, valid)
    masks = torch.randn(2, 6, 8, 8)
    clip = CLIPFeatures(dense, torch.tensor(2.0), seen)
    vocabulary = VocabularyEmbedding(embeddings, torch.arange(4), 4)
    inputs = HeadInputs((), None, vocabulary, presence, clip, class_valid=valid)
    ensembled = head.ensemble_with_clip(logits, masks, PriorClassTerms(presence), inputs)
    assert not ensembled.isnan().any()
    assert torch.equal(ensembled[..., :-1].isneginf(), ~valid[:, None].expand(-1, 6, -1))
    assert valid.gather(1, ensembled[..., :-1].argmax(-1)).all()
    for image, own in enumerate(valid):
        columns = own.nonzero().flatten().tolist()
        count = len(columns)
        vocabulary = VocabularyEmbedding(embeddings[columns], torch.arange(count), count)
        clip = CLIPFeatures(dense[image : image + 1], torch.tensor(2.0), seen[columns])
        image_presence = presence[image : image + 1, columns]
        alone = head.ensemble_with_clip(
            logits[image : image + 1, :, [*columns, -1]],
            masks[image : image + 1],
            PriorClassTerms(image_presence),
            HeadInputs((), None, vocabulary, image_presence, clip),
        )
        torch.testing.assert_close(ensembled[image, :, [*columns, -1]], alone[0])


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
