"""Faster stand-ins for a pipeline's rule-based annotators, run after its parser.

`FastAttributeRuler` sets exactly the coarse tags, morphology and lemma exceptions the pipeline's
`AttributeRuler` sets, at a fraction of the cost. `OpenClassLemmatizer` runs the pipeline's own
lemmatizer on the words the caption rules read (nouns, verbs, adjectives) and skips the rest.

spaCy's AttributeRuler runs its patterns through a `Matcher`, whose cost grows with every pattern
(the English pipelines carry ~180: the tag map and morph rules). Nearly all of them test a few
token attributes against fixed strings, sets or regular expressions, so here each pattern becomes
a plain Python test; one-token results are cached, longer patterns are indexed by a value their
first token must have. Patterns using other Matcher features still go through a Matcher. Later
patterns take precedence over earlier ones, as in the ruler.

Both read and write a doc's token attributes as whole columns (`Doc.to_array` / `from_array`)
and look results up by the attribute values they depend on, so the per-token cost is a dict
lookup rather than a `Token` object and attribute calls.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import numpy
from spacy.attrs import DEP, LEMMA, LOWER, MORPH, ORTH, POS, TAG
from spacy.matcher import Matcher
from spacy.pipeline import AttributeRuler, Lemmatizer
from spacy.symbols import ADJ, AUX, NOUN, PROPN, VERB
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
# Column of each index attribute in the key array `FastAttributeRuler` reads.
KEY_COLUMNS = (ORTH, TAG, DEP, LOWER)
INDEX_COLUMN = {"TAG": 1, "DEP": 2, "LOWER": 3}


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


def _index_values(pattern: list[dict[str, Any]]) -> tuple[int, str, tuple[str, ...]] | None:
    """A position in the pattern, an attribute and the values the token there must take."""
    for position, spec in enumerate(pattern):
        for key in INDEX_ATTRIBUTES:
            condition = spec.get(key)
            if isinstance(condition, str):
                return position, key, (condition,)
            if isinstance(condition, dict) and set(condition) == {"IN"}:
                return position, key, tuple(condition["IN"])
    return None


class FastAttributeRuler:
    """Applies an AttributeRuler's patterns with Python tests instead of a Matcher.

    Matches are found first, then each token gets the attributes of the patterns matching it
    merged in pattern order (later ones win, as in the ruler). One-token patterns depend only on
    a token's (text, tag, dependency), so their matches and merged attributes are cached.
    """

    def __init__(self, ruler: AttributeRuler, cache_size: int = 200_000) -> None:
        self.ruler = ruler
        self.strings = ruler.vocab.strings
        self.single: list[tuple[int, TokenTest]] = []
        # (attribute, value hash) -> (attr_id, tests, position of the token holding that value)
        self.multi: dict[tuple[str, int], list[tuple[int, list[TokenTest], int]]] = defaultdict(
            list
        )
        self.multi_unindexed: list[tuple[int, list[TokenTest], int]] = []
        self.matcher = Matcher(ruler.vocab)
        self.match_ids = [self.strings.add(str(i)) for i in range(len(ruler.attrs))]
        self.cache: dict[tuple[int, int, int], tuple[tuple[int, ...], dict]] = {}
        self.cache_size = cache_size
        for attr_id, entry in enumerate(ruler.patterns):
            for pattern in entry["patterns"]:
                self._add(attr_id, pattern)
        self.mergeable = not len(self.matcher) and not any("_" in a for a in ruler.attrs)
        self.columns = sorted({key for attrs in ruler.attrs for key in attrs if key != "_"})
        self.column_of = {attr: column for column, attr in enumerate(self.columns)}
        # Values an index attribute must take for a longer pattern to be worth testing there.
        self.index_values = {
            name: numpy.array(sorted({value for key, value in self.multi if key == name}))
            for name in INDEX_COLUMN
        }

    def _add(self, attr_id: int, pattern: list[dict[str, Any]]) -> None:
        tests = [_token_test(spec) for spec in pattern]
        if any(test is None for test in tests):
            self.matcher.add(str(attr_id), [pattern])
        elif len(tests) == 1:
            self.single.append((attr_id, tests[0]))
        elif (index := _index_values(pattern)) is None:
            self.multi_unindexed.append((attr_id, tests, 0))
        else:
            position, key, values = index
            for value in values:
                self.multi[(key, self.strings.add(value))].append((attr_id, tests, position))

    def _merged(self, attr_ids: Iterable[int]) -> dict:
        merged: dict = {}
        for attr_id in sorted(attr_ids):
            merged.update(self.ruler.attrs[attr_id])
        return merged

    def _single(self, token: Token) -> tuple[tuple[int, ...], dict]:
        """Ids of the one-token patterns matching token, and their attributes merged."""
        key = (token.orth, token.tag, token.dep)
        found = self.cache.get(key)
        if found is None:
            if len(self.cache) >= self.cache_size:
                self.cache.clear()
            ids = tuple(attr_id for attr_id, test in self.single if test(token))
            found = self.cache[key] = (ids, self._merged(ids))
        return found

    def _candidates(self, doc: Doc, keys: numpy.ndarray | None = None) -> list[int]:
        """Positions holding a value some longer pattern is indexed by (all, if any pattern has
        no index)."""
        if self.multi_unindexed:
            return list(range(len(doc)))
        keys = doc.to_array(KEY_COLUMNS) if keys is None else keys
        hit = numpy.zeros(len(doc), dtype=bool)
        for name, column in INDEX_COLUMN.items():
            if len(self.index_values[name]):
                hit |= numpy.isin(keys[:, column], self.index_values[name])
        return numpy.flatnonzero(hit).tolist()

    def _multi_matches(self, doc: Doc, keys: numpy.ndarray | None = None) -> list[Match]:
        matches = []
        for i in self._candidates(doc, keys):
            token = doc[i]
            for key in (("LOWER", token.lower), ("TAG", token.tag), ("DEP", token.dep)):
                for attr_id, tests, position in self.multi.get(key, ()):
                    start = token.i - position
                    if self._matches_at(doc, start, tests):
                        matches.append(
                            (attr_id, self.match_ids[attr_id], start, start + len(tests))
                        )
            for attr_id, tests, _ in self.multi_unindexed:
                if self._matches_at(doc, token.i, tests):
                    matches.append(
                        (attr_id, self.match_ids[attr_id], token.i, token.i + len(tests))
                    )
        return matches

    @staticmethod
    def _matches_at(doc: Doc, start: int, tests: list[TokenTest]) -> bool:
        if start < 0 or start + len(tests) > len(doc):
            return False
        return all(test(doc[start + k]) for k, test in enumerate(tests))

    def match(self, doc: Doc) -> list[Match]:
        """All matches in the ruler's format: (attr_id, match_id, start, end), sorted."""
        matches = set(self._multi_matches(doc))
        for match_id, start, end in self.matcher(doc, allow_missing=True):
            matches.add((int(self.strings[match_id]), match_id, start, end))
        for token in doc:
            for attr_id in self._single(token)[0]:
                matches.add((attr_id, self.match_ids[attr_id], token.i, token.i + 1))
        return sorted(matches)

    def _targets(self, doc: Doc, keys: numpy.ndarray) -> dict[int, list[int]]:
        """Token index -> ids of the longer patterns that set its attributes."""
        targets: dict[int, list[int]] = defaultdict(list)
        for attr_id, _, start, end in self._multi_matches(doc, keys):
            targets[range(start, end)[self.ruler.indices[attr_id]]].append(attr_id)
        return targets

    def __call__(self, doc: Doc) -> Doc:
        if not self.mergeable:
            self.ruler.set_annotations(doc, self.match(doc))
            return doc
        if not len(doc) or not self.columns:
            return doc
        keys = doc.to_array(KEY_COLUMNS)
        targets = self._targets(doc, keys)
        values = doc.to_array(self.columns).reshape(len(doc), len(self.columns))
        for i, (orth, tag, dep, _) in enumerate(keys.tolist()):
            found = self.cache.get((orth, tag, dep))
            ids, merged = found if found is not None else self._single(doc[i])
            if i in targets:
                merged = self._merged({*ids, *targets[i]})
            for attr, value in merged.items():
                values[i, self.column_of[attr]] = value
        doc.from_array(self.columns, values)
        return doc


