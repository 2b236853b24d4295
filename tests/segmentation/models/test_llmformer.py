"""LLMFormer's segmentor and head on random tensors: shapes, gradients, module switches, priors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from segmentation.text.vocabulary import (
    BatchVocabulary,
    embed_vocabulary,
    normalize_vocabulary,
)
from segmentation.transforms.priors import PriorGraph

NUM_CLASSES = 4
NUM_STEPS = 4  # query init + 3 decoder layers
NUM_QUERIES = 6
RICH_PRIORS = PriorGraph(
    objects=("dog", "sofa", "ball"),
    attributes=((0, "brown"), (1, "red"), (2, "small")),
    relations=((0, "on", 1), (2, "under", 1)),
)
NO_RELATION_PRIORS = PriorGraph(objects=RICH_PRIORS.objects, attributes=RICH_PRIORS.attributes)


@pytest.mark.parametrize(("batch", "height", "width"), [(1, 64, 64), (2, 96, 64), (3, 64, 128)])
def test_forward_shapes_for_several_batch_and_image_sizes(
    tiny, model, batch, height, width
) -> None:
    samples = tiny.make_samples(batch, height, width)
    outputs = model._forward(tiny.make_images(batch, height, width), samples)
    assert len(outputs.class_logits) == len(outputs.mask_logits) == NUM_STEPS
    for class_logits, mask_logits in zip(outputs.class_logits, outputs.mask_logits, strict=True):
        assert class_logits.shape == (batch, NUM_QUERIES, NUM_CLASSES + 1)
        assert mask_logits.shape == (batch, NUM_QUERIES, height // 4, width // 4)


@pytest.mark.parametrize(("batch", "height", "width"), [(1, 64, 96), (2, 64, 64)])
def test_predict_returns_a_label_map_per_image_at_its_original_size(
    tiny, model, batch, height, width
):
    samples = tiny.make_samples(batch, height, width)
    results = model.predict(tiny.make_images(batch, height, width), samples)
    for result in results:
        assert result.pred_sem_seg.data.shape == (1, height, width)
        assert result.seg_logits.data.shape == (NUM_CLASSES, height, width)
        assert int(result.pred_sem_seg.data.max()) < NUM_CLASSES
        assert result.vocabulary == ["sky", "grass", "dog", "sofa"]


def test_gradients_reach_every_trainable_parameter_and_none_the_frozen_tower(tiny) -> None:
    model = tiny.build_model()
    model.train()
    images, samples = tiny.make_images(2, 64, 64), tiny.make_samples(2, 64, 64)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=0.1)
    # Deformable attention zero-initialises its offset and weight projections, so what feeds
    # them (queries' norms, level embeddings) gets gradients from the second step on.
    for _ in range(2):
        optimizer.zero_grad()
        sum(model.loss(images, samples).values()).backward()
        optimizer.step()
    without_gradient = [
        name
        for name, parameter in model.named_parameters()
        if parameter.requires_grad and (parameter.grad is None or not parameter.grad.any())
    ]
    assert without_gradient == []
    frozen = dict(model.backbone.tower.named_parameters()) | dict(
        model.text_encoder.named_parameters()
    )
    assert frozen and all(not p.requires_grad and p.grad is None for p in frozen.values())


def test_losses_are_deeply_supervised_with_mmseg_names(tiny) -> None:
    model = tiny.build_model()
    losses = model.loss(tiny.make_images(1, 64, 64), tiny.make_samples(1, 64, 64))
    names = {"loss_cls_ce", "loss_mask_ce", "loss_mask_dice"}
    expected = {f"decode.{name}" for name in names} | {
        f"decode.d{step}.{name}" for step in range(NUM_STEPS - 1) for name in names
    }
    assert set(losses) == expected
    assert all(torch.isfinite(value) and value > 0 for value in losses.values())


def _outputs(tiny, model, priors: list[PriorGraph]):
    model.eval()
    with torch.no_grad():
        return model._forward(
            tiny.make_images(2, 64, 64), tiny.make_samples(2, 64, 64, priors=priors)
        )


def _switched_off(tiny, reference, **switches):
    """A model with some modules off, sharing every weight the reference has for the rest."""
    ablated = tiny.build_model(seed=1, **switches)
    missing, _ = ablated.load_state_dict(reference.state_dict(), strict=False)
    assert missing == []
    return ablated


@pytest.mark.parametrize(
    "switch",
    ["use_semantic_attention", "use_scaled_visual_attention", "use_relation_attention"],
)
def test_switching_a_module_off_changes_the_output(tiny, switch: str) -> None:
    full = tiny.build_model()
    priors = [RICH_PRIORS, RICH_PRIORS]
    expected = _outputs(tiny, full, priors)
    ablated = _outputs(tiny, _switched_off(tiny, full, **{switch: False}), priors)
    assert not torch.allclose(ablated.mask_logits[-1], expected.mask_logits[-1], atol=1e-4)
    assert not torch.allclose(ablated.class_logits[-1], expected.class_logits[-1], atol=1e-4)


def test_an_empty_relation_graph_equals_relation_attention_switched_off(tiny) -> None:
    full = tiny.build_model()
    priors = [NO_RELATION_PRIORS, NO_RELATION_PRIORS]
    with_empty_graph = _outputs(tiny, full, priors)
    without_module = _outputs(tiny, _switched_off(tiny, full, use_relation_attention=False), priors)
    for got, expected in zip(
        without_module.mask_logits + without_module.class_logits,
        with_empty_graph.mask_logits + with_empty_graph.class_logits,
        strict=True,
    ):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_relations_change_the_output_when_relation_attention_is_on(tiny) -> None:
    full = tiny.build_model()
    with_relations = _outputs(tiny, full, [RICH_PRIORS, RICH_PRIORS])
    without_relations = _outputs(tiny, full, [NO_RELATION_PRIORS, NO_RELATION_PRIORS])
    assert not torch.allclose(with_relations.mask_logits[-1], without_relations.mask_logits[-1])


@pytest.mark.parametrize(
    "priors", [[PriorGraph.EMPTY, PriorGraph.EMPTY], [RICH_PRIORS, PriorGraph.EMPTY]]
)
def test_images_without_priors_train_and_predict(tiny, model, priors) -> None:
    images, samples = tiny.make_images(2, 64, 64), tiny.make_samples(2, 64, 64, priors=priors)
    model.train()
    losses = model.loss(images, samples)
    assert all(torch.isfinite(value) for value in losses.values())
    model.eval()
    results = model.predict(images, tiny.make_samples(2, 64, 64, priors=priors))
    assert [r.pred_sem_seg.data.shape for r in results] == [(1, 64, 64)] * 2


def test_a_vocabulary_passed_per_call_sets_the_classes(tiny, model) -> None:
    vocabulary = ["cat", "kitten, kitty", "car"]
    results = model.predict(
        tiny.make_images(1, 64, 64), tiny.make_samples(1, 64, 64), vocabulary=vocabulary
    )
    assert results[0].seg_logits.data.shape[0] == 3
    assert results[0].vocabulary == ["cat", "kitten", "car"]
    assert model.vocabulary == (("sky",), ("grass",), ("dog",), ("sofa",))


def test_vocabulary_free_prediction_uses_each_images_own_objects(tiny) -> None:
    model = tiny.build_model()
    model.test_cfg = dict(mode="whole", vocabulary_free=True)
    two_objects = PriorGraph(objects=("cat", "rug", "cat"))
    priors = [RICH_PRIORS, two_objects, PriorGraph.EMPTY]
    results = model.predict(
        tiny.make_images(3, 64, 64), tiny.make_samples(3, 64, 64, priors=priors)
    )
    assert [r.vocabulary for r in results] == [
        ["dog", "sofa", "ball", "background"],
        ["cat", "rug", "background"],
        ["sky", "grass", "dog", "sofa"],  # no priors: the model's vocabulary
    ]
    assert int(results[1].pred_sem_seg.data.max()) < 3


def test_the_name_filter_keeps_exactly_the_named_classes_and_background(tiny) -> None:
    model = tiny.build_model()
    vocabulary = normalize_vocabulary(["background", "sky", "dog", "sofa", "cat"])
    named = PriorGraph(objects=("dog", "sofa", "dog"))
    assert model.named_classes(vocabulary, named) == (("background",), ("dog",), ("sofa",))
    assert model.named_classes(vocabulary, PriorGraph.EMPTY) == vocabulary


def test_name_filter_prediction_cuts_each_images_vocabulary(tiny) -> None:
    model = tiny.build_model()
    model.test_cfg = dict(mode="whole", name_filter=True)
    priors = [PriorGraph(objects=("sofa", "grass")), PriorGraph.EMPTY]
    results = model.predict(
        tiny.make_images(2, 64, 64), tiny.make_samples(2, 64, 64, priors=priors)
    )
    assert [r.vocabulary for r in results] == [["grass", "sofa"], ["sky", "grass", "dog", "sofa"]]
    assert int(results[0].pred_sem_seg.data.max()) < 2


@pytest.mark.parametrize("per_image", ["vocabulary_free", "name_filter"])
def test_each_image_is_predicted_as_alone_whatever_vocabularies_the_others_have(
    tiny, per_image: str
) -> None:
    """The boost, the name pointer and the CLIP ensemble on: padding each image's vocabulary to
    the batch's union changes none of its scores or labels."""
    model = _whole_prior_path(
        tiny, clip_classifier=dict(checkpoint=None), training_classes=["sky", "dog"]
    ).eval()
    model.test_cfg = dict(mode="whole", **{per_image: True})
    priors = [RICH_PRIORS, PriorGraph(objects=("grass", "cat", "sofa")), PriorGraph.EMPTY]
    images = tiny.make_images(3, 64, 64)
    with torch.no_grad():
        together = model.predict(images, tiny.make_samples(3, 64, 64, priors=priors))
        alone = [
            model.predict(images[i : i + 1], tiny.make_samples(1, 64, 64, priors=priors[i : i + 1]))
            for i in range(3)
        ]
    vocabularies = [normalize_vocabulary(result.vocabulary) for result in together]
    batch = BatchVocabulary.union(vocabularies)
    assert len(set(vocabularies)) == 3 and batch.class_valid() is not None
    for result, (single,), columns in zip(together, alone, batch.columns, strict=True):
        assert result.vocabulary == single.vocabulary
        assert torch.equal(result.pred_sem_seg.data, single.pred_sem_seg.data)
        scores = result.seg_logits.data
        torch.testing.assert_close(scores[list(columns)], single.seg_logits.data[: len(columns)])
        others = [c for c in range(len(batch.classes)) if c not in columns]
        assert (scores[others] == -1).all()


