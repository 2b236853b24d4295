"""The scorer: exact precision/recall/F1 arithmetic, name-based matching, file errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prior_extraction.caption_priors import (
    AttributePrior,
    ObjectPrior,
    ParsedCaption,
    RelationPrior,
)
from prior_extraction.scoring import Score, compare, load_labelled, score


def priors(names: list[str], attributes=(), relations=()) -> ParsedCaption:
    return ParsedCaption(
        [ObjectPrior(name, name, 1) for name in names],
        [AttributePrior(*a) for a in attributes],
        [RelationPrior(*r) for r in relations],
    )


def test_score_arithmetic() -> None:
    figures = Score(true_positives=3, false_positives=1, false_negatives=2)
    assert figures.precision == pytest.approx(0.75)
    assert figures.recall == pytest.approx(0.6)
    assert figures.f1 == pytest.approx(2 * 0.75 * 0.6 / 1.35)
    assert Score().f1 == 1.0
    assert Score(0, 2, 0).f1 == 0.0
    assert Score(1, 0, 0) + Score(0, 1, 1) == Score(1, 1, 1)


def test_facts_are_matched_by_name_not_index() -> None:
    gold = priors(["man", "horse"], [(1, "brown", "color")], [(0, "ride", 1)])
    found = priors(["Horse", "man", "hat"], [(0, "Brown", "color")], [(1, "ride", 0)])
    result = compare(found, gold)
    assert result["objects"] == Score(2, 1, 0)
    assert result["attributes"] == Score(1, 0, 0)
    assert result["relations"] == Score(1, 0, 0)


def test_wrong_predicate_or_direction_counts_as_a_miss() -> None:
    gold = priors(["man", "horse"], relations=[(0, "ride", 1)])
    found = priors(["man", "horse"], relations=[(1, "ride", 0), (0, "on", 1)])
    assert compare(found, gold)["relations"] == Score(0, 2, 1)
    assert compare(found, gold)["relation_pairs"] == Score(1, 1, 0)


def test_score_sums_over_captions_and_checks_alignment() -> None:
    gold = [priors(["cat"]), priors(["dog", "ball"])]
    found = [priors(["cat", "mat"]), priors(["dog"])]
    assert score(found, gold)["objects"] == Score(2, 1, 1)
    with pytest.raises(ValueError, match="1 predictions for 2 gold captions"):
        score(found[:1], gold)


def test_load_labelled_filters_splits_and_names_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "gold.jsonl"
    good = {"id": "a", "caption": "A cat.", "split": "dev", "objects": [{"name": "cat"}]}
    path.write_text(json.dumps(good) + "\n\n" + json.dumps({**good, "id": "b", "split": "test"}))
    assert [item.id for item in load_labelled(path, ["test"])] == ["b"]
    assert load_labelled(path)[0].gold.objects == [ObjectPrior("cat", "cat", 1)]
    path.write_text(json.dumps(good) + "\n{broken\n")
    with pytest.raises(ValueError, match=r"gold.jsonl:2: not a labelled caption"):
        load_labelled(path)
