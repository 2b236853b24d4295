"""Decoder layer modules on random tensors: each reads the inputs it is given, the scaled
visual attention's per-level weighting is the one its scale scores and gate say, both visual
attentions compute what `nn.MultiheadAttention` computes with the mask repeated per head, and
what priors add is nothing for an image without priors or while the gates are closed."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from segmentation.models.decoder_layers import (
    LayerInputs,
    LevelMemory,
    LLMFormerDecoderLayer,
    ResidualAttention,
    ScaledVisualAttention,
    SemanticAttention,
    VisualAttention,
)
from segmentation.models.prior_encoder import PriorTensors

BATCH, QUERIES, DIM, HEADS = 2, 5, 8, 2
LEVEL_SIZES = (12, 6, 3)


def _memories(seed: int = 0) -> list[LevelMemory]:
    generator = torch.Generator().manual_seed(seed)
    memories = []
    for size in LEVEL_SIZES:
        mask = torch.rand(BATCH, QUERIES, size, generator=generator) < 0.3
        mask[..., 0] = False  # every query sees at least one token
        tokens = torch.randn(BATCH, size, DIM, generator=generator)
        positions = torch.randn(1, size, DIM, generator=generator)
        memories.append(LevelMemory(tokens, tokens + positions, mask))
    return memories


def _reference_update(attention: ResidualAttention, query: torch.Tensor, memory: LevelMemory):
    """The straightforward way: `nn.MultiheadAttention` with the mask repeated for every head."""
    mask = memory.mask.repeat_interleave(HEADS, dim=0)
    return attention.attend(query, memory.keys, memory.tokens, attn_mask=mask)


def _priors(num_attributes: int = 3, seed: int = 1) -> PriorTensors:
    generator = torch.Generator().manual_seed(seed)

    def tokens(count: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.randn(BATCH, count, DIM, generator=generator), torch.ones(
            BATCH, count, dtype=torch.bool
        )

    objects, object_mask = tokens(2)
    attributes, attribute_mask = tokens(num_attributes)
    relations, relation_mask = tokens(1)
    index = torch.tensor([[0], [1]])
    return PriorTensors(
        objects, object_mask, attributes, attribute_mask, relations, relation_mask, index, 1 - index
    )


def _query(seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return (
        torch.randn(BATCH, QUERIES, DIM, generator=generator),
        torch.randn(BATCH, QUERIES, DIM, generator=generator),
    )


def _fix_scale_scores(module: ScaledVisualAttention, logits: list[float]) -> None:
    """Make the scale MLP output `logits` whatever the attribute embedding is."""
    last = module.scale_mlp.layers[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor(logits))


def _set_gate(module: torch.nn.Module, value: float) -> None:
    """Set the module's gate logit: 0 is closed (init), 30 fully open (tanh rounds to 1)."""
    with torch.no_grad():
        module.gate.fill_(value)


def _without_attributes(priors: PriorTensors, image: int) -> PriorTensors:
    """`priors` with image `image`'s attribute priors all marked absent."""
    mask = priors.attribute_mask.clone()
    mask[image] = False
    return dataclasses.replace(priors, attribute_mask=mask)


def _plain_twin(scaled: ScaledVisualAttention) -> VisualAttention:
    """A VisualAttention sharing the scaled module's attention and norm weights."""
    plain = VisualAttention(DIM, HEADS, 0.0)
    plain.load_state_dict(scaled.state_dict(), strict=False)
    return plain


@pytest.fixture
def scaled() -> ScaledVisualAttention:
    torch.manual_seed(0)
    return ScaledVisualAttention(DIM, HEADS, 0.0, len(LEVEL_SIZES)).eval()


def test_visual_attention_attends_to_the_one_level_it_is_given() -> None:
    torch.manual_seed(0)
    attention = VisualAttention(DIM, HEADS, 0.0).eval()
    query, query_pos = _query()
    memory = _memories()[1]
    output = attention(query, query_pos, memory)
    assert output.shape == (BATCH, QUERIES, DIM)
    expected = _reference_update(attention, query + query_pos, memory)
    torch.testing.assert_close(output, attention.norm(query + expected))


def test_scaled_visual_attention_sums_the_levels_weighted_by_its_scores(scaled) -> None:
    _fix_scale_scores(scaled, torch.tensor([0.2, 0.3, 0.5]).log().tolist())
    _set_gate(scaled, 30.0)
    query, query_pos = _query()
    memories, priors = _memories(), _priors()
    scores = scaled.scale_scores(query, priors.attributes, priors.attribute_mask)
    torch.testing.assert_close(scores, torch.tensor([0.2, 0.3, 0.5]).expand(BATCH, QUERIES, 3))
    output = scaled(query, query_pos, memories, 1, priors)
    plain = _plain_twin(scaled)
    updates = [_reference_update(plain, query + query_pos, m) for m in memories]
    expected = scaled.norm(query + 0.2 * updates[0] + 0.3 * updates[1] + 0.5 * updates[2])
    torch.testing.assert_close(output, expected)


