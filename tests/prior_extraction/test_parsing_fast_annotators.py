"""FastAttributeRuler sets exactly what the pipeline's own AttributeRuler sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import spacy

from prior_extraction.fast_attributes import FastAttributeRuler
from prior_extraction.nlp import choose_spacy_pipeline

LABELLED = Path(__file__).parent / "data" / "labelled_captions.jsonl"
AWKWARD = [
    "I don't think it's gonna work, y'all. C'mon, ain't that nothin'?",
    "Let's go!  Two  spaces\n\nand newlines \t tabs.",
    "That is what you said to me, and I gave it to you because you asked.",
    "Do you have the one that was there? He did, but she does not.",
]


@pytest.fixture(scope="module")
def nlp():
    return spacy.load(choose_spacy_pipeline(), exclude=["ner"])


def annotations(doc) -> list[tuple[str, ...]]:
    return [(t.text, t.tag_, t.pos_, str(t.morph), t.lemma_, t.dep_) for t in doc]


def test_same_tags_morphology_and_lemmas_as_the_attribute_ruler(nlp) -> None:
    texts = AWKWARD + [json.loads(line)["caption"] for line in LABELLED.open()]
    expected = [annotations(doc) for doc in nlp.pipe(texts)]
    fast = FastAttributeRuler(nlp.get_pipe("attribute_ruler"))
    lemmatizer = nlp.get_pipe("lemmatizer")
    docs = nlp.pipe(texts, disable=["attribute_ruler", "lemmatizer"])
    assert [annotations(lemmatizer(fast(doc))) for doc in docs] == expected


def test_every_pattern_is_compiled_to_a_python_test(nlp) -> None:
    fast = FastAttributeRuler(nlp.get_pipe("attribute_ruler"))
    compiled = len(fast.single) + sum(len(v) for v in fast.multi.values())
    assert len(fast.matcher) == 0
    assert compiled >= len(nlp.get_pipe("attribute_ruler").patterns)
