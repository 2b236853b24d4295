"""Dependency rules (ClearNLP labels) that read object, attribute and relation priors off one
parsed spaCy `Doc`. Rules follow the tree, not phrasings; closed word lists live in `lexicon`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from spacy.tokens import Doc, Token

from prior_extraction import lexicon
from prior_extraction.caption_priors import (
    AttributePrior,
    ObjectPrior,
    ParsedCaption,
    RelationPrior,
)

NOUN_POS = frozenset({"NOUN", "PROPN"})
PLURAL_TAGS = frozenset({"NNS", "NNPS"})
SUBJECT_DEPS = frozenset({"nsubj", "nsubjpass"})
# Clauses that share the subject of the word they hang from when they name none themselves.
SUBJECT_SHARING_DEPS = frozenset({"xcomp", "advcl", "conj", "ccomp"})
MODIFIER_CLAUSE_DEPS = frozenset({"acl", "relcl"})
ADVERBIAL_HEAD_DEPS = frozenset({"advmod", "acomp", "amod", "npadvmod"})
RELATIVE_PRONOUNS = frozenset({"who", "that", "which", "whom"})
NEGATING_PREPOSITIONS = frozenset({"without", "except"})
NEGATING_DETERMINERS = frozenset({"no", "neither"})
PARTICIPLE_TAGS = frozenset({"VBN", "VBG"})
MAX_CLAUSE_DEPTH = 8


@dataclass(frozen=True)
class Mention:
    """One occurrence of an object in the text, kept for pronoun reference."""

    token_index: int
    object_index: int
    gender: str | None
    plural: bool


@dataclass
class _Collector:
    """Objects merged by name, attributes and relations deduplicated, all in text order."""

    objects: list[ObjectPrior] = field(default_factory=list)
    index_by_name: dict[str, int] = field(default_factory=dict)
    attributes: dict[tuple[int, str], AttributePrior] = field(default_factory=dict)
    relations: dict[tuple[int, str, int], RelationPrior] = field(default_factory=dict)

    def add_object(self, name: str, span: str, count: int) -> int:
        index = self.index_by_name.get(name)
        if index is None:
            index = self.index_by_name[name] = len(self.objects)
            self.objects.append(ObjectPrior(name, span, count))
        elif count > self.objects[index].count:
            previous = self.objects[index]
            self.objects[index] = ObjectPrior(name, previous.span, count)
        return index

    def add_attribute(self, object_index: int, value: str, kind: str) -> None:
        self.attributes.setdefault(
            (object_index, value), AttributePrior(object_index, value, kind)
        )

    def add_relation(self, subject: int, predicate: str, obj: int) -> None:
        if subject != obj and predicate:
            key = (subject, predicate, obj)
            self.relations.setdefault(key, RelationPrior(subject, predicate, obj))

    def result(self) -> ParsedCaption:
        return ParsedCaption(
            self.objects, list(self.attributes.values()), list(self.relations.values())
        )


def lemma(token: Token) -> str:
    """Lower-case lemma with the lemmatizer's known slips fixed ("riding" -> "ride")."""
    return lexicon.LEMMA_FIXES.get(token.lower_, token.lemma_.lower())


def with_conjuncts(token: Token) -> list[Token]:
    """The token and every token coordinated with it ("bananas, apples, and oranges")."""
    return [token, *token.conjuncts] if token.conjuncts else [token]


def is_negated(token: Token) -> bool:
    return any(child.dep_ == "neg" for child in token.children)


def _is_name_part(token: Token) -> bool:
    """A noun modifier that belongs to the object's name ("teddy" bear, "living" room)."""
    if token.dep_ != "compound" and not (token.dep_ == "amod" and token.pos_ in NOUN_POS):
        return False
    return token.lower_ not in lexicon.MATERIALS and token.lower_ not in lexicon.COLORS


def _of_object(token: Token) -> Token | None:
    """The noun after "of" hanging from token ("group of [people]"), if any."""
    for child in token.children:
        if child.dep_ == "prep" and child.lower_ == "of":
            for grandchild in child.children:
                if grandchild.dep_ == "pobj":
                    return grandchild
    return None


