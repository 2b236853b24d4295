"""The LLMFormer decoder layer: semantic -> (scaled) visual -> relation attention -> FFN.

Each prior module can be switched off; with all three off the layer is Mask2Former's (masked
cross-attention to one feature level per layer, plain self-attention, FFN). The visual and
relation blocks are post-norm with a residual, as in Mask2Former. What the priors add passes
through learnt tanh gates that start closed (Flamingo's gated cross-attention), and an image
without priors gets nothing from them: its queries go through exactly Mask2Former's layer, so a
prior path trained on top of a prior-free model (`prior_parameters`) leaves that model's
predictions unchanged when the LLM says nothing.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from mmcv.cnn.bricks.transformer import FFN
from torch import Tensor, nn

from segmentation.models.prior_encoder import PriorTensors


class MLP(nn.Module):
    """`num_layers` linear layers with ReLU in between."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dims))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == len(self.layers) - 1 else F.relu(layer(x))
        return x


class HeadedAttention(nn.Module):
    """Multi-head attention whose weights live in an `nn.MultiheadAttention`.

    `attend` calls it, while `attend_heads` runs the same projections around
    `scaled_dot_product_attention` in steps, so that a mask can broadcast over the heads and a
    query's projection can serve several key sets.
    """

    def __init__(self, dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.dropout = nn.Dropout(dropout)

    def attend(self, query: Tensor, key: Tensor, value: Tensor, **masks: Tensor | None) -> Tensor:
        return self.attention(query, key, value, need_weights=False, **masks)[0]

    def project_query(self, query: Tensor) -> Tensor:
        """The attention's query projection, split into heads: (B, heads, Q, dim / heads)."""
        weight, bias = self._in_projection(0)
        return self._split_heads(F.linear(query, weight, bias))

    def attend_heads(
        self, query_heads: Tensor, key: Tensor, value: Tensor, blocked: Tensor
    ) -> Tensor:
        """Each head's attention output (B, heads, Q, dim / heads) for projected queries;
        `blocked` (B, Q, K) is True where a query may not look, the same for every head."""
        key_heads = self._split_heads(F.linear(key, *self._in_projection(1)))
        value_heads = self._split_heads(F.linear(value, *self._in_projection(2)))
        dropout = self.attention.dropout if self.training else 0.0
        return F.scaled_dot_product_attention(
            query_heads, key_heads, value_heads, attn_mask=~blocked[:, None], dropout_p=dropout
        )

    def project_output(self, heads: Tensor) -> Tensor:
        """Merge the heads (B, heads, Q, dim / heads) and apply the output projection."""
        out_proj = self.attention.out_proj
        return out_proj(heads.transpose(1, 2).flatten(2))

    def _in_projection(self, index: int) -> tuple[Tensor, Tensor]:
        """Weight and bias of the query (0), key (1) or value (2) projection."""
        weights = self.attention.in_proj_weight.chunk(3)
        biases = self.attention.in_proj_bias.chunk(3)
        return weights[index], biases[index]

    def _split_heads(self, tokens: Tensor) -> Tensor:
        return tokens.unflatten(-1, (self.attention.num_heads, -1)).transpose(1, 2)


class ResidualAttention(HeadedAttention):
    """Multi-head attention whose output is added to the query and layer-normalised."""

    def __init__(self, dim: int, num_heads: int, dropout: float) -> None:
        super().__init__(dim, num_heads, dropout)
        self.norm = nn.LayerNorm(dim)

    def residual(self, query: Tensor, update: Tensor) -> Tensor:
        return self.norm(query + self.dropout(update))


def gate_per_image(gate: Tensor, present: Tensor) -> Tensor:
    """A tanh gate (a learnt scalar, 0 at init) where an image has the priors it reads, 0 where
    it has none: (B, 1, 1), to scale a per-query update."""
    return (torch.tanh(gate) * present.to(gate))[:, None, None]


@dataclass(frozen=True)
class LevelMemory:
    """One feature level as a query cross-attends to it: tokens (B, H*W, C) as values, tokens
    plus positions as keys (both computed once per forward and shared by every layer), and
    Mask2Former's attention mask (B, Q, H*W), True where blocked, the same for every head."""

    tokens: Tensor
    keys: Tensor
    mask: Tensor


@dataclass(frozen=True)
class LayerInputs:
    """What a decoder layer reads besides its queries: their positions, every level's memory,
    the level that plain visual attention uses in this layer (Mask2Former's round robin), and
    the image's priors (projected to the decoder width)."""

    query_pos: Tensor
    memories: Sequence[LevelMemory]
    level: int
    priors: PriorTensors


def attend_to_prior_tokens(query: Tensor, tokens: Tensor, mask: Tensor, null: Tensor) -> Tensor:
    """Single-head dot-product readout of prior tokens, with an always-present null token."""
    batch = query.shape[0]
    keys = torch.cat([null.expand(batch, -1, -1), tokens], dim=1)
    present = torch.cat([mask.new_ones(batch, 1), mask], dim=1)
    logits = query @ keys.transpose(1, 2) / math.sqrt(query.shape[-1])
    weights = logits.masked_fill(~present[:, None], float("-inf")).softmax(dim=-1)
    return weights @ keys


class SemanticAttention(HeadedAttention):
    """Queries cross-attend to the object and attribute prior embeddings of their image (a null
    token lets a query read none); the update is added through a tanh gate, and not at all for an
    image without priors."""

    def __init__(self, dim: int, num_heads: int, dropout: float) -> None:
        super().__init__(dim, num_heads, dropout)
        self.null = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.type_embed = nn.Embedding(2, dim)
        self.gate = nn.Parameter(torch.zeros(()))

    def forward(self, query: Tensor, query_pos: Tensor, priors: PriorTensors) -> Tensor:
        batch = query.shape[0]
        tokens = torch.cat(
            [
                self.null.expand(batch, -1, -1),
                priors.objects + self.type_embed.weight[0],
                priors.attributes + self.type_embed.weight[1],
            ],
            dim=1,
        )
        absent = torch.cat(
            [priors.object_mask.new_zeros(batch, 1), ~priors.object_mask, ~priors.attribute_mask],
            dim=1,
        )
        update = self.attend(query + query_pos, tokens, tokens, key_padding_mask=absent)
        return query + gate_per_image(self.gate, priors.present()) * self.dropout(update)


class VisualAttention(ResidualAttention):
    """Mask2Former's masked cross-attention to the one feature level chosen for this layer."""

    def forward(self, query: Tensor, query_pos: Tensor, memory: LevelMemory) -> Tensor:
        query_heads = self.project_query(query + query_pos)
        heads = self.attend_heads(query_heads, memory.keys, memory.tokens, memory.mask)
        return self.residual(query, self.project_output(heads))


class ScaledVisualAttention(ResidualAttention):
    """Masked cross-attention to every feature level, weighted per query by scale scores.

    Each query reads an attribute embedding from its image's attribute priors (or a learnt null
    token); an MLP on it gives softmax scores over the levels. The level weights move from the
    layer's own round-robin level (Mask2Former's) towards those scores as far as a tanh gate
    lets them; an image without attribute priors reads its round-robin level only. The query is
    projected once for all levels, and since the weights sum to one, the output projection of
    the weighted sum of the levels' head outputs equals the weighted sum of their projections.
    """

    def __init__(self, dim: int, num_heads: int, dropout: float, num_levels: int) -> None:
        super().__init__(dim, num_heads, dropout)
        self.attribute_query = nn.Linear(dim, dim)
        self.attribute_null = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.scale_mlp = MLP(dim, dim, num_levels, 2)
        self.gate = nn.Parameter(torch.zeros(()))

    def prior_parameters(self) -> Iterator[nn.Parameter]:
        """What reads the attribute priors (the attention weights are Mask2Former's)."""
        for module in (self.attribute_query, self.scale_mlp):
            yield from module.parameters()
        yield from (self.attribute_null, self.gate)

    def scale_scores(self, query: Tensor, attributes: Tensor, attribute_mask: Tensor) -> Tensor:
        """Softmax scores (B, Q, num_levels) from each query's attribute embedding."""
        attribute_embedding = attend_to_prior_tokens(
            self.attribute_query(query), attributes, attribute_mask, self.attribute_null
        )
        return self.scale_mlp(attribute_embedding).softmax(dim=-1)

    def level_weights(
        self, query: Tensor, level: int, attributes: Tensor, attribute_mask: Tensor
    ) -> Tensor:
        """(B, Q, num_levels): one-hot on `level`, moved towards the scale scores by the gate
        where an image has attribute priors."""
        scores = self.scale_scores(query, attributes, attribute_mask)
        own = F.one_hot(torch.tensor(level), scores.shape[-1]).to(scores)
        return own + gate_per_image(self.gate, attribute_mask.any(-1)) * (scores - own)

    def forward(
        self,
        query: Tensor,
        query_pos: Tensor,
        memories: Sequence[LevelMemory],
        level: int,
        priors: PriorTensors,
    ) -> Tensor:
        weights = self.level_weights(query, level, priors.attributes, priors.attribute_mask)
        query_heads = self.project_query(query + query_pos)
        heads = sum(
            weight[:, None, :, None] * self.attend_heads(query_heads, m.keys, m.tokens, m.mask)
            for weight, m in zip(weights.unbind(-1), memories, strict=True)
        )
        return self.residual(query, self.project_output(heads))


class RelationAttention(ResidualAttention):
    """Query self-attention; with `use_relations`, its logits get a bias from the relation graph.

    Queries are softly assigned to object priors (a null column lets a query belong to none);
    each relation (s, p, o) adds, per head, a learnt scalar of its phrase embedding times
    assign[i, s] * assign[j, o] to the logit of query i attending to query j. An empty graph
    gives a zero bias, i.e. plain self-attention, and so does any graph at init (the scalars'
    projection starts at zero).
    """

    def __init__(self, dim: int, num_heads: int, dropout: float, use_relations: bool) -> None:
        super().__init__(dim, num_heads, dropout)
        self.use_relations = use_relations
        if use_relations:
            self.query_to_object = nn.Linear(dim, dim)
            self.relation_to_heads = nn.Linear(dim, num_heads)
            nn.init.zeros_(self.relation_to_heads.weight)
            nn.init.zeros_(self.relation_to_heads.bias)

    def prior_parameters(self) -> Iterator[nn.Parameter]:
        """What reads the relation priors (the self-attention is Mask2Former's)."""
        if self.use_relations:
            yield from self.query_to_object.parameters()
            yield from self.relation_to_heads.parameters()

    def forward(self, query: Tensor, query_pos: Tensor, priors: PriorTensors) -> Tensor:
        bias = self.relation_bias(query, priors) if self.use_relations else None
        position_query = query + query_pos
        update = self.attend(position_query, position_query, query, attn_mask=bias)
        return self.residual(query, update)

    def relation_bias(self, query: Tensor, priors: PriorTensors) -> Tensor:
        """Additive attention bias (B * heads, Q, Q) from the image's relation graph."""
        batch, num_queries, dim = query.shape
        logits = self.query_to_object(query) @ priors.objects.transpose(1, 2) / math.sqrt(dim)
        logits = logits.masked_fill(~priors.object_mask[:, None], float("-inf"))
        with_null = torch.cat([logits, logits.new_zeros(batch, num_queries, 1)], dim=-1)
        assignment = with_null.softmax(dim=-1)[..., :-1]
        head_weights = self.relation_to_heads(priors.relations) * priors.relation_mask[..., None]

        def assigned(index: Tensor) -> Tensor:
            return assignment.gather(2, index[:, None].expand(-1, num_queries, -1))

        bias = torch.einsum(
            "bqr,brh,bkr->bhqk",
            assigned(priors.relation_subject),
            head_weights,
            assigned(priors.relation_object),
        )
        return bias.flatten(0, 1)


class LLMFormerDecoderLayer(nn.Module):
    """One decoder layer; the three prior modules switch on and off independently."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        ffn_channels: int,
        dropout: float,
        num_levels: int,
        use_semantic_attention: bool,
        use_scaled_visual_attention: bool,
        use_relation_attention: bool,
    ) -> None:
        super().__init__()
        self.semantic = (
            SemanticAttention(dim, num_heads, dropout) if use_semantic_attention else None
        )
        self.visual = (
            ScaledVisualAttention(dim, num_heads, dropout, num_levels)
            if use_scaled_visual_attention
            else VisualAttention(dim, num_heads, dropout)
        )
        self.relation = RelationAttention(dim, num_heads, dropout, use_relation_attention)
        self.ffn = FFN(embed_dims=dim, feedforward_channels=ffn_channels, ffn_drop=dropout)
        self.ffn_norm = nn.LayerNorm(dim)

    def forward(self, query: Tensor, inputs: LayerInputs) -> Tensor:
        if self.semantic is not None:
            query = self.semantic(query, inputs.query_pos, inputs.priors)
        if isinstance(self.visual, ScaledVisualAttention):
            query = self.visual(
                query, inputs.query_pos, inputs.memories, inputs.level, inputs.priors
            )
        else:
            query = self.visual(query, inputs.query_pos, inputs.memories[inputs.level])
        query = self.relation(query, inputs.query_pos, inputs.priors)
        return self.ffn_norm(self.ffn(query))

    def prior_parameters(self) -> Iterator[nn.Parameter]:
        """The parameters that read priors; the rest is a Mask2Former layer."""
        if self.semantic is not None:
            yield from self.semantic.parameters()
        if isinstance(self.visual, ScaledVisualAttention):
            yield from self.visual.prior_parameters()
        yield from self.relation.prior_parameters()
