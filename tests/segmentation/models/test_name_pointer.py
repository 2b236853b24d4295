"""The prior name pointer: matching queries to object priors by attribute words, and the pointed
class mass entering the class logits and the loss."""

from __future__ import annotations

import math

import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from segmentation.models.llmformer_head import CLIPFeatures, HeadInputs, PriorClassTerms
from segmentation.models.name_pointer import PriorNamePointer, pointed_class_mass
from segmentation.text.vocabulary import VocabularyEmbedding, normalize_vocabulary
from segmentation.transforms.priors import PriorGraph


def build(tiny, boost: float = 0.0, pointer: dict | None = None):
    cfg = tiny.model_cfg(prior_class_boost=boost)
    cfg["decode_head"]["name_pointer"] = pointer
    init_default_scope("mmseg")
    torch.manual_seed(0)
    return MODELS.build(cfg).eval()


def test_pointer_weights_cover_null_and_present_objects_only() -> None:
    torch.manual_seed(0)
    pointer = PriorNamePointer(dim=8, text_dims=6)
    attributes = torch.randn(2, 3, 6)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    weights = pointer(torch.randn(2, 5, 8), attributes, mask)
    assert weights.shape == (2, 5, 4)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 5))
    assert (weights[0, :, 3] == 0).all() and (weights[1, :, 2:] == 0).all()
    assert (weights[0, :, :3] > 0).all()


def test_a_query_points_at_the_object_whose_attributes_match_it() -> None:
    pointer = PriorNamePointer(dim=2, text_dims=2)
    with torch.no_grad():
        pointer.query_proj.weight.copy_(torch.eye(2) * 10)
        pointer.query_proj.bias.zero_()
        pointer.key_proj.weight.copy_(torch.eye(2))
        pointer.key_proj.bias.zero_()
        pointer.null_key.zero_()
    attributes = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # "red" and "blue", say
    queries = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]])  # a blue region, then a red one
    weights = pointer(queries, attributes, torch.ones(1, 2, dtype=torch.bool))
    assert weights[0].argmax(-1).tolist() == [2, 1]


def test_pointed_class_mass_sums_the_weights_of_what_each_entry_stands_for() -> None:
    weights = torch.tensor([[[0.1, 0.6, 0.3]]])  # null, object 0, object 1
    # classes: background, dog, cat; the null stands for background and the unnamed cat
    object_classes = torch.tensor([[[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]]])
    mass = pointed_class_mass(weights, object_classes)
    torch.testing.assert_close(mass, torch.tensor([[[0.1, 0.9, 0.1]]]))


def test_object_classes_map_each_object_and_give_the_null_the_rest(tiny) -> None:
    model = build(tiny, pointer={})
    vocabulary = normalize_vocabulary(["dog", "cat, kitten", "sofa", "background"])
    rows = model.object_classes(vocabulary, PriorGraph(objects=("kitten", "dog", "dog")))
    assert rows.tolist() == [
        [0.0, 0.0, 1.0, 1.0],
        [0.0, 1.0, 0.0, 0.0],
        [1.0, 0.0, 0.0, 0.0],
        [1.0, 0.0, 0.0, 0.0],
    ]
    assert model.object_classes(vocabulary, PriorGraph.EMPTY).tolist() == [[1.0] * 4]


def test_prior_terms_on_hand_set_logits_equal_the_formula(tiny) -> None:
    head = build(tiny, boost=4.0, pointer=dict(weight=2.0, floor=0.05)).decode_head
    logits = torch.zeros(1, 2, 4)  # three classes, void last
    presence = torch.tensor([[1.0, 1.0, 0.0]])
    pointed = torch.tensor([[[0.9, 0.1, 0.0], [0.0, 1.0, 0.0]]])
    terms = head.add_prior_terms(logits, PriorClassTerms(presence, pointed))

    def term(mass: float) -> float:
        return 2 * math.log((mass + 0.05) / 1.05)

    expected = torch.tensor(
        [
            [term(0.9), term(0.1), -4 + term(0.0), 0.0],
            [term(0.0), term(1.0), -4 + term(0.0), 0.0],
        ]
    )
    torch.testing.assert_close(terms[0], expected)