def test_each_name_is_embedded_once_however_many_vocabularies_hold_it(tiny) -> None:
    model = tiny.build_model()
    prompted = []
    encode = model.text_encoder.forward

    def counted(prompts: list[str]) -> torch.Tensor:
        prompted.extend(prompts)
        return encode(prompts)

    model.text_encoder.forward = counted
    first = model.embed_vocabulary(normalize_vocabulary(["cat, kitten", "rug"]))
    second = model.embed_vocabulary(normalize_vocabulary(["rug", "dog", "cat"]))
    named = [p for p in prompted if p == model.templates[0].format("cat")]
    assert len(prompted) == 4 * len(model.templates) and len(named) == 1
    assert second.class_index.tolist() == [0, 1, 2]
    torch.testing.assert_close(second.embeddings[0], first.embeddings[2])
    fresh = embed_vocabulary(model.text_encoder, (("rug",), ("dog",), ("cat",)), model.templates)
    torch.testing.assert_close(second.embeddings, fresh.embeddings, atol=1e-5, rtol=0)


def test_slide_inference_covers_the_image_and_matches_whole_on_one_window(tiny) -> None:
    model = tiny.build_model()
    model.eval()
    images, samples = tiny.make_images(1, 64, 96), tiny.make_samples(1, 64, 96)
    model.test_cfg = dict(mode="slide", crop_size=(64, 64), stride=(32, 32))
    slide = model.predict(images, samples)[0]
    assert slide.pred_sem_seg.data.shape == (1, 64, 96)
    model.test_cfg = dict(mode="slide", crop_size=(64, 96), stride=(64, 96))
    one_window = model.predict(images, tiny.make_samples(1, 64, 96))[0]
    model.test_cfg = dict(mode="whole")
    whole = model.predict(images, tiny.make_samples(1, 64, 96))[0]
    torch.testing.assert_close(one_window.seg_logits.data, whole.seg_logits.data)