@pytest.mark.parametrize("level", range(len(LEVEL_SIZES)))
def test_all_scale_score_on_one_level_is_plain_attention_to_that_level(scaled, level) -> None:
    logits = [-1e4] * len(LEVEL_SIZES)
    logits[level] = 0.0
    _fix_scale_scores(scaled, logits)
    _set_gate(scaled, 30.0)
    query, query_pos = _query()
    memories, priors = _memories(), _priors()
    output = scaled(query, query_pos, memories, (level + 1) % len(LEVEL_SIZES), priors)
    torch.testing.assert_close(output, _plain_twin(scaled)(query, query_pos, memories[level]))


@pytest.mark.parametrize("level", range(len(LEVEL_SIZES)))
def test_a_closed_gate_or_no_attributes_reads_the_round_robin_level_only(scaled, level) -> None:
    """Closed (at init), or for an image without attribute priors, the scaled attention is
    Mask2Former's attention to the layer's own level, exactly."""
    query, query_pos = _query()
    memories, priors = _memories(), _priors()
    plain = _plain_twin(scaled)(query, query_pos, memories[level])
    assert torch.equal(scaled(query, query_pos, memories, level, priors), plain)
    _set_gate(scaled, 0.7)
    no_attributes = _without_attributes(priors, image=1)
    output = scaled(query, query_pos, memories, level, no_attributes)
    assert torch.equal(output[1], plain[1])
    assert not torch.allclose(output[0], plain[0])


def test_the_gate_moves_the_level_weights_from_the_own_level_towards_the_scores(scaled) -> None:
    _fix_scale_scores(scaled, torch.tensor([0.2, 0.3, 0.5]).log().tolist())
    _set_gate(scaled, 0.5)
    query, _ = _query()
    priors = _priors()
    weights = scaled.level_weights(query, 0, priors.attributes, priors.attribute_mask)
    share = torch.tanh(torch.tensor(0.5))
    expected = torch.tensor([1.0, 0.0, 0.0]) + share * torch.tensor([-0.8, 0.3, 0.5])
    torch.testing.assert_close(weights, expected.expand(BATCH, QUERIES, 3))


def test_semantic_attention_adds_nothing_when_closed_or_for_an_image_without_priors() -> None:
    torch.manual_seed(0)
    semantic = SemanticAttention(DIM, HEADS, 0.0).eval()
    query, query_pos = _query()
    priors = _priors()
    assert torch.equal(semantic(query, query_pos, priors), query)
    _set_gate(semantic, 0.7)
    none = torch.tensor([True, False])[:, None]
    without = dataclasses.replace(
        priors, object_mask=priors.object_mask & none, attribute_mask=priors.attribute_mask & none
    )
    output = semantic(query, query_pos, without)
    assert torch.equal(output[1], query[1])
    update = semantic.attend(query[:1] + query_pos[:1], *_semantic_tokens(semantic, priors))
    torch.testing.assert_close(output[0], query[0] + torch.tanh(torch.tensor(0.7)) * update[0])


def _semantic_tokens(semantic: SemanticAttention, priors: PriorTensors):
    """Keys and values of image 0: the null token, its objects and its attributes, typed."""
    tokens = torch.cat(
        [
            semantic.null[0],
            priors.objects[0] + semantic.type_embed.weight[0],
            priors.attributes[0] + semantic.type_embed.weight[1],
        ]
    )[None]
    return tokens, tokens


def test_scale_scores_come_from_the_attributes(scaled) -> None:
    query, _ = _query()
    with_attributes, others = _priors(seed=1), _priors(seed=5)
    first = scaled.scale_scores(query, with_attributes.attributes, with_attributes.attribute_mask)
    second = scaled.scale_scores(query, others.attributes, others.attribute_mask)
    assert first.shape == (BATCH, QUERIES, len(LEVEL_SIZES))
    torch.testing.assert_close(first.sum(-1), torch.ones(BATCH, QUERIES))
    assert not torch.allclose(first, second)
    none = torch.zeros(BATCH, 3, dtype=torch.bool)
    only_null = scaled.scale_scores(query, with_attributes.attributes, none)
    null_scores = scaled.scale_mlp(scaled.attribute_null).softmax(-1)
    torch.testing.assert_close(only_null, null_scores.expand(BATCH, QUERIES, -1))


def _layer(scaled_visual: bool) -> LLMFormerDecoderLayer:
    """A layer with every prior module, its gates fully open."""
    torch.manual_seed(0)
    layer = LLMFormerDecoderLayer(DIM, HEADS, 16, 0.0, len(LEVEL_SIZES), True, scaled_visual, True)
    for module in (layer.semantic, layer.visual):
        if hasattr(module, "gate"):
            _set_gate(module, 30.0)
    return layer.eval()


def _perturbed(memories: list[LevelMemory], level: int) -> list[LevelMemory]:
    changed = list(memories)
    memory = memories[level]
    changed[level] = LevelMemory(memory.tokens + 1.0, memory.keys + 1.0, memory.mask)
    return changed