def test_prior_boost_alone_lowers_only_the_classes_the_priors_do_not_name(tiny) -> None:
    head = build(tiny, boost=4.0).decode_head
    logits = torch.zeros(1, 2, 4)
    boosted = head.add_prior_terms(logits, PriorClassTerms(torch.tensor([[1.0, 0.0, 0.0]]), None))
    torch.testing.assert_close(boosted, torch.tensor([0.0, -4.0, -4.0, 0.0]).expand(1, 2, 4))


def test_pointer_loss_is_the_mean_negative_log_mass_on_matched_classes(tiny) -> None:
    head = build(tiny, pointer=dict(loss_weight=0.5)).decode_head
    pointed = torch.tensor([[[0.5, 0.5], [0.2, 0.8], [0.9, 0.1]]])
    labels = torch.tensor([[0, 1, 1]])
    matched = torch.tensor([[True, True, False]])
    loss = head._pointer_loss(pointed, labels, matched, num_masks=2.0)
    assert loss.item() == pytest.approx(0.5 * -(math.log(0.5) + math.log(0.8)) / 2, rel=1e-5)


def test_pointer_trains_at_every_step_and_gets_gradient(tiny) -> None:
    model = build(tiny, pointer={}).train()
    model.set_vocabulary(["sky", "grass", "dog", "sofa"])
    losses = model.loss(tiny.make_images(2, 32, 32), tiny.make_samples(2, 32, 32))
    pointer_losses = [name for name in losses if name.endswith("loss_name_pointer")]
    assert len(pointer_losses) == 1 + len(model.decode_head.layers)
    sum(losses[name] for name in pointer_losses).backward()
    pointer = model.decode_head.name_pointer
    assert pointer.key_proj.weight.grad.abs().sum() > 0
    assert pointer.query_proj.weight.grad.abs().sum() > 0


def test_pointer_predicts_with_a_vocabulary_per_image(tiny) -> None:
    model = build(tiny, pointer={})
    model.set_vocabulary(["sky", "grass", "dog", "sofa"])
    model.test_cfg = dict(mode="whole", vocabulary_free=True)
    samples = tiny.make_samples(2, 32, 32)
    samples[1].priors = PriorGraph(objects=("grass", "cat"), attributes=((1, "grey"),))
    results = model.predict(tiny.make_images(2, 32, 32), samples)
    assert results[1].metainfo["vocabulary"] == ["grass", "cat", "background"]
    assert results[1].seg_logits.data.shape[-2:] == (32, 32)


def test_call_classes_pad_object_classes_to_the_batch_and_derive_presence(tiny) -> None:
    model = build(tiny, boost=3.0, pointer={})
    vocabulary = normalize_vocabulary(["dog", "sofa", "background"])
    graphs = [PriorGraph(objects=("dog", "sofa", "dog")), PriorGraph(objects=("sofa",))]
    classes = model.call_classes([vocabulary] * 2, graphs)
    assert classes.object_classes.shape == (2, 4, 3)
    assert classes.object_classes[1].tolist() == [
        [1.0, 0.0, 1.0],
        [0.0, 1.0, 0.0],
        [0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0],
    ]
    assert classes.presence.tolist() == [[1.0, 1.0, 1.0], [0.0, 1.0, 1.0]]


def test_pointer_settings_are_checked(tiny) -> None:
    with pytest.raises(ValueError, match=r"unknown keys \['wieght'\]"):
        build(tiny, pointer=dict(wieght=2.0))
    with pytest.raises(ValueError, match=r"floor must be > 0, got 0\.0"):
        build(tiny, pointer=dict(floor=0.0))


