"""A drop-in for a pipeline's `AttributeRuler` that sets the same coarse tags, morphology and
lemma exceptions at a fraction of the cost.

spaCy's AttributeRuler runs its patterns through a `Matcher`, whose cost grows with every pattern
(the English pipelines carry ~180: the tag map and morph rules). Nearly all of them test a few
token attributes against fixed strings, sets or regular expressions, so here each pattern becomes
a plain Python test; one-token results are cached, longer patterns are indexed by a value their
first token must have. Patterns using other Matcher features still go through a Matcher. Matches
are applied by the ruler itself, in its own order, so later patterns take precedence as before.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from spacy.matcher import Matcher
from spacy.pipeline import AttributeRuler
from spacy.tokens import Doc, Token

Match = tuple[int, int, int, int]
TokenTest = Callable[[Token], bool]

TOKEN_ATTRIBUTES: dict[str, Callable[[Token], Any]] = {
    "TAG": lambda token: token.tag_,
    "LOWER": lambda token: token.lower_,
    "DEP": lambda token: token.dep_,
    "ORTH": lambda token: token.text,
    "IS_SPACE": lambda token: token.is_space,
}
INDEX_ATTRIBUTES = ("LOWER", "TAG", "DEP")


def _value_test(read: Callable[[Token], Any], condition: Any) -> TokenTest | None:
    """A test for one attribute condition: a value, {"IN"}, {"NOT_IN"} or {"REGEX"}."""
    if isinstance(condition, str | bool):
        return lambda token: read(token) == condition
    if not isinstance(condition, dict) or len(condition) != 1:
        return None
    operator, operand = next(iter(condition.items()))
    if operator == "IN":
        members = frozenset(operand)
        return lambda token: read(token) in members
    if operator == "NOT_IN":
        excluded = frozenset(operand)
        return lambda token: read(token) not in excluded
    if operator == "REGEX":
        expression = re.compile(operand)
        return lambda token: expression.search(read(token)) is not None
    return None


def _token_test(spec: dict[str, Any]) -> TokenTest | None:
    """One test for all conditions of a token spec, or None if it uses other features."""
    if not spec or set(spec) - set(TOKEN_ATTRIBUTES):
        return None
    tests = [_value_test(TOKEN_ATTRIBUTES[key], value) for key, value in spec.items()]
    if any(test is None for test in tests):
        return None
    return lambda token: all(test(token) for test in tests)


def _index_values(spec: dict[str, Any]) -> tuple[str, tuple[str, ...]] | None:
    """An attribute and the values the first token must take for the pattern to match."""
    for key in INDEX_ATTRIBUTES:
        condition = spec.get(key)
        if isinstance(condition, str):
            return key, (condition,)
        if isinstance(condition, dict) and set(condition) == {"IN"}:
            return key, tuple(condition["IN"])
    return None


class FastAttributeRuler:
    """Applies an AttributeRuler's patterns with Python tests instead of a Matcher; one-token
    results are cached per (text, tag, dependency), all they depend on."""

    def __init__(self, ruler: AttributeRuler, cache_size: int = 200_000) -> None:
        self.ruler = ruler
        self.single: list[tuple[int, TokenTest]] = []
        self.multi: dict[tuple[str, str], list[tuple[int, list[TokenTest]]]] = defaultdict(list)
        self.multi_unindexed: list[tuple[int, list[TokenTest]]] = []
        self.matcher = Matcher(ruler.vocab)
        self.match_ids = [ruler.vocab.strings.add(str(i)) for i in range(len(ruler.attrs))]
        self.cache: dict[tuple[str, str, str], tuple[int, ...]] = {}
        self.cache_size = cache_size
        for attr_id, entry in enumerate(ruler.patterns):
            for pattern in entry["patterns"]:
                self._add(attr_id, pattern)

    def _add(self, attr_id: int, pattern: list[dict[str, Any]]) -> None:
        tests = [_token_test(spec) for spec in pattern]
        if any(test is None for test in tests):
            self.matcher.add(str(attr_id), [pattern])
        elif len(tests) == 1:
            self.single.append((attr_id, tests[0]))
        elif (index := _index_values(pattern[0])) is None:
            self.multi_unindexed.append((attr_id, tests))
        else:
            key, values = index
            for value in values:
                self.multi[(key, value)].append((attr_id, tests))

    def _single_matches(self, token: Token) -> tuple[int, ...]:
        key = (token.text, token.tag_, token.dep_)
        found = self.cache.get(key)
        if found is None:
            if len(self.cache) >= self.cache_size:
                self.cache.clear()
            found = self.cache[key] = tuple(i for i, test in self.single if test(token))
        return found

    def _multi_candidates(self, token: Token) -> list[tuple[int, list[TokenTest]]]:
        found = list(self.multi_unindexed)
        for key, value in (("LOWER", token.lower_), ("TAG", token.tag_), ("DEP", token.dep_)):
            found.extend(self.multi.get((key, value), ()))
        return found

    def match(self, doc: Doc) -> list[Match]:
        """Matches in the ruler's format: (attr_id, match_id, start, end), sorted by attr_id."""
        matches = set()
        for token in doc:
            start = token.i
            for attr_id in self._single_matches(token):
                matches.add((attr_id, self.match_ids[attr_id], start, start + 1))
            for attr_id, tests in self._multi_candidates(token):
                end = start + len(tests)
                if end <= len(doc) and all(t(doc[start + k]) for k, t in enumerate(tests)):
                    matches.add((attr_id, self.match_ids[attr_id], start, end))
        if len(self.matcher):
            for match_id, start, end in self.matcher(doc, allow_missing=True):
                matches.add((int(self.ruler.vocab.strings[match_id]), match_id, start, end))
        return sorted(matches)

    def __call__(self, doc: Doc) -> Doc:
        self.ruler.set_annotations(doc, self.match(doc))
        return doc
