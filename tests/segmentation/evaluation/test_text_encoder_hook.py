"""EvaluatorTextEncoderHook: metrics embed class names with the evaluated model's text encoder."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch
from mmseg.registry import HOOKS, METRICS

import segmentation  # noqa: F401  (registers the plugin)
from segmentation.text import TextEncoder


class _HashedWords(TextEncoder):
    """A stand-in encoder: a fixed random vector per text, drawn from its own seed."""

    embed_dim = 4

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.name = f"hashed-{seed}"
        self.seed = seed
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def encode_batch(self, texts: list[str]) -> torch.Tensor:
        def vector(text: str) -> torch.Tensor:
            generator = torch.Generator().manual_seed(self.seed * 1000 + sum(map(ord, text)))
            return torch.randn(self.embed_dim, generator=generator)

        return torch.stack([vector(text) for text in texts])


def _runner(model_encoder: TextEncoder, metric) -> SimpleNamespace:
    evaluator = SimpleNamespace(metrics=[metric, METRICS.build(dict(type="IoUMetric"))])
    return SimpleNamespace(
        model=SimpleNamespace(text_encoder=model_encoder),
        val_loop=SimpleNamespace(evaluator=evaluator),
        test_loop=SimpleNamespace(evaluator=evaluator),
    )


def test_validation_and_testing_embed_with_the_models_encoder() -> None:
    hook = HOOKS.build(dict(type="EvaluatorTextEncoderHook"))
    names = ["cat", "sky"]
    for stage, seed in (("before_val", 1), ("before_test", 2)):
        metric = METRICS.build(dict(type="OpenIoUMetric"))
        metric.set_text_encoder(_HashedWords(seed=9))  # replaced by the model's
        model_encoder = _HashedWords(seed)
        getattr(hook, stage)(_runner(model_encoder, metric))
        np.testing.assert_allclose(metric.embed(names), model_encoder(names).numpy())