def _is_collective(token: Token) -> bool:
    return token.lemma_.lower() in lexicon.COLLECTIVE_NOUNS and _of_object(token) is not None


def _collective_parent(token: Token) -> Token | None:
    """For "people" in "a group of people", the token "group"."""
    preposition = token.head
    if token.dep_ != "pobj" or preposition.lower_ != "of":
        return None
    parent = preposition.head
    return parent if parent.lemma_.lower() in lexicon.COLLECTIVE_NOUNS else None


def is_object_head(token: Token) -> bool:
    """Whether token heads a noun phrase naming a segmentable thing."""
    if token.pos_ not in NOUN_POS or token.dep_ == "compound" or not token.text.isalpha():
        return False
    if token.dep_ == "amod" or _is_collective(token):
        return False
    name = lemma(token)
    if name in lexicon.META_NOUNS:
        return False
    if name in lexicon.POSITION_NOUNS and not any(_is_name_part(c) for c in token.lefts):
        return False
    return not any(
        child.dep_ == "det" and child.lower_ in NEGATING_DETERMINERS
        for child in token.children
    )


def object_name(token: Token) -> str:
    """Head lemma with its compound modifiers, material and colour nouns left out."""
    parts = [part for child in token.lefts if _is_name_part(child) for part in _name_parts(child)]
    return " ".join([*parts, lemma(token)])


def _name_parts(token: Token) -> list[str]:
    inner = [part for child in token.lefts if _is_name_part(child) for part in _name_parts(child)]
    return [*inner, token.lower_]


def object_span(token: Token) -> str:
    """The surface words of the mention: modifiers before the head, without the determiner."""
    start = token.i
    for child in token.lefts:
        if child.dep_ in {"amod", "compound", "nummod", "quantmod"} or _is_name_part(child):
            start = min(start, child.left_edge.i)
    return token.doc[start : token.i + 1].text


def object_count(token: Token) -> int:
    """The number stated or implied: a numeral, a quantifier, a plural (2), else 1."""
    for child in token.children:
        if child.dep_ in {"nummod", "amod", "det", "quantmod"}:
            value = lexicon.number_value(child.lower_)
            value = value if value is not None else lexicon.QUANTIFIERS.get(child.lower_)
            if value is not None:
                return value
    parent = _collective_parent(token)
    if parent is not None:
        return lexicon.NUMBER_WORDS.get(parent.lemma_.lower(), 2)
    return 2 if token.tag_ in PLURAL_TAGS else 1


