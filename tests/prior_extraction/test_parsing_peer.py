"""The sng_parser adapter: its scene graphs mapped onto the prior contract."""

from __future__ import annotations

import pytest

from prior_extraction.caption_priors import AttributePrior, ObjectPrior, RelationPrior
from prior_extraction.peer_parser import PeerParser, graph_to_priors


def entity(head: str, span: str, *modifiers: tuple[str, str]) -> dict:
    return {
        "lemma_head": head,
        "span": span,
        "modifiers": [{"dep": dep, "span": text, "lemma_span": text} for dep, text in modifiers],
    }


def test_graph_to_priors_merges_entities_and_keeps_amod_and_nummod() -> None:
    graph = {
        "entities": [
            entity("man", "a tall man", ("det", "a"), ("amod", "tall")),
            entity("horse", "two horses", ("nummod", "two")),
            entity("Man", "the man", ("det", "the")),
        ],
        "relations": [
            {"subject": 2, "object": 1, "lemma_relation": "ride"},
            {"subject": 0, "object": 1, "lemma_relation": "ride"},
        ],
    }
    priors = graph_to_priors(graph)
    assert priors.objects == [
        ObjectPrior("man", "a tall man", 1),
        ObjectPrior("horse", "two horses", 1),
    ]
    assert priors.attributes == [
        AttributePrior(0, "tall", "size"),
        AttributePrior(1, "two", "count"),
    ]
    assert priors.relations == [RelationPrior(0, "ride", 1)]


def test_the_peer_runs_on_this_spacy_and_survives_bad_input() -> None:
    pytest.importorskip("sng_parser")
    peer = PeerParser()
    parsed = peer.parse_many(["A man is riding a horse.", "", None])
    assert [o.name for o in parsed[0].objects] == ["man", "horse"]
    assert parsed[1].objects == [] and parsed[2].objects == []


def test_the_peer_on_numpy_blas_parses_as_published() -> None:
    pytest.importorskip("sng_parser")
    texts = ["A man in a red shirt is riding a brown horse next to a fence.", "Two dogs sleep."]
    on_blis, on_numpy = PeerParser(), PeerParser(numpy_blas=True)
    assert on_numpy.parser._inst.nlp.get_pipe("parser").model.ops.use_blis is False
    assert on_numpy.parse_many(texts) == on_blis.parse_many(texts)
