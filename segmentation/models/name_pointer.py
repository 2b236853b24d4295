"""The prior name pointer: each query points at the object prior it shows, and that prior's name
enters the class score.

The pointer matches a query against each object's attribute words only ("large striped red"), never
its name, so what it learns on seen classes (colour, size, texture) carries over unchanged to an
object the LLM calls by a name no training image had. A null entry stands for "no prior": it points
at the classes no object prior names and at background. Trained by its own loss (the pointed mass
on the query's matched class) and added to the class logits with a fixed weight, so training can
neither ignore it nor learn it away.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class PriorNamePointer(nn.Module):
    """Pointer weights over [null, object priors] from queries (B, Q, dim) and the objects'
    attribute-word embeddings (B, No, text_dims)."""

    def __init__(self, dim: int, text_dims: int) -> None:
        super().__init__()
        self.query_proj = nn.Linear(dim, dim)
        self.key_proj = nn.Linear(text_dims, dim)
        self.null_key = nn.Parameter(torch.randn(dim) * 0.02)

    def forward(self, query: Tensor, object_attributes: Tensor, object_mask: Tensor) -> Tensor:
        """Softmax weights (B, Q, 1 + No), the null entry first; absent objects get 0."""
        batch = query.shape[0]
        keys = torch.cat(
            [self.null_key.expand(batch, 1, -1), self.key_proj(object_attributes)], dim=1
        )
        logits = self.query_proj(query) @ keys.transpose(1, 2) / math.sqrt(keys.shape[-1])
        present = torch.cat([object_mask.new_ones(batch, 1), object_mask], dim=1)
        return logits.masked_fill(~present[:, None], float("-inf")).softmax(dim=-1)


def pointed_class_mass(weights: Tensor, object_classes: Tensor) -> Tensor:
    """How much pointer weight (..., Q, 1 + No) lands on each class, through the classes the
    null and each object stand for (..., 1 + No, C): (..., Q, C), each entry in [0, 1] (a class
    gets the weights of the objects named after it, and the null's weight if the null stands for
    it)."""
    return weights @ object_classes.to(weights)
