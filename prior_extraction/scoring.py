"""Precision, recall and F1 of parsed priors against hand-labelled captions, per prior type.

Priors are compared as facts named by object names, so any parser's output can be scored:
objects as names, attributes as (object name, value), relations as (subject name, predicate,
object name). Each caption's facts form a set; counts are micro-averaged over captions.
`relation_pairs` also scores relations by (subject, object) alone, to tell a wrong predicate
phrase ("on" for "sit on") from a missed or wrong pair.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from prior_extraction.caption_priors import ParsedCaption

PRIOR_TYPES = ("objects", "attributes", "relations")
SCORED = (*PRIOR_TYPES, "relation_pairs")


@dataclass(frozen=True)
class LabelledCaption:
    """One caption of a labelled set with its gold priors; `split` is "dev" or "test"."""

    id: str
    caption: str
    split: str
    gold: ParsedCaption


@dataclass(frozen=True)
class Score:
    """True positives, false positives and false negatives of one prior type."""

    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        expected = self.true_positives + self.false_negatives
        return self.true_positives / expected if expected else 1.0

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0

    def __add__(self, other: Score) -> Score:
        return Score(
            self.true_positives + other.true_positives,
            self.false_positives + other.false_positives,
            self.false_negatives + other.false_negatives,
        )

    def to_dict(self) -> dict[str, float]:
        return {
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
        }


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


def caption_facts(priors: ParsedCaption) -> dict[str, set[tuple[str, ...]]]:
    """The comparable facts of one caption, keyed by prior type."""
    names = [_normalise(item.name) for item in priors.objects]
    return {
        "objects": {(name,) for name in names},
        "attributes": {(names[a.object], _normalise(a.value)) for a in priors.attributes},
        "relations": {
            (names[r.subject], _normalise(r.predicate), names[r.object]) for r in priors.relations
        },
        "relation_pairs": {(names[r.subject], names[r.object]) for r in priors.relations},
    }


def compare(predicted: ParsedCaption, gold: ParsedCaption) -> dict[str, Score]:
    """Scores of one caption, per prior type (and relation_pairs)."""
    found, expected = caption_facts(predicted), caption_facts(gold)
    return {
        kind: Score(
            len(found[kind] & expected[kind]),
            len(found[kind] - expected[kind]),
            len(expected[kind] - found[kind]),
        )
        for kind in SCORED
    }


def score(predicted: Sequence[ParsedCaption], gold: Sequence[ParsedCaption]) -> dict[str, Score]:
    """Micro-averaged scores over aligned lists of predicted and gold priors."""
    if len(predicted) != len(gold):
        raise ValueError(f"{len(predicted)} predictions for {len(gold)} gold captions")
    totals = {kind: Score() for kind in SCORED}
    for found, expected in zip(predicted, gold, strict=True):
        for kind, caption_score in compare(found, expected).items():
            totals[kind] = totals[kind] + caption_score
    return totals


def load_labelled(path: str | Path, splits: Iterable[str] | None = None) -> list[LabelledCaption]:
    """Read a labelled caption set: JSONL lines `{"id", "caption", "split", "objects",
    "attributes", "relations"}` (the prior JSON contract plus id, caption and split)."""
    wanted = set(splits) if splits is not None else None
    labelled = []
    with Path(path).open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                item = LabelledCaption(
                    str(record["id"]),
                    record["caption"],
                    record.get("split", "test"),
                    ParsedCaption.from_dict(record),
                )
            except (ValueError, KeyError, TypeError) as error:
                raise ValueError(f"{path}:{number}: not a labelled caption: {error}") from error
            if wanted is None or item.split in wanted:
                labelled.append(item)
    return labelled