class OpenClassLemmatizer:
    """The pipeline's lemmatizer, applied only to open-class words that have no lemma yet; its
    answers are cached by what they depend on (text, coarse tag, morphology)."""

    OPEN_CLASSES = numpy.array(sorted({NOUN, PROPN, VERB, AUX, ADJ}), dtype="uint64")
    COLUMNS = (ORTH, POS, MORPH, LEMMA)

    def __init__(self, lemmatizer: Lemmatizer, cache_size: int = 200_000) -> None:
        self.lemmatizer = lemmatizer
        self.cache: dict[tuple[int, int, int], int] = {}
        self.cache_size = cache_size

    def __call__(self, doc: Doc) -> Doc:
        if not len(doc):
            return doc
        values = doc.to_array(self.COLUMNS)
        pending = numpy.isin(values[:, 1], self.OPEN_CLASSES) & (values[:, 3] == 0)
        rows = numpy.flatnonzero(pending).tolist()
        if not rows:
            return doc
        strings = doc.vocab.strings
        for i in rows:
            orth, pos, morph, _ = values[i].tolist()
            lemma = self.cache.get((orth, pos, morph))
            if lemma is None:
                if len(self.cache) >= self.cache_size:
                    self.cache.clear()
                lemma = strings.add(self.lemmatizer.lemmatize(doc[i])[0])
                self.cache[(orth, pos, morph)] = lemma
            values[i, 3] = lemma
        doc.from_array([LEMMA], values[:, 3:4])
        return doc
