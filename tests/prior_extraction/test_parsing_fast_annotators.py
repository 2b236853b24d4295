"""The fast stand-ins annotate exactly as the pipeline's own attribute ruler and lemmatizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import spacy

from prior_extraction.fast_annotators import FastAttributeRuler, OpenClassLemmatizer
from prior_extraction.nlp import choose_spacy_pipeline

LABELLED = Path(__file__).parent / "data" / "labelled_captions.jsonl"
AWKWARD = [
    "I don't think it's gonna work, y'all. C'mon, ain't that nothin'?",
    "Let's go!  Two  spaces\n\nand newlines \t tabs.",
    "That is what you said to me, and I gave it to you because you asked.",
    "Do you have the one that was there? He did, but she does not.",
]
OPEN_CLASSES = {"NOUN", "PROPN", "VERB", "AUX", "ADJ"}


@pytest.fixture(scope="module")
def nlp():
    return spacy.load(choose_spacy_pipeline(), exclude=["ner"])


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return AWKWARD + [json.loads(line)["caption"] for line in LABELLED.open()]


def tags(doc) -> list[tuple[str, ...]]:
    return [(t.text, t.tag_, t.pos_, str(t.morph), t.dep_) for t in doc]


def open_class_lemmas(doc) -> list[tuple[str, str]]:
    return [(t.text, t.lemma_) for t in doc if t.pos_ in OPEN_CLASSES]


def test_fast_ruler_sets_what_the_attribute_ruler_sets(nlp, texts: list[str]) -> None:
    expected = [
        tags(doc) + [t.lemma_ for t in doc] for doc in nlp.pipe(texts, disable=["lemmatizer"])
    ]
    fast = FastAttributeRuler(nlp.get_pipe("attribute_ruler"))
    docs = nlp.pipe(texts, disable=["attribute_ruler", "lemmatizer"])
    assert [tags(d) + [t.lemma_ for t in d] for d in map(fast, docs)] == expected


def test_multi_token_patterns_set_what_the_ruler_sets(nlp) -> None:
    fast = FastAttributeRuler(nlp.get_pipe("attribute_ruler"))
    text = "We're gonna see y'all, c'mon."
    (expected,) = nlp.pipe([text], disable=["lemmatizer"])
    (doc,) = nlp.pipe([text], disable=["attribute_ruler", "lemmatizer"])
    assert fast._multi_matches(doc), "the sentence should exercise a multi-token pattern"
    assert tags(fast(doc)) + [t.lemma_ for t in doc] == tags(expected) + [
        t.lemma_ for t in expected
    ]


def test_open_class_lemmas_are_the_lemmatizers(nlp, texts: list[str]) -> None:
    expected = [open_class_lemmas(doc) for doc in nlp.pipe(texts)]
    fast = FastAttributeRuler(nlp.get_pipe("attribute_ruler"))
    lemmatizer = OpenClassLemmatizer(nlp.get_pipe("lemmatizer"))
    docs = nlp.pipe(texts, disable=["attribute_ruler", "lemmatizer"])
    assert [open_class_lemmas(lemmatizer(fast(doc))) for doc in docs] == expected


def test_every_pattern_is_compiled_to_a_python_test(nlp) -> None:
    fast = FastAttributeRuler(nlp.get_pipe("attribute_ruler"))
    assert len(fast.matcher) == 0
    assert fast.mergeable
