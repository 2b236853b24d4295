"""The prior encoder pads a batch's object, attribute and relation embeddings, and gives each
object the embedding of its attribute words alone (what the name pointer keys on)."""

from __future__ import annotations

import torch

from segmentation.models.prior_encoder import PriorEncoder
from segmentation.text import TEXT_ENCODERS
from segmentation.transforms.priors import PriorGraph

TINY_MINILM = dict(
    type="MiniLMTextEncoder",
    config_overrides=dict(
        num_hidden_layers=1, hidden_size=16, num_attention_heads=2, intermediate_size=32
    ),
)
GRAPHS = [
    PriorGraph(
        objects=("crescent", "ring", "star"),
        attributes=((0, "large"), (0, "orange"), (2, "red")),
        relations=((0, "left of", 1),),
    ),
    PriorGraph(objects=("circle",)),
]


def test_object_attributes_are_the_attribute_words_embedding_and_zero_without_any() -> None:
    torch.manual_seed(0)
    encoder = TEXT_ENCODERS.build(TINY_MINILM)
    tensors = PriorEncoder(encoder)(GRAPHS)
    assert tensors.objects.shape == tensors.object_attributes.shape == (2, 3, 16)
    assert tensors.object_mask.tolist() == [[True, True, True], [True, False, False]]
    expected = encoder(["large orange", "red"])
    torch.testing.assert_close(tensors.object_attributes[0, 0], expected[0])
    torch.testing.assert_close(tensors.object_attributes[0, 2], expected[1])
    assert (tensors.object_attributes[0, 1] == 0).all()
    assert (tensors.object_attributes[1] == 0).all()
    torch.testing.assert_close(tensors.objects[0, 0], encoder(["crescent"])[0])


def test_without_the_pointer_attribute_words_are_neither_embedded_nor_returned() -> None:
    encoder = TEXT_ENCODERS.build(TINY_MINILM)
    embedded: list[str] = []
    forward = encoder.forward
    encoder.forward = lambda texts: embedded.extend(texts) or forward(texts)
    tensors = PriorEncoder(encoder, object_attributes=False)(GRAPHS)
    assert tensors.object_attributes is None
    assert tensors.objects.shape == (2, 3, 16)
    assert "large orange" not in embedded and "crescent" in embedded