def test_a_nameless_object_stands_for_what_the_null_stands_for(tiny) -> None:
    model = build(tiny, pointer={})
    vocabulary = normalize_vocabulary(["dog", "sofa", "background"])
    rows = model.object_classes(vocabulary, PriorGraph(objects=("dog", " ")))
    assert rows.tolist() == [[0.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]


def test_the_union_of_per_image_vocabularies_gives_each_image_its_own_vocabularys_logits(
    tiny,
) -> None:
    model = build(tiny, boost=2.0, pointer={})
    vocabularies = [
        normalize_vocabulary(["dog", "sofa", "background"]),
        normalize_vocabulary(["background", "cat", "dog"]),
    ]
    graphs = [
        PriorGraph(objects=("dog", "sofa"), attributes=((0, "brown"),)),
        PriorGraph(objects=("cat",), attributes=((0, "grey"),)),
    ]
    features = model.extract_feat(tiny.make_images(2, 32, 32))
    union = model.call_classes(vocabularies, graphs)
    assert union.batch.columns == ((0, 1, 2), (2, 3, 0))
    together = model.decode_head(union.head_inputs(features, model.prior_encoder(graphs)))
    for image, columns in enumerate(union.batch.columns):
        classes = model.call_classes(vocabularies[image : image + 1], graphs[image : image + 1])
        inputs = classes.head_inputs(
            [level[image : image + 1] for level in features],
            model.prior_encoder(graphs[image : image + 1]),
        )
        alone = model.decode_head(inputs)
        logits = together.class_logits[-1][image]
        torch.testing.assert_close(logits[:, [*columns, -1]], alone.class_logits[-1][0])
        assert logits[:, :-1][:, ~union.valid[image]].isneginf().all()
        torch.testing.assert_close(
            together.prior_terms[-1].pointed[image][:, columns], alone.prior_terms[-1].pointed[0]
        )


def test_the_pointer_reaches_clips_logits_in_the_ensemble(tiny) -> None:
    head = build(tiny, pointer=dict(weight=20.0)).decode_head
    head.clip_ensemble = {"alpha": 1.0, "beta": 1.0}  # all CLIP: the learnt logits drop out
    pointed = torch.tensor([[[0.0, 0.0, 1.0]] * 4])  # every query points at class 2
    dense = torch.nn.functional.normalize(torch.randn(1, 16, 4, 4), dim=1)
    embeddings = torch.nn.functional.normalize(torch.randn(3, 16), dim=1)
    vocabulary = VocabularyEmbedding(embeddings, torch.arange(3), 3)
    clip = CLIPFeatures(dense, torch.tensor(0.0), torch.tensor([True, False, False]))
    inputs = HeadInputs((), None, vocabulary, clip=clip)
    logits = torch.zeros(1, 4, 4)
    masks = torch.randn(1, 4, 8, 8)
    with_pointer = head.ensemble_with_clip(logits, masks, PriorClassTerms(None, pointed), inputs)
    assert with_pointer[..., :-1].argmax(-1).tolist() == [[2, 2, 2, 2]]
    without = head.ensemble_with_clip(logits, masks, PriorClassTerms(), inputs)
    assert (without[..., 2] < with_pointer[..., 2]).all()


def test_the_segmentor_embeds_attribute_words_only_for_the_pointer(tiny) -> None:
    graph = PriorGraph(objects=("dog", "ball"), attributes=((0, "brown"),))
    with_pointer = build(tiny, pointer=dict()).prior_encoder([graph])
    without = build(tiny).prior_encoder([graph])
    assert with_pointer.object_attributes.shape == with_pointer.objects.shape
    assert without.object_attributes is None


def test_an_image_whose_priors_name_nothing_gets_no_prior_term(tiny) -> None:
    """What a captioner that failed, or `segment` without captions, gets: the boost and the
    pointer add exactly nothing, in a batch where another image's priors do name classes."""
    model = build(tiny, boost=4.0, pointer={})
    model.set_vocabulary(["sky", "grass", "dog", "sofa"])
    images = tiny.make_images(2, 32, 32)
    samples = tiny.make_samples(2, 32, 32, priors=[tiny.RICH_PRIORS, PriorGraph.EMPTY])
    with_terms = [r.seg_logits.data for r in model.predict(images, samples)]
    model.decode_head.prior_class_boost = 0.0
    model.decode_head.name_pointer = None
    without_terms = [r.seg_logits.data for r in model.predict(images, samples)]
    torch.testing.assert_close(with_terms[1], without_terms[1])
    assert not torch.allclose(with_terms[0], without_terms[0])