class DocPriors:
    """Extracts the priors of one Doc: objects first, then attributes and relations."""

    def __init__(self, doc: Doc) -> None:
        self.doc = doc
        self.collected = _Collector()
        self.mentions: list[Mention] = []
        self.object_at: dict[int, int] = {}

    def extract(self) -> ParsedCaption:
        self._collect_objects()
        for mention in self.mentions:
            self._modifier_attributes(self.doc[mention.token_index], mention.object_index)
        for token in self.doc:
            if token.dep_ in {"acomp", "oprd"}:
                self._predicative_attributes(token)
            if token.pos_ in {"VERB", "AUX"}:
                self._verb_relations(token)
            elif token.i in self.object_at:
                self._noun_relations(token)
        return self.collected.result()

    def _collect_objects(self) -> None:
        for token in self.doc:
            if not is_object_head(token):
                continue
            name = object_name(token)
            index = self.collected.add_object(name, object_span(token), object_count(token))
            self.object_at[token.i] = index
            plural = token.tag_ in PLURAL_TAGS or _collective_parent(token) is not None
            self.mentions.append(
                Mention(token.i, index, lexicon.person_gender(name), plural)
            )

    # Attributes

    def _add_attribute(self, object_index: int, token: Token) -> None:
        value = token.lower_
        if value in lexicon.NON_DESCRIPTIVE_ADJECTIVES or not token.text.isalnum():
            return
        kind = lexicon.attribute_kind(value, token.tag_ in PARTICIPLE_TAGS)
        self.collected.add_attribute(object_index, value, kind)

    def _modifier_attributes(self, head: Token, object_index: int) -> None:
        for child in head.children:
            if child.dep_ in {"nummod", "quantmod"} or (
                child.dep_ == "det" and child.lower_ in lexicon.QUANTIFIERS
            ):
                self._add_attribute(object_index, child)
            elif child.dep_ in {"amod", "compound"} and not _is_name_part(child):
                if child.dep_ == "compound" and child.pos_ in NOUN_POS:
                    self._add_attribute(object_index, child)
                    continue
                for adjective in with_conjuncts(child):
                    if not _has_prepositional_object(adjective):
                        self._add_attribute(object_index, adjective)
        parent = _collective_parent(head)
        if parent is not None:
            self.collected.add_attribute(object_index, parent.lemma_.lower(), "count")

    def _predicative_attributes(self, adjective: Token) -> None:
        verb = adjective.head
        if is_negated(verb) or verb.pos_ not in {"VERB", "AUX"}:
            return
        for subject in self.subjects_of(verb):
            for conjunct in with_conjuncts(adjective):
                if not _has_prepositional_object(conjunct):
                    self._add_attribute(subject, conjunct)

    # Relations

    def _verb_relations(self, verb: Token) -> None:
        if is_negated(verb):
            return
        subjects = self.subjects_of(verb)
        if not subjects:
            return
        base = "" if verb.lemma_ == "be" else _verb_phrase(verb)
        agents = [
            grandchild
            for child in verb.children
            if child.dep_ == "agent"
            for pobj in child.children
            if pobj.dep_ == "pobj"
            for grandchild in with_conjuncts(pobj)
        ]
        for agent in agents:
            for agent_index in self.resolve(agent):
                for subject in subjects:
                    self.collected.add_relation(agent_index, base, subject)
        for child in verb.children:
            if child.dep_ in {"dobj", "dative"}:
                self._relate(subjects, base, with_conjuncts(child))
        for phrase, target in prepositional_phrases(verb):
            self._relate(subjects, f"{base} {phrase}".strip(), with_conjuncts(target))

    def _noun_relations(self, noun: Token) -> None:
        subject = self.object_at[noun.i]
        for phrase, target in prepositional_phrases(noun):
            self._relate([subject], phrase, with_conjuncts(target))

    def _relate(self, subjects: list[int], predicate: str, targets: Iterable[Token]) -> None:
        if not predicate:
            return
        for target in targets:
            for object_index in self.resolve(target, exclude=subjects):
                for subject in subjects:
                    self.collected.add_relation(subject, predicate, object_index)

    # Reference

    def subjects_of(self, verb: Token) -> list[int]:
        """Object indices of whoever does (or, passive, undergoes) what the verb says."""
        for _ in range(MAX_CLAUSE_DEPTH):
            found = self._own_subjects(verb)
            if found is not None:
                return found
            if verb.dep_ in MODIFIER_CLAUSE_DEPS:
                return self.resolve(verb.head)
            if verb.dep_ not in SUBJECT_SHARING_DEPS or verb.head.pos_ not in {"VERB", "AUX"}:
                return []
            verb = verb.head
        return []

    def _own_subjects(self, verb: Token) -> list[int] | None:
        subjects = [child for child in verb.children if child.dep_ in SUBJECT_DEPS]
        if any(child.dep_ == "expl" for child in verb.children):
            subjects = [child for child in verb.children if child.dep_ == "attr"]
        if not subjects:
            return None
        resolved: list[int] = []
        for subject in subjects:
            for token in with_conjuncts(subject):
                if token.lower_ in RELATIVE_PRONOUNS and verb.dep_ == "relcl":
                    token = verb.head
                resolved.extend(i for i in self.resolve(token) if i not in resolved)
        return resolved

    def resolve(self, token: Token, exclude: Iterable[int] = ()) -> list[int]:
        """Object indices a token stands for: itself, the members of a collective, or the
        antecedent of a pronoun."""
        if token.i in self.object_at:
            return [self.object_at[token.i]]
        members = _of_object(token) if _is_collective(token) else None
        if members is not None:
            return self.resolve(members, exclude)
        antecedent = self.antecedent(token, frozenset(exclude))
        return [] if antecedent is None else [antecedent]

    def antecedent(self, token: Token, exclude: frozenset[int]) -> int | None:
        """The most recent earlier object a pronoun ("he", "it", "the other") can refer to."""
        word = token.lower_
        accepts = _pronoun_filter(word) if token.pos_ == "PRON" else None
        if accepts is None and word in lexicon.ANAPHORIC_WORDS and token.pos_ not in NOUN_POS:
            accepts = _any_object
        if accepts is None:
            return None
        for mention in reversed(self.mentions):
            if mention.token_index < token.i and mention.object_index not in exclude:
                if accepts(mention):
                    return mention.object_index
        return None