def test_training_without_a_vocabulary_fails_with_a_clear_message(tiny) -> None:
    model = tiny.build_model()
    model.vocabulary = None
    with pytest.raises(ValueError, match="no vocabulary: add VocabularyHook"):
        model.loss(tiny.make_images(1, 64, 64), tiny.make_samples(1, 64, 64))


def test_a_text_encoder_of_the_wrong_width_is_rejected(tiny) -> None:
    with pytest.raises(ValueError, match="text_embed_dims=8 but the text encoder"):
        tiny.build_model(text_embed_dims=8)


def test_a_tiny_model_overfits_two_images(tiny) -> None:
    model = tiny.build_model()
    model.train()
    images, samples = tiny.make_images(2, 32, 32, seed=3), tiny.make_samples(2, 32, 32, seed=3)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=2e-3)
    history = []
    for _ in range(50):
        loss = sum(model.loss(images, samples).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    first, last = sum(history[:3]) / 3, sum(history[-3:]) / 3
    assert last <= first / 2, (first, last)


PRIOR_FREE = Config.fromfile(
    str(Path(__file__).parents[3] / "segmentation/configs/_base_/models/prior_free_head.py")
).prior_free_head.to_dict()


def _whole_prior_path(tiny, **model_keys):
    """The tiny model with every prior module, the boost and the name pointer, gates open."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    cfg = tiny.model_cfg(prior_class_boost=5.0)
    cfg["decode_head"]["name_pointer"] = {}
    init_default_scope("mmseg")
    torch.manual_seed(0)
    model = MODELS.build({**cfg, **model_keys})
    tiny.open_prior_gates(model)
    return model


def _image_outputs(outputs, image: int) -> list[torch.Tensor]:
    return [logits[image] for logits in outputs.class_logits + outputs.mask_logits]


def test_an_image_without_priors_gets_what_the_prior_free_model_with_its_weights_gives(
    tiny,
) -> None:
    """Every prior module, the boost and the name pointer on, gates open: the image without
    priors in a batch is predicted exactly as by the prior-free model with the same weights."""
    full = _whole_prior_path(tiny)
    prior_free = _switched_off(tiny, full, **PRIOR_FREE)
    priors = [RICH_PRIORS, PriorGraph.EMPTY]
    with_path, without_path = _outputs(tiny, full, priors), _outputs(tiny, prior_free, priors)
    for got, expected in zip(
        _image_outputs(with_path, 1), _image_outputs(without_path, 1), strict=True
    ):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(with_path.class_logits[-1][0], without_path.class_logits[-1][0])


def test_training_the_prior_path_only_changes_nothing_for_images_without_priors(tiny) -> None:
    model = _whole_prior_path(tiny, train_prior_path_only=True)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    prior = {id(p) for p in model.decode_head.prior_parameters()}
    assert trainable == {name for name, p in model.named_parameters() if id(p) in prior}
    assert any(".semantic." in name for name in trainable)
    assert not any(".visual.attention." in name or "pixel_decoder" in name for name in trainable)
    frozen = {name: p.clone() for name, p in model.named_parameters() if not p.requires_grad}
    before = _outputs(tiny, model, [PriorGraph.EMPTY] * 2)
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    for _ in range(2):
        optimizer.zero_grad()
        images, samples = tiny.make_images(2, 64, 64), tiny.make_samples(2, 64, 64)
        sum(model.loss(images, samples).values()).backward()
        optimizer.step()
    after = _outputs(tiny, model, [PriorGraph.EMPTY] * 2)
    assert all(
        torch.equal(p, frozen[name]) for name, p in model.named_parameters() if name in frozen
    )
    for got, expected in zip(
        after.class_logits + after.mask_logits,
        before.class_logits + before.mask_logits,
        strict=True,
    ):
        assert torch.equal(got, expected)
    assert not torch.equal(
        _outputs(tiny, model, [RICH_PRIORS] * 2).class_logits[-1], after.class_logits[-1]
    )


def test_training_the_prior_path_only_needs_one(tiny) -> None:
    from mmseg.registry import MODELS

    cfg = {**tiny.model_cfg(**PRIOR_FREE), "train_prior_path_only": True}
    with pytest.raises(ValueError, match="train_prior_path_only needs a head with a prior path"):
        MODELS.build(cfg)
