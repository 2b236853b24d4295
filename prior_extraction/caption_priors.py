"""The priors one caption yields, as plain dataclasses that round-trip through the JSON contract
`{"objects": [{"name", "span", "count"}], "attributes": [{"object", "value", "kind"}],
"relations": [{"subject", "predicate", "object"}]}` (indices point into `objects`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

ATTRIBUTE_KINDS = ("color", "size", "material", "count", "state", "other")


@dataclass(frozen=True)
class ObjectPrior:
    """A thing the caption names: singular lemma with compounds ("teddy bear"), its first
    surface span, and how many: the number stated ("two" -> 2), the lower bound a quantifier
    implies ("several" -> 3, "a few" -> 2), 2 for a bare plural, else 1."""

    name: str
    span: str
    count: int = 1


@dataclass(frozen=True)
class AttributePrior:
    """A property of `objects[object]`, with its kind (one of ATTRIBUTE_KINDS)."""

    object: int
    value: str
    kind: str


@dataclass(frozen=True)
class RelationPrior:
    """`objects[subject]` <predicate lemma phrase> `objects[object]`, in the active voice."""

    subject: int
    predicate: str
    object: int


@dataclass
class ParsedCaption:
    """All priors of one caption; empty lists when the caption says nothing parseable."""

    objects: list[ObjectPrior] = field(default_factory=list)
    attributes: list[AttributePrior] = field(default_factory=list)
    relations: list[RelationPrior] = field(default_factory=list)

    def to_dict(self) -> dict[str, list[dict[str, Any]]]:
        """The JSON contract shared by the CLI, the store and the scorer."""
        return {
            "objects": [asdict(item) for item in self.objects],
            "attributes": [asdict(item) for item in self.attributes],
            "relations": [asdict(item) for item in self.relations],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ParsedCaption:
        """Inverse of `to_dict`; missing lists are empty, a missing count or span is defaulted."""
        objects = [
            ObjectPrior(str(o["name"]), str(o.get("span", o["name"])), int(o.get("count", 1)))
            for o in data.get("objects", [])
        ]
        attributes = [
            AttributePrior(int(a["object"]), str(a["value"]), str(a.get("kind", "other")))
            for a in data.get("attributes", [])
        ]
        relations = [
            RelationPrior(int(r["subject"]), str(r["predicate"]), int(r["object"]))
            for r in data.get("relations", [])
        ]
        return cls(objects, attributes, relations)