def _any_object(mention: Mention) -> bool:
    return True


def _pronoun_filter(word: str):
    """A test for mentions a personal pronoun may refer to; None for other pronouns."""
    if word in lexicon.MALE_PRONOUNS:
        return lambda m: m.gender in {"male", "person"} and not m.plural
    if word in lexicon.FEMALE_PRONOUNS:
        return lambda m: m.gender in {"female", "person"} and not m.plural
    if word in lexicon.NEUTER_PRONOUNS:
        return lambda m: m.gender is None and not m.plural
    if word in lexicon.PLURAL_PRONOUNS:
        return lambda m: m.plural
    return None


def _verb_phrase(verb: Token) -> str:
    particles = [child.lower_ for child in verb.children if child.dep_ == "prt"]
    return " ".join([lemma(verb), *particles])


def _has_prepositional_object(token: Token) -> bool:
    """Whether an adjective governs a prepositional object ("full of", "close to")."""
    return any(
        child.dep_ == "prep" and any(True for _ in _preposition_targets(child))
        for child in token.children
    )


def prepositional_phrases(token: Token) -> Iterator[tuple[str, Token]]:
    """(preposition phrase, object noun) pairs hanging from token, multiword ones joined:
    "on" table, "next to" vase, "in front of" wall, "on top of" table."""
    for child in token.children:
        if child.dep_ == "prep":
            yield from _preposition_targets(child)
        elif child.dep_ in ADVERBIAL_HEAD_DEPS and child.pos_ in {"ADV", "ADJ"}:
            for grandchild in child.children:
                if grandchild.dep_ == "prep":
                    for phrase, target in _preposition_targets(grandchild):
                        yield f"{child.lower_} {phrase}", target


def _preposition_targets(preposition: Token) -> Iterator[tuple[str, Token]]:
    if preposition.lower_ not in NEGATING_PREPOSITIONS:
        yield from _preposition_children(preposition)


def _preposition_children(preposition: Token) -> Iterator[tuple[str, Token]]:
    for child in preposition.children:
        if child.dep_ == "pobj":
            yield _through_position_noun(preposition.lower_, child)
        elif child.dep_ in {"prep", "pcomp"} and child.pos_ == "ADP":
            for phrase, target in _preposition_children(child):
                yield f"{preposition.lower_} {phrase}", target


def _through_position_noun(preposition: str, noun: Token) -> tuple[str, Token]:
    """Fold "in front of X" / "in the middle of X" into one phrase whose object is X."""
    if lemma(noun) not in lexicon.POSITION_NOUNS:
        return preposition, noun
    inner = _of_object(noun)
    if inner is None:
        return preposition, noun
    words = [preposition, *(t.lower_ for t in noun.lefts), noun.lower_, "of"]
    return " ".join(words), inner


def extract_priors(doc: Doc) -> ParsedCaption:
    """All object, attribute and relation priors of one parsed caption."""
    return DocPriors(doc).extract()
