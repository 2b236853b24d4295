"""The labelled caption sets are well formed and the parser meets the issue's accuracy targets on
both splits of each (dev was used to write rules, test was not): short captions, multi-sentence
descriptions in the style of LLaVA / GPT-4V detailed answers, and longer real-style descriptions
with located predicates, clauses and locating modifiers (issue #28)."""

from __future__ import annotations

from pathlib import Path

import pytest

from prior_extraction.caption_text import clean_caption
from prior_extraction.parsing import CaptionParser
from prior_extraction.scoring import LabelledCaption, load_labelled, score

DATA = Path(__file__).parent / "data"
SHORT = DATA / "labelled_captions.jsonl"
PARAGRAPHS = DATA / "labelled_paragraphs.jsonl"
REAL_STYLE = DATA / "labelled_realstyle.jsonl"
TARGET_F1 = {
    SHORT: {"objects": 0.90, "attributes": 0.85, "relations": 0.70},
    PARAGRAPHS: {"objects": 0.88, "attributes": 0.80, "relations": 0.65},
    REAL_STYLE: {"objects": 0.88, "attributes": 0.83, "relations": 0.68},
}
# Issue #28's targets for the whole real-style set.
REAL_STYLE_TARGET_F1 = {"objects": 0.92, "attributes": 0.88, "relations": 0.72}
MIN_SIZE = {SHORT: 60, PARAGRAPHS: 80, REAL_STYLE: 80}
MIN_SENTENCES, MAX_SENTENCES = 3, 8
MIN_WORDS, MAX_WORDS = 60, 130
SETS = [SHORT, PARAGRAPHS, REAL_STYLE]
SET_IDS = ["short", "paragraphs", "real-style"]


@pytest.fixture(scope="module")
def parser() -> CaptionParser:
    return CaptionParser()


def _check_consistent(items: list[LabelledCaption]) -> None:
    assert {item.split for item in items} == {"dev", "test"}
    assert len({item.id for item in items}) == len(items)
    for item in items:
        size = len(item.gold.objects)
        assert all(0 <= a.object < size for a in item.gold.attributes), item.id
        assert all(0 <= r.subject < size and 0 <= r.object < size for r in item.gold.relations)
        assert len({o.name for o in item.gold.objects}) == size, item.id


@pytest.mark.parametrize("path", SETS, ids=SET_IDS)
def test_the_labelled_sets_are_large_enough_and_consistent(path: Path) -> None:
    items = load_labelled(path)
    assert len(items) >= MIN_SIZE[path]
    _check_consistent(items)


def test_the_paragraphs_are_paragraphs(parser: CaptionParser) -> None:
    items = load_labelled(PARAGRAPHS)
    docs = parser.nlp.pipe(clean_caption(item.caption) for item in items)
    sentence_counts = [len(list(doc.sents)) for doc in docs]
    assert all(MIN_SENTENCES <= count <= MAX_SENTENCES for count in sentence_counts)
    assert sum(len(item.caption.split()) for item in items) / len(items) >= 50


def test_the_real_style_descriptions_are_long_paragraphs(parser: CaptionParser) -> None:
    items = load_labelled(REAL_STYLE)
    docs = parser.nlp.pipe(clean_caption(item.caption) for item in items)
    assert all(MIN_SENTENCES <= len(list(doc.sents)) <= MAX_SENTENCES for doc in docs)
    assert all(MIN_WORDS <= len(item.caption.split()) <= MAX_WORDS for item in items)
    assert [item.split for item in items].count("test") == len(items) // 2


@pytest.mark.parametrize("path", SETS, ids=SET_IDS)
@pytest.mark.parametrize("split", ["dev", "test"])
def test_f1_meets_the_targets(parser: CaptionParser, path: Path, split: str) -> None:
    items = load_labelled(path, [split])
    scores = score(parser.parse_many([i.caption for i in items]), [i.gold for i in items])
    achieved = {kind: round(scores[kind].f1, 3) for kind in TARGET_F1[path]}
    assert all(achieved[kind] >= target for kind, target in TARGET_F1[path].items()), achieved


def test_f1_on_the_whole_real_style_set_meets_the_issue_targets(parser: CaptionParser) -> None:
    items = load_labelled(REAL_STYLE)
    scores = score(parser.parse_many([i.caption for i in items]), [i.gold for i in items])
    achieved = {kind: round(scores[kind].f1, 3) for kind in REAL_STYLE_TARGET_F1}
    assert all(achieved[kind] >= REAL_STYLE_TARGET_F1[kind] for kind in achieved), achieved