@pytest.mark.parametrize("level", range(len(LEVEL_SIZES)))
def test_a_plain_layer_reads_only_the_memory_of_its_level(level) -> None:
    layer = _layer(scaled_visual=False)
    query, query_pos = _query()
    memories, priors = _memories(), _priors()
    output = layer(query, LayerInputs(query_pos, memories, level, priors))
    assert output.shape == (BATCH, QUERIES, DIM)
    for other in range(len(LEVEL_SIZES)):
        changed = layer(query, LayerInputs(query_pos, _perturbed(memories, other), level, priors))
        assert torch.equal(changed, output) == (other != level), other


def test_a_scaled_layer_reads_every_level_whatever_the_round_robin_level() -> None:
    layer = _layer(scaled_visual=True)
    query, query_pos = _query()
    memories, priors = _memories(), _priors()
    output = layer(query, LayerInputs(query_pos, memories, 0, priors))
    torch.testing.assert_close(layer(query, LayerInputs(query_pos, memories, 2, priors)), output)
    for level in range(len(LEVEL_SIZES)):
        changed = layer(query, LayerInputs(query_pos, _perturbed(memories, level), 0, priors))
        assert not torch.allclose(changed, output), level


def _leaves(seed: int) -> tuple[torch.Tensor, torch.Tensor, list[LevelMemory], torch.Tensor]:
    """Query, positions, memories and attributes that require grad, from a fixed seed."""
    query, query_pos = _query(seed)
    memories = [
        LevelMemory(m.tokens.requires_grad_(), m.keys.requires_grad_(), m.mask)
        for m in _memories(seed + 1)
    ]
    attributes = _priors(seed=seed + 2).attributes.requires_grad_()
    return query.requires_grad_(), query_pos, memories, attributes


def _gradients(output: torch.Tensor, module: torch.nn.Module, leaves: list[torch.Tensor]):
    weights = torch.randn(output.shape, generator=torch.Generator().manual_seed(7))
    inputs = [*module.parameters(), *leaves]
    return torch.autograd.grad((output * weights).sum(), inputs)


def test_scaled_visual_attention_matches_a_reference_in_value_and_gradient(scaled) -> None:
    """Random weights and inputs: the per-level `nn.MultiheadAttention` calls, weighted by the
    scale scores, give the same output and the same gradients as the one-projection path."""
    scaled.train()  # dropout 0, so training mode computes the same, through autograd
    query, query_pos, memories, attributes = _leaves(seed=11)
    present = torch.tensor([[True, True, False], [True, False, False]])
    _set_gate(scaled, 0.6)
    priors = dataclasses.replace(_priors(), attributes=attributes, attribute_mask=present)
    output = scaled(query, query_pos, memories, 2, priors)
    scores = scaled.level_weights(query, 2, attributes, present)
    update = sum(
        score[..., None] * _reference_update(scaled, query + query_pos, m)
        for score, m in zip(scores.unbind(-1), memories, strict=True)
    )
    expected = scaled.norm(query + update)
    torch.testing.assert_close(output, expected)
    leaves = [query, attributes] + [t for m in memories for t in (m.tokens, m.keys)]
    for got, want in zip(
        _gradients(output, scaled, leaves), _gradients(expected, scaled, leaves), strict=True
    ):
        torch.testing.assert_close(got, want)


def test_visual_attention_matches_a_reference_in_gradient() -> None:
    torch.manual_seed(3)
    attention = VisualAttention(DIM, HEADS, 0.0)
    query, query_pos, memories, _ = _leaves(seed=21)
    memory = memories[0]
    output = attention(query, query_pos, memory)
    expected = attention.norm(query + _reference_update(attention, query + query_pos, memory))
    leaves = [query, memory.tokens, memory.keys]
    for got, want in zip(
        _gradients(output, attention, leaves), _gradients(expected, attention, leaves), strict=True
    ):
        torch.testing.assert_close(got, want)


def test_the_heads_attention_masks_block_where_a_mask_is_off_and_broadcast_over_heads(
    model,
) -> None:
    """One (B, Q, H*W) mask per level, the same for every head: True where the query's mask
    logit, resized to the level, is negative; nothing blocked for a query whose mask is empty."""
    logits = torch.full((BATCH, QUERIES, 8, 8), -3.0)
    logits[0, 1, :4] = 3.0  # query 1 of image 0 covers the top half
    masks = model.decode_head._attention_masks(logits, [(4, 4), (8, 8)])
    assert [m.shape for m in masks] == [(BATCH, QUERIES, 16), (BATCH, QUERIES, 64)]
    top_half = torch.arange(64) < 32
    assert torch.equal(masks[1][0, 1], ~top_half)
    assert torch.equal(masks[0][0, 1], ~(torch.arange(16) < 8))
    empty = torch.ones(BATCH, QUERIES, dtype=torch.bool)
    empty[0, 1] = False
    assert not masks[1][empty].any()
