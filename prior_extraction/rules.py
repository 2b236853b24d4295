"""Dependency rules (ClearNLP labels) that read object, attribute and relation priors off one
parsed spaCy `Doc`. Rules follow the tree, not phrasings; closed word lists live in `lexicon`."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from spacy.tokens import Doc, Span, Token

from prior_extraction import lexicon
from prior_extraction.caption_priors import (
    AttributePrior,
    ObjectPrior,
    ParsedCaption,
    RelationPrior,
)

NOUN_POS = frozenset({"NOUN", "PROPN"})
VERB_POS = frozenset({"VERB", "AUX"})
PLURAL_TAGS = frozenset({"NNS", "NNPS"})
PARTICIPLE_TAGS = frozenset({"VBN", "VBG"})
SUBJECT_DEPS = frozenset({"nsubj", "nsubjpass"})
OBJECT_DEPS = frozenset({"dobj", "dative"})
# Clauses that share the subject of the word they hang from when they name none themselves.
SUBJECT_SHARING_DEPS = frozenset({"xcomp", "advcl", "conj", "ccomp"})
MODIFIER_CLAUSE_DEPS = frozenset({"acl", "relcl"})
ADVERBIAL_HEAD_DEPS = frozenset({"advmod", "acomp", "amod", "npadvmod"})
NAME_PART_DEPS = frozenset({"compound", "amod"})
# How the parser may hang the second word of a two-word noun from the first when it misreads
# the pair ("shows a fire hydrant" with "hydrant" an adverb).
TAIL_MODIFIER_DEPS = frozenset({"amod", "advmod", "compound", "nmod", "npadvmod", "appos"})
COLOUR_NOUN_DEPS = frozenset({"nmod", "npadvmod"})
"""How the parser may hang a colour taken for a noun on its object ("a large orange cross")."""
COUNT_DEPS = frozenset({"nummod", "quantmod"})
# Words a predicate may describe its subject with ("is red", "is closed", "is a bright blue").
PREDICATIVE_POS = frozenset({"ADJ", "VERB", "NOUN", "PROPN"})
# Dependents that make a passive participle an event ("covered with a cloth", "held by a man").
EVENT_ARGUMENT_DEPS = frozenset(
    {"agent", "prep", "advmod", "dobj", "dative", "attr", "xcomp", "ccomp"}
)
RELATIVE_PRONOUNS = frozenset({"who", "that", "which", "whom"})
NEGATING_PREPOSITIONS = frozenset({"without", "except"})
# Prepositions after which an -ing clause still describes the noun before them.
OWNING_PREPOSITIONS = frozenset({"in", "of"})
NEGATING_DETERMINERS = frozenset({"no", "neither"})
# Prepositions whose object "photo" or "picture" is the picture itself ("in this photo",
# "posing for a photo").
# Prepositions before "her left", "its side" that place a thing beside the owner.
SIDE_PREPOSITIONS = frozenset({"to", "on", "at", "along", "from", "by", "against"})
PICTURE_FRAMING_PREPOSITIONS = frozenset({"in", "within", "throughout", "for", "from"})
# Coordinations that keep a denial from the first member to the rest ("no cats but two dogs").
CONTRASTING_CONJUNCTIONS = frozenset({"but", "yet"})
# Quotation marks around text written in the picture (signs, shirts, covers): words, not things.
OPENING_QUOTES = {'"': '"', "“": "”", "„": "“"}
MAX_QUOTED_TOKENS = 24
"""A mark with no partner this near is not the start of written text (dialogue, a stray mark)."""
QUOTED_TOKENS = "llmformer_quoted_tokens"
# How prominent a mention is, for choosing what a pronoun refers to: subjects first.
SALIENCE = {"nsubj": 0, "nsubjpass": 0, "ROOT": 0, "dobj": 1, "attr": 0}
MAX_CLAUSE_DEPTH = 8
# Complements that say what a subject is or is like ("is sunny", "is a day", "looks cold").
PREDICATE_DEPS = frozenset({"acomp", "attr", "oprd"})
# How many "to be" steps a dummy "it" may take to its predicate ("it seems to be a warm day").
MAX_IMPERSONAL_DEPTH = 2
# The shortest name a definite mention may share with the end of an earlier one.
MIN_SUFFIX_NAME = 3
DEFINITE_DETERMINERS = frozenset({"the", "this", "that", "these", "those"})
INDEFINITE_DETERMINERS = frozenset({"a", "an", "another"})

MentionFilter = Callable[["Mention"], bool]


@dataclass(frozen=True)
class Mention:
    """One occurrence of an object in the text, kept for pronoun reference."""

    token_index: int
    sentence_start: int
    object_index: int
    gender: str | None
    plural: bool
    salience: int


@dataclass
class _Collector:
    """Objects one per instance the text introduces ("a red cross and a blue cross" are two),
    attributes and relations deduplicated, all in text order."""

    objects: list[ObjectPrior] = field(default_factory=list)
    instances_by_name: dict[str, list[int]] = field(default_factory=dict)
    attributes: dict[tuple[int, str], AttributePrior] = field(default_factory=dict)
    relations: dict[tuple[int, str, int], RelationPrior] = field(default_factory=dict)

    def add_object(self, name: str, span: str, count: int) -> int:
        """Index of a new object instance."""
        index = len(self.objects)
        self.objects.append(ObjectPrior(name, span, count))
        self.instances_by_name.setdefault(name, []).append(index)
        return index

    def mention_again(self, index: int, count: int) -> None:
        """A later mention of an object: the largest count stated is kept."""
        if count > self.objects[index].count:
            known = self.objects[index]
            self.objects[index] = ObjectPrior(known.name, known.span, count)

    def add_attribute(self, object_index: int, value: str, kind: str) -> None:
        key = (object_index, value)
        self.attributes.setdefault(key, AttributePrior(object_index, value, kind))

    def add_relation(self, subject: int, predicate: str, obj: int) -> None:
        if subject != obj and predicate:
            key = (subject, predicate, obj)
            self.relations.setdefault(key, RelationPrior(subject, predicate, obj))

    def result(self) -> ParsedCaption:
        attributes, relations = list(self.attributes.values()), list(self.relations.values())
        return ParsedCaption(self.objects, attributes, relations)


# Words and phrases


def lemma(token: Token) -> str:
    """Lower-case lemma with the lemmatizer's known slips fixed ("riding" -> "ride"), a plural
    it took for a name made singular ("Bananas" opening a sentence), and plurals that name one
    thing kept ("jeans", "glasses", but "two glasses of wine")."""
    if token.lower_ in lexicon.LEMMA_FIXES:
        return lexicon.LEMMA_FIXES[token.lower_]
    if token.lower_ in lexicon.PLURALIA_TANTUM and _of_object(token) is None:
        return token.lower_
    if token.tag_ == "NNPS" or _is_capitalised_common_noun(token):
        return _singular(token.lower_)
    found = token.lemma_.lower() or token.lower_
    if (
        token.tag_ in PLURAL_TAGS
        and found != token.lower_
        and lexicon.is_noun_only_as_written(token.lower_, found)
    ):
        return token.lower_
    return found


def _is_uncounted(value: str) -> bool:
    """A quantity word that counts nothing ("some", "both", "one")."""
    number = lexicon.number_value(value)
    return value in lexicon.UNCOUNTED_QUANTIFIERS or (number is not None and number < 2)


def _is_capitalised_common_noun(token: Token) -> bool:
    """A sentence-opening noun the tagger took for a name because of its capital letter."""
    return token.pos_ == "PROPN" and token.is_sent_start and token.text.istitle()


def is_plural(token: Token) -> bool:
    """Whether the noun is plural (tagged so, or a capitalised plural taken for a name)."""
    if token.tag_ in PLURAL_TAGS:
        return True
    return _is_capitalised_common_noun(token) and _singular(token.lower_) != token.lower_


def _singular(word: str) -> str:
    """English plural-to-singular by suffix, for the few nouns the lemmatizer skips."""
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "sses", "xes")):
        return word[:-2]
    return word[:-1] if word.endswith("s") and not word.endswith(("ss", "us", "is")) else word


def with_conjuncts(token: Token) -> list[Token]:
    """The token and every token coordinated with it ("bananas, apples, and oranges")."""
    return [token, *token.conjuncts] if token.conjuncts else [token]


def conjunct_root(token: Token) -> Token:
    """The first of a coordination, whose dependency label the others share."""
    while token.dep_ == "conj" and token.head is not token:
        token = token.head
    return token


def _has_determiner(token: Token) -> bool:
    return any(c.dep_ in {"det", "poss"} for c in token.children)


def _introduces_instance(token: Token) -> bool:
    """A noun that brings in a new thing: "a"/"an"/"another" or a number ("two cats"), unless
    it only says what its subject is ("the cup is a white cup"; "there is a cup" brings one)."""
    if token.dep_ == "attr" and any(c.dep_ in SUBJECT_DEPS for c in token.head.children):
        return False
    return any(
        (c.dep_ == "det" and c.lower_ in INDEFINITE_DETERMINERS)
        or (c.dep_ in COUNT_DEPS and lexicon.number_value(c.lower_) is not None)
        for c in token.children
    )


def _modifier_words(token: Token) -> frozenset[str]:
    """The words before a noun in its phrase ("small" and "red" in "the small red cross")."""
    return frozenset(
        t.lower_ for t in token.subtree if t.i < token.i and t.is_alpha and t.dep_ != "det"
    )


def _is_definite(token: Token) -> bool:
    """A noun introduced by "the", "this", ... ("the cake")."""
    return any(c.dep_ == "det" and c.lower_ in DEFINITE_DETERMINERS for c in token.children)


def is_negated(token: Token) -> bool:
    """Whether a verb carries "not"/"n't" ("is not wearing")."""
    return any(child.dep_ == "neg" for child in token.children)


def hyphenated_word(token: Token) -> Span | None:
    """The hyphenated word a modifier heads ("flat-screen", "black-and-white"), if any."""
    start, end = token.left_edge.i, token.right_edge.i + 1
    if end - start < 3:
        return None
    span = token.doc[start:end]
    if not any(t.text == "-" for t in span):
        return None
    return span if all(not t.whitespace_ for t in span[:-1]) else None


def _is_name_part(token: Token) -> bool:
    """A modifier that belongs to the object's name: a noun ("teddy" bear, "living" room) that
    is no material or colour, or any word that forms one noun with its head in WordNet
    ("orange juice", "golden retriever", "hard hat")."""
    if token.dep_ not in NAME_PART_DEPS or hyphenated_word(token) is not None:
        return False
    if _is_place_modifier(token):
        return False
    if _may_join_name(token) and lexicon.is_known_phrase(f"{token.lower_} {lemma(token.head)}"):
        return True
    if token.pos_ not in NOUN_POS or lexicon.is_adjective_only(token.lower_):
        return False
    return token.lower_ not in lexicon.MATERIALS and token.lower_ not in lexicon.COLORS


def _is_place_modifier(token: Token) -> bool:
    """A noun before a noun that only says where the thing is ("kitchen" counter, "city"
    street), unless a dictionary lists the pair as one thing ("kitchen sink", "park bench")."""
    if token.dep_ != "compound" or token.pos_ not in NOUN_POS or token.i > token.head.i:
        return False
    head = lemma(token.head)
    if lemma(token) not in lexicon.PLACE_MODIFIERS or head in lexicon.POSITION_NOUNS:
        return False
    is_person = lexicon.person_gender(head) is not None  # a "street vendor" is a kind of vendor
    return not is_person and not lexicon.is_known_phrase(f"{lemma(token)} {head}")


def _of_object(token: Token) -> Token | None:
    """The noun after "of" hanging from token ("group of [people]"), if any."""
    for child in token.children:
        if child.dep_ == "prep" and child.lower_ == "of":
            for grandchild in child.children:
                if grandchild.dep_ == "pobj":
                    return grandchild
    return None


def _may_join_name(token: Token) -> bool:
    """Whether a modifier may be part of a WordNet phrase name: not a material, and no
    adjective the attributes describe ("red" wine, "young" girl, "boiling" water, "potted"
    plant); an -ing word naming a use may ("measuring" cup, "rolling" pin)."""
    word = token.lower_
    if word in lexicon.MATERIALS or word in lexicon.SIDE_WORDS:
        return False
    if token.pos_ in NOUN_POS:
        return True
    if token.tag_ == "VBN" or word.endswith("ed") or word in lexicon.AGE_ADJECTIVES:
        return False
    return lexicon.attribute_kind(word) in {"size", "other"}


def _names_its_of_object(token: Token) -> bool:
    """Whether token only counts, portions, selects or locates what follows "of" ("a slice of
    pizza", "a group of people", "some of them", "the side of the train"), so that noun is the
    object meant."""
    word = token.lemma_.lower() or token.lower_
    selects = word in lexicon.COLLECTIVE_NOUNS or word in lexicon.PARTITIVE_NOUNS
    selects = selects or word in lexicon.SELECTING_WORDS or word in lexicon.POSITION_NOUNS
    return selects and _of_object(token) is not None


def _collective_parent(token: Token) -> Token | None:
    """For "people" in "a group of people", the token "group"."""
    preposition = token.head
    if token.dep_ != "pobj" or preposition.lower_ != "of":
        return None
    parent = preposition.head
    return parent if parent.lemma_.lower() in lexicon.COLLECTIVE_NOUNS else None


def _counting_collective(token: Token) -> str | None:
    """The group word that counts token ("group" of people, a bare "crowd"), if any; kinds
    ("a variety of") count nothing."""
    parent = _collective_parent(token)
    word = lemma(parent) if parent is not None else lemma(token)
    if parent is None and (word not in lexicon.PEOPLE_GROUP_NOUNS or _of_object(token)):
        return None
    return word if word in lexicon.COUNTING_COLLECTIVE_NOUNS else None


def _is_people_group(token: Token) -> bool:
    """A bare group noun that stands for its people ("a crowd", "the audience")."""
    return lemma(token) in lexicon.PEOPLE_GROUP_NOUNS and _of_object(token) is None


def _is_denied(token: Token) -> bool:
    """Whether the text says the thing is not there: "no" / "neither" on it or on the first of
    its coordination ("no people or animals", "neither a car nor a bicycle"), or a negating
    preposition before that first member ("without any people or umbrellas")."""
    root = conjunct_root(token)
    if any(c.dep_ == "cc" and c.lower_ in CONTRASTING_CONJUNCTIONS for c in root.children):
        root = token  # "no cats but two dogs": the denial stays with the cats
    if any(
        c.dep_ in {"det", "preconj"} and c.lower_ in NEGATING_DETERMINERS
        for noun in {token, root}
        for c in noun.children
    ):
        return True
    return root.dep_ == "pobj" and root.head.lower_ in NEGATING_PREPOSITIONS


def _is_said_absent(token: Token) -> bool:
    """Whether the noun is the subject of a denied presence: "people are not present", "no
    car can be seen", "animals do not appear"."""
    root = conjunct_root(token)
    verb = root.head
    if root.dep_ not in SUBJECT_DEPS or not is_negated(verb):
        return False
    if lemma(verb) in lexicon.PRESENCE_VERBS or _is_presenting(verb):
        return True
    return any(
        child.dep_ in {"acomp", "advmod"} and child.lower_ in lexicon.PRESENCE_ADJECTIVES
        for child in verb.children
    )


def _names_the_picture(token: Token) -> bool:
    """Whether "photo", "picture" or "frame" names the picture itself: "in this photo", "the
    photo shows", "a photo of a dog." opening the text, "taking a picture", "posing for a
    photo", "the edge of the frame". A plural one, or one that hangs, stands or is held, is a
    thing in the picture ("a framed photo hangs on the wall")."""
    word = lemma(token)
    if word not in lexicon.PICTURE_NOUNS:
        return False
    head = token.head
    if any(c.dep_ == "det" and c.lower_ in {"this", "these"} for c in token.children):
        return True
    if token.dep_ in SUBJECT_DEPS or token.dep_ == "dobj":
        verb = lemma(head)
        presents = token.dep_ != "dobj" and verb in lexicon.PRESENTING_VERBS
        if presents or verb in lexicon.PICTURE_MAKING_VERBS:
            return True
    if is_plural(token):
        return False
    if token.dep_ == "pobj":
        if head.lower_ in PICTURE_FRAMING_PREPOSITIONS:
            return True
        if head.lower_ == "of" and lemma(head.head) in lexicon.POSITION_NOUNS:
            return True
    if _is_definite(token) and not any(lemma(t) == word for t in token.doc[: token.i]):
        return True  # "the picture" with none brought in before: the one we look at
    if token.dep_ == "ROOT" or (token.dep_ == "attr" and _is_about_the_picture(head)):
        return True
    return lemma(token) == "frame" and not any(c.dep_ in NAME_PART_DEPS for c in token.children)


def _is_about_the_picture(verb: Token) -> bool:
    """A copula whose subject points at the picture: "this is a photo of", "here is"."""
    return any(
        c.dep_ in SUBJECT_DEPS | {"expl", "advmod"}
        and (c.lower_ in {"this", "it", "here"} or lemma(c) in lexicon.PICTURE_WORDS)
        for c in verb.children
    )


def _names_the_viewer(token: Token) -> bool:
    """Whether "the camera" or "the photographer" is whoever takes the picture ("looking at
    the camera", "the photographer's angle"): definite, and not brought in before."""
    word = lemma(token)
    if word not in lexicon.VIEWER_NOUNS or not _is_definite(token):
        return False
    return not any(lemma(t) == word for t in token.doc[: token.i] if t.pos_ in NOUN_POS)


def _is_quoted(token: Token) -> bool:
    """Whether the token stands between quotation marks (`quoted_token_indices`)."""
    doc = token.doc
    if QUOTED_TOKENS not in doc.user_data:
        doc.user_data[QUOTED_TOKENS] = quoted_token_indices(doc)
    return token.i in doc.user_data[QUOTED_TOKENS]


def quoted_token_indices(doc: Doc) -> frozenset[int]:
    """Indices of the tokens between an opening quotation mark and its closing partner at most
    MAX_QUOTED_TOKENS later: 'a sign that reads "Fresh Fish"' writes words, it shows no fish."""
    inside: set[int] = set()
    index = 0
    while index < len(doc):
        closing = OPENING_QUOTES.get(doc[index].text)
        if closing is None:
            index += 1
            continue
        window = range(index + 1, min(index + 2 + MAX_QUOTED_TOKENS, len(doc)))
        end = next((j for j in window if doc[j].text == closing), None)
        if end is None:
            index += 1
            continue
        inside.update(range(index + 1, end))
        index = end + 1
    return frozenset(inside)


def _governing_verb(token: Token) -> Token | None:
    """The verb whose object (direct, predicate or prepositional) the noun is, if any."""
    root = conjunct_root(token)
    if root.dep_ in {"dobj", "attr"}:
        return root.head
    if root.dep_ == "pobj" and root.head.head.pos_ in VERB_POS:
        return root.head.head
    return None


# Objects


def is_object_head(token: Token) -> bool:
    """Whether token heads a noun phrase naming a segmentable thing."""
    return object_head_name(token) is not None


def _is_noun_modifier(token: Token) -> bool:
    """A noun before the noun it modifies ("polka-dot" in "a polka-dot cross")."""
    return token.dep_ == "nmod" and token.head.pos_ in NOUN_POS and token.i < token.head.i


def _pattern_of(token: Token) -> str | None:
    """The attribute a pattern noun after "with" gives its thing ("dots" -> "dotted")."""
    preposition = conjunct_root(token).head
    if token.dep_ not in {"pobj", "conj"} or preposition.lower_ != "with":
        return None
    if preposition.head.pos_ not in NOUN_POS:
        return None
    return lexicon.PATTERN_NOUNS.get(lemma(token))


def object_head_name(token: Token) -> str | None:
    """The object name (see `object_name`) if token heads a noun phrase naming a visible,
    segmentable thing that the text says is there; else None."""
    if token.pos_ not in NOUN_POS or not token.text.isalpha():
        return None
    if token.dep_ in NAME_PART_DEPS or _names_its_of_object(token):
        return None
    if _is_noun_modifier(token) or _pattern_of(token) is not None:
        return None
    if _is_inside_hyphenated_word(token):
        return None
    head_word = lemma(token)
    if head_word in lexicon.META_NOUNS or head_word in lexicon.ANAPHORIC_WORDS:
        return None
    if head_word in lexicon.QUALITY_WORDS and not (is_plural(token) or _has_determiner(token)):
        return None
    if _is_colour_predicate(token) or _is_bare_arrangement(token):
        return None
    standing_in = head_word in lexicon.POSITION_NOUNS or _is_misread_participle(token)
    if standing_in and not any(_is_name_part(c) for c in token.lefts):
        return None
    if _is_denied(token) or _is_quoted(token) or _is_said_absent(token):
        return None
    if _names_the_picture(token) or _names_the_viewer(token):
        return None
    name = object_name(token)
    proper = token.pos_ == "PROPN" and not _is_capitalised_common_noun(token)
    if not _is_people_group(token) and not lexicon.names_physical_thing(name, proper):
        return None
    verb = _governing_verb(token)
    return name if verb is None or not is_negated(verb) else None


def object_name(token: Token) -> str:
    """Head lemma with its compound modifiers; material, colour and hyphenated ones are left
    to attributes ("brick wall" -> wall, "flat-screen TV" -> tv). Modifiers written as one word
    with the head keep their hyphen ("t-shirt"); a bare "crowd" names people ("person"); a
    position noun names the thing before it ("counter top" -> counter)."""
    if _is_people_group(token):
        return lexicon.LEMMA_FIXES["people"]
    tail = _compound_tail(token)
    if tail is not None:
        return tail
    parts = _name_parts(token)
    if not parts:
        return lemma(token)
    standing_in = lemma(token) in lexicon.POSITION_NOUNS or _is_misread_participle(token)
    if standing_in and lemma(parts[-1]) not in lexicon.PLACE_MODIFIERS:
        whole = object_name(parts[-1])
        if not lexicon.is_known_phrase(f"{whole} {lemma(token)}"):
            return whole
    between = token.doc[parts[0].i : token.i]
    indices = {part.i for part in parts}
    if all(t.i in indices or _is_joining_hyphen(t) for t in between):
        prefix = "".join(t.lower_ + (" " if t.whitespace_ else "") for t in between)
    else:
        prefix = "".join(f"{t.lower_} " for t in parts)
    return prefix + lemma(token)


def _is_misread_participle(token: Token) -> bool:
    """An -ing word the tagger took for a noun that no dictionary knows as one ("its tail
    wagging", "a patient resting"): the noun before it is the thing."""
    word = token.lower_
    return word.endswith("ing") and lexicon.wordnet_class(word) is None


def _compound_tail(token: Token) -> str | None:
    """The dictionary noun a head forms with the word after it that the parser hung from it
    as a modifier ("shows a fire [hydrant]", tagged an adverb), if any."""
    if token.i + 1 >= len(token.doc):
        return None
    tail = token.doc[token.i + 1]
    misread = tail.head.i == token.i and tail.dep_ in TAIL_MODIFIER_DEPS
    if not tail.is_alpha or not (misread or tail.pos_ not in NOUN_POS | VERB_POS):
        return None
    for word in (tail.lower_, _singular(tail.lower_)):
        if lexicon.is_known_phrase(f"{token.lower_} {word}"):
            return f"{token.lower_} {word}"
    return None


def _is_compound_tail(token: Token) -> bool:
    """Whether the word ends a two-word noun with the word before it (`_compound_tail`)."""
    return token.i > 0 and _compound_tail(token.doc[token.i - 1]) is not None


def _is_inside_hyphenated_word(token: Token) -> bool:
    """A word that a hyphen joins to the next one ("crystal" in "crystal-clear", "snow" in
    "snow-capped"): part of a modifier, never a thing of its own."""
    doc, after = token.doc, token.i + 1
    if token.whitespace_ or after + 1 >= len(doc):
        return False
    return doc[after].text == "-" and not doc[after].whitespace_


def _is_joining_hyphen(token: Token) -> bool:
    return token.text == "-" and not token.whitespace_


def _name_parts(token: Token) -> list[Token]:
    parts = []
    for child in token.lefts:
        if _is_name_part(child):
            parts.extend([*_name_parts(child), child])
    return parts


def object_span(token: Token) -> str:
    """The surface words of the mention: modifiers before the head, without the determiner."""
    start = token.i
    for child in token.lefts:
        if child.dep_ in NAME_PART_DEPS or child.dep_ in COUNT_DEPS:
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
    return 2 if is_plural(token) or _is_people_group(token) else 1


def _salience(token: Token) -> int:
    """0 for subjects, 1 for direct objects, 2 otherwise (see SALIENCE); one more for a thing
    named through its owner ("its fur"), rarely what a later pronoun is about."""
    parent = _collective_parent(token)
    root = conjunct_root(parent if parent is not None else token)
    owned = any(c.dep_ == "poss" and c.pos_ == "PRON" for c in token.children)
    return SALIENCE.get(root.dep_, 2) + owned


# Pronoun reference


def _pronoun_filter(token: Token) -> MentionFilter | None:
    """A test for mentions a pronoun or anaphoric word may refer to; None for other words."""
    word = token.lower_
    if token.pos_ == "PRON" and word in lexicon.MALE_PRONOUNS:
        return lambda m: m.gender in {"male", "person"} and not m.plural
    if token.pos_ == "PRON" and word in lexicon.FEMALE_PRONOUNS:
        return lambda m: m.gender in {"female", "person"} and not m.plural
    if token.pos_ == "PRON" and word in lexicon.NEUTER_PRONOUNS:
        return lambda m: m.gender is None and not m.plural
    if token.pos_ == "PRON" and word in lexicon.PLURAL_PRONOUNS:
        return lambda m: m.plural
    if word in lexicon.ANAPHORIC_WORDS:
        plural = token.tag_ in PLURAL_TAGS
        return lambda m: m.plural or not plural
    return None


def choose_antecedent(candidates: list[Mention]) -> Mention | None:
    """Among earlier compatible mentions, the most prominent one of the nearest sentence."""
    if not candidates:
        return None
    nearest = max(m.sentence_start for m in candidates)
    same_sentence = [m for m in candidates if m.sentence_start == nearest]
    return min(same_sentence, key=lambda m: (m.salience, -m.token_index))


def restated_noun(token: Token) -> Token | None:
    """The noun that an apposition or an alternative names again, so no new thing: "the
    patient, an elderly man"; "a bird, possibly a pigeon or a sparrow"; "a mug or a cup".
    The parser also takes list items for appositions ("a knife, a bowl"): only a hedged one,
    or an indefinite one after a definite noun, restates. Plural lists with "or" ("apples or
    pears") stay things of their own."""
    if token.dep_ == "appos" and token.head.pos_ in NOUN_POS:
        head = token.head
        describes = _is_definite(head) and _introduces_instance(token)
        return head if _is_hedged(token) or describes else None
    if token.dep_ != "conj":
        return None
    first = conjunct_root(token)
    if not _is_alternative(first):
        return None
    return restated_noun(first) or first


def _is_alternative(first: Token) -> bool:
    """Whether a coordination starting at this noun offers alternatives for one thing: joined
    by "or", and singular or hedged ("possibly a cup or a mug")."""
    members = (first, *first.conjuncts)
    if not any(c.dep_ == "cc" and c.lower_ == "or" for m in members for c in m.children):
        return False
    return not is_plural(first) or _is_hedged(first) or _is_hedged(first.head)


def _is_hedged(token: Token) -> bool:
    return any(c.dep_ == "advmod" and c.lower_ in lexicon.HEDGE_ADVERBS for c in token.children)


def guessed_token_indices(doc: Doc) -> frozenset[int]:
    """Tokens of clauses that guess at what is not seen: a participial clause under a hedge
    (", likely searching for fish", ", possibly containing her lunch") and what a verb of
    guessing or wishing says ("suggesting that a storm is coming", "hoping for scraps")."""
    inside: set[int] = set()
    for verb in doc:
        if verb.pos_ in VERB_POS and (
            _is_hedged_participle(verb) or lemma(verb) in lexicon.SPECULATIVE_VERBS
        ):
            subjects = {t.i for c in verb.children if c.dep_ in SUBJECT_DEPS for t in c.subtree}
            inside.update(t.i for t in verb.subtree if t.i not in subjects)
    return frozenset(inside)


def _is_hedged_participle(verb: Token) -> bool:
    """A participle heading a clause of its own (no auxiliary) under a hedge adverb."""
    if verb.tag_ not in PARTICIPLE_TAGS or verb.dep_ == "ROOT":
        return False
    return _is_hedged(verb) and not any(c.dep_ in {"aux", "auxpass"} for c in verb.children)


def _is_dummy_it(token: Token) -> bool:
    """Whether "it" stands for nothing: "it is a sunny day", "it is raining", "it looks cold",
    "it appears that ...", "it seems to be early morning"."""
    return token.lower_ == "it" and _is_impersonal(token.head, MAX_IMPERSONAL_DEPTH)


def _is_impersonal(verb: Token, depth: int) -> bool:
    if lemma(verb) in lexicon.WEATHER_VERBS:
        return True
    for child in verb.children:
        if child.dep_ == "ccomp":
            return True
        word = lemma(child)
        said = child.dep_ in PREDICATE_DEPS
        if said and (word in lexicon.WEATHER_WORDS or word in lexicon.META_NOUNS):
            return True
        if said and any(c.dep_ == "ccomp" for c in child.children):  # "it is likely that"
            return True
        if child.dep_ == "xcomp" and depth > 0 and _is_impersonal(child, depth - 1):
            return True
    return False


def is_stative_participle(token: Token) -> bool:
    """A passive participle that describes its subject rather than an event with a participant
    ("the door is closed", "the rug is striped", "... closed and locked"), so an attribute."""
    if token.tag_ != "VBN" or token.lemma_ in lexicon.PRESENTING_VERBS:
        return False
    if any(child.dep_ in EVENT_ARGUMENT_DEPS for child in token.children):
        return False
    if any(child.dep_ == "auxpass" for child in token.children):
        return True
    return token.dep_ == "conj" and is_stative_participle(token.head)


class DocPriors:
    """Extracts the priors of one Doc: objects first, then attributes and relations."""

    def __init__(self, doc: Doc) -> None:
        self.doc = doc
        self.collected = _Collector()
        self.mentions: list[Mention] = []
        self.object_at: dict[int, int] = {}
        self.instance_words: dict[int, set[str]] = {}
        self.guessed = guessed_token_indices(doc)

    def extract(self) -> ParsedCaption:
        self._collect_objects()
        for mention in self.mentions:
            if mention.token_index not in self.guessed:
                self._modifier_attributes(self.doc[mention.token_index], mention.object_index)
        for token in self.doc:
            if token.i in self.guessed:
                continue
            if token.dep_ in {"acomp", "oprd"}:
                self._predicative_attributes(token)
            elif _is_colour_predicate(token):
                self._colour_predicate_attributes(token)
            elif is_stative_participle(token):
                self._stative_attributes(token)
            if token.pos_ in VERB_POS:
                self._verb_relations(token)
            elif token.i in self.object_at:
                self._noun_relations(token)
        return self.collected.result()

    def _collect_objects(self) -> None:
        sentence_starts = [sentence.start for sentence in self.doc.sents]
        for token in self.doc:
            name = object_head_name(token)
            if name is None:
                continue
            words = _modifier_words(token)
            index = self._restated_object(token)
            if index is None:
                index = self._antecedent(token, name, words)
            if index is None and token.i in self.guessed:
                continue
            if index is None:
                index = self.collected.add_object(name, object_span(token), object_count(token))
                self.instance_words[index] = set(words)
            else:
                self.collected.mention_again(index, object_count(token))
                self.instance_words[index] |= words
            self.object_at[token.i] = index
            plural = is_plural(token) or _collective_parent(token) is not None
            plural = plural or _is_people_group(token)
            gender = lexicon.person_gender(name)
            sentence_start = sentence_starts[bisect_right(sentence_starts, token.i) - 1]
            self.mentions.append(
                Mention(token.i, sentence_start, index, gender, plural, _salience(token))
            )

    def _restated_object(self, token: Token) -> int | None:
        """The object an apposition or an alternative names again (`restated_noun`), or the
        subject a copula says this noun is ("the car is a red sports car")."""
        restated = restated_noun(token)
        if restated is None and token.dep_ == "attr" and lemma(token.head) == "be":
            restated = next((c for c in token.head.children if c.dep_ == "nsubj"), None)
        return None if restated is None else self.object_at.get(restated.i)

    def _relative_antecedent(self, pronoun: Token, exclude: Iterable[int]) -> list[int]:
        """What "whom" or "which" in "some of whom", "one of which" stands for: the noun its
        relative clause hangs from, or (when the parser saw no relative clause) the object
        mentioned last before it, several things before one."""
        clause = next((a for a in pronoun.ancestors if a.dep_ == "relcl"), None)
        if clause is not None:
            return self.resolve(clause.head, exclude)
        excluded = set(exclude)
        before = [m for m in self.mentions if m.token_index < pronoun.i]
        before = [m for m in before if m.object_index not in excluded]
        groups = [m for m in before if m.plural]  # "one of which" picks from several
        chosen = groups or before
        return [chosen[-1].object_index] if chosen else []

    def _antecedent(self, token: Token, name: str, words: frozenset[str]) -> int | None:
        """The earlier object a mention with these modifier words refers to, None for a new
        one. "A"/"another"/a number bring in a new instance; other mentions of a name already
        seen refer to the instance of that name whose modifier words they share most ("the red
        cross" after "a red cross and a blue cross"; the latest on a tie); a definite one may
        name it shorter or generically (`_definite_antecedent`)."""
        if _introduces_instance(token):
            return None
        instances = self.collected.instances_by_name.get(name)
        if instances:
            return max(reversed(instances), key=lambda i: len(words & self.instance_words[i]))
        return self._definite_antecedent(token, name)

    def _definite_antecedent(self, token: Token, name: str) -> int | None:
        """The earlier object a definite mention with a shorter name refers to: "the cake"
        after "a chocolate cake", "the boat" after "a rowboat", "the room" after "a bedroom";
        or a generic one to the last thing of its kind: "the dessert" after "a cake"."""
        if not _is_definite(token):
            return None
        kind = lexicon.GENERIC_NOUNS.get(name)
        for mention in reversed(self.mentions):
            earlier = self.collected.objects[mention.object_index].name
            if earlier.endswith(name) and len(name) >= MIN_SUFFIX_NAME:
                return mention.object_index
            if kind is not None and lexicon.thing_kind(earlier) == kind:
                return mention.object_index
        return None

    # Attributes

    def _add_attribute(
        self, object_index: int, value: str, is_participle: bool = False, kind: str | None = None
    ) -> None:
        if lexicon.is_description(value) and not _is_uncounted(value):
            kind = kind or lexicon.attribute_kind(value, is_participle)
            self.collected.add_attribute(object_index, value, kind)

    def _add_word_attribute(self, object_index: int, token: Token) -> None:
        if token.text.isalnum():
            self._add_attribute(object_index, token.lower_, token.tag_ in PARTICIPLE_TAGS)

    def _modifier_attributes(self, head: Token, object_index: int) -> None:
        for child in head.children:
            hyphenated = hyphenated_word(child) if child.i < head.i else None
            if hyphenated is not None:
                self._add_attribute(object_index, hyphenated.text.lower())
            elif child.dep_ in COUNT_DEPS or (
                child.dep_ == "det" and child.lower_ in lexicon.QUANTIFIERS
            ):
                self._add_word_attribute(object_index, child)
            elif _is_name_part(child):
                self._modifier_attributes(child, object_index)
            elif _is_place_modifier(child):
                continue
            elif child.dep_ in COLOUR_NOUN_DEPS and child.lower_ in lexicon.COLORS:
                self._add_word_attribute(object_index, child)
            elif child.dep_ == "compound" and child.pos_ in NOUN_POS:
                self._compound_attributes(object_index, child)
            elif child.dep_ in NAME_PART_DEPS:
                self._adjective_attributes(object_index, child)
            elif child.dep_ == "prep" and child.lower_ == "with":
                self._pattern_attributes(child, object_index)
        collective = _counting_collective(head)
        if collective is not None:
            self._add_attribute(object_index, collective, kind="count")

    def _pattern_attributes(self, preposition: Token, object_index: int) -> None:
        """What "with dots", "with stripes" or "with a checkered pattern" say of the thing."""
        for noun in (c for c in preposition.children if c.dep_ == "pobj"):
            for conjunct in with_conjuncts(noun):
                pattern = _pattern_of(conjunct)
                if pattern is not None:
                    self._add_attribute(object_index, pattern)
                elif lemma(conjunct) in lexicon.PATTERN_HOLDERS:
                    for word in conjunct.lefts:
                        if word.lower_ in lexicon.PATTERNS:
                            self._add_word_attribute(object_index, word)

    def _compound_attributes(self, object_index: int, compound: Token) -> None:
        """A material or colour noun before the head, with its own modifiers: colours on their
        own ("red tile roofs" -> red, tile), the rest part of the phrase ("stainless steel")."""
        colours = [t for t in compound.lefts if t.lower_ in lexicon.COLORS]
        for colour in colours:
            self._add_word_attribute(object_index, colour)
        start = max([t.i + 1 for t in colours], default=compound.left_edge.i)
        phrase = self.doc[start : compound.i + 1].text.lower()
        self._add_attribute(object_index, phrase)

    def _adjective_attributes(self, object_index: int, adjective: Token) -> None:
        for conjunct in with_conjuncts(adjective):
            if not _has_prepositional_object(conjunct):
                self._add_word_attribute(object_index, conjunct)
                for shade in _colour_shades(conjunct):
                    self._add_word_attribute(object_index, shade)

    def _predicative_attributes(self, adjective: Token) -> None:
        verb = adjective.head
        if adjective.pos_ not in PREDICATIVE_POS:
            return  # "is about to", "is over": no quality
        if verb.pos_ in VERB_POS and not is_negated(verb):
            for subject in self.subjects_of(verb):
                self._adjective_attributes(subject, adjective)

    def _colour_predicate_attributes(self, colour: Token) -> None:
        if is_negated(colour.head):
            return
        words = [c for c in colour.children if c.dep_ in NAME_PART_DEPS and c.is_alpha]
        if colour.lower_ in lexicon.COLORS:
            words.append(colour)
        for subject in self.subjects_of(colour.head):
            for word in words:
                self._add_word_attribute(subject, word)

    def _stative_attributes(self, participle: Token) -> None:
        if not is_negated(participle):
            for subject in self.subjects_of(participle):
                self._add_word_attribute(subject, participle)

    # Relations

    def _verb_relations(self, verb: Token) -> None:
        if is_negated(verb) or lemma(verb) in lexicon.INTERPRETIVE_VERBS:
            return
        subjects = self.subjects_of(verb)
        base = _verb_phrase(verb)
        if not subjects or _is_presenting(verb):
            subjects = subjects or self._presented_objects(verb)
            base = ""
        if not subjects:
            return
        for agent in _agents(verb):
            for agent_index in self.resolve(agent):
                for subject in subjects:
                    self.collected.add_relation(agent_index, base, subject)
        for child in verb.children:
            if child.dep_ in OBJECT_DEPS and base:
                self._relate(subjects, base, with_conjuncts(child))
        for phrase, target, fronted in prepositional_phrases(verb, mark_fronted=True):
            if _is_absolute_with(phrase, target):
                continue
            predicate = phrase if fronted else f"{base} {phrase}".strip()
            self._relate(subjects, predicate, with_conjuncts(target))

    def _presented_objects(self, verb: Token) -> list[int]:
        """What "the image shows" / "we can see": its direct objects, if it presents."""
        if verb.lemma_.lower() not in lexicon.PRESENTING_VERBS:
            return []
        found = [
            index
            for child in verb.children
            if child.dep_ in OBJECT_DEPS
            for token in with_conjuncts(child)
            for index in self.resolve(token)
        ]
        return list(dict.fromkeys(found))

    def _noun_relations(self, noun: Token) -> None:
        subject = self.object_at[noun.i]
        for phrase, target in prepositional_phrases(noun):
            self._relate([subject], phrase, with_conjuncts(target))

    def _relate(self, subjects: list[int], predicate: str, targets: Iterable[Token]) -> None:
        if not predicate:
            return
        for target in targets:
            for colour in _shade_colours(target):
                for subject in subjects:
                    self._add_word_attribute(subject, colour)
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
                owners = self.resolve(_participle_owner(verb))
                return owners or self.resolve(verb.head)  # "a photo of a cat [lounging]"
            if verb.dep_ not in SUBJECT_SHARING_DEPS or verb.head.pos_ not in VERB_POS:
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
            if _is_dummy_it(subject):
                continue
            for token in with_conjuncts(subject):
                if token.lower_ in RELATIVE_PRONOUNS and verb.dep_ == "relcl":
                    token = verb.head
                resolved.extend(i for i in self.resolve(token) if i not in resolved)
        return resolved

    def resolve(self, token: Token, exclude: Iterable[int] = ()) -> list[int]:
        """Object indices a token stands for: itself, what follows "of" in "a group of" or
        "some of", or the antecedent of a pronoun."""
        if token.i in self.object_at:
            return [self.object_at[token.i]]
        if token.lower_ in RELATIVE_PRONOUNS and token.dep_ == "pobj":
            return self._relative_antecedent(token, exclude)
        if _names_its_of_object(token):
            return self.resolve(_of_object(token), exclude)
        owner = _position_owner(token)
        if owner is not None:
            return self.resolve(owner, exclude)
        accepts = _pronoun_filter(token)
        if accepts is None:
            return []
        holder = _with_holder(token)
        if holder is not None and holder.i in self.object_at:
            return [self.object_at[holder.i]]
        excluded = set(exclude)
        candidates = [
            m
            for m in self.mentions
            if m.token_index < token.i and m.object_index not in excluded and accepts(m)
        ]
        antecedent = choose_antecedent(candidates)
        return [] if antecedent is None else [antecedent.object_index]


def _with_holder(pronoun: Token) -> Token | None:
    """The noun whose "with" phrase holds the pronoun: "a sink with a mirror above [it]", "a
    table with a vase on [it]" speak of the sink and the table."""
    if pronoun.lower_ not in lexicon.NEUTER_PRONOUNS | lexicon.PLURAL_PRONOUNS:
        return None
    for ancestor in pronoun.ancestors:
        if ancestor.pos_ in VERB_POS:
            return None
        if ancestor.dep_ == "prep" and ancestor.lower_ == "with":
            return ancestor.head if ancestor.head.pos_ in NOUN_POS else None
    return None


def _is_absolute_with(phrase: str, target: Token) -> bool:
    """A comma and "with" before a noun with its own participle or place ("placed on the
    desk, with a mouse positioned to its right", "parked in a row, with a red one at the
    end") open a clause of their own: no relation to the verb."""
    preposition = target.head
    if phrase != "with" or preposition.i == 0 or preposition.doc[preposition.i - 1].text != ",":
        return False
    return any(_opens_a_clause(c) for c in target.children)


def _opens_a_clause(child: Token) -> bool:
    """A participle or a placing phrase ("positioned to its right", "at the end") after a noun;
    "of" only says what the noun is made of or holds."""
    participle = child.dep_ == "acl" and child.tag_ in PARTICIPLE_TAGS
    return participle or (child.dep_ == "prep" and child.lower_ != "of")


def _participle_owner(verb: Token) -> Token:
    """The noun an -ing clause describes: the one it follows, or, when that one ends an "in"
    or "of" phrase of a noun, that noun ("a boy in a swimsuit [splashing]", "a vase of flowers
    [sitting] on the table"; but "windows with a view [overlooking] the sea")."""
    noun = verb.head
    if verb.dep_ != "acl" or verb.tag_ != "VBG" or noun.dep_ != "pobj":
        return noun
    preposition = noun.head
    owner = preposition.head
    if preposition.lower_ in OWNING_PREPOSITIONS and owner.pos_ in NOUN_POS:
        return owner
    return noun


def _shade_colours(token: Token) -> list[Token]:
    """The colours of "shades of orange and pink" ("painted with", "in" ...), if token is such a
    shade word."""
    if lemma(token) not in lexicon.SHADE_NOUNS:
        return []
    inner = _of_object(token)
    colours = with_conjuncts(inner) if inner is not None else []
    return [colour for colour in colours if colour.lower_ in lexicon.COLORS]


def _position_owner(token: Token) -> Token | None:
    """For "surface" in "the water's surface", the token "water"."""
    if lemma(token) not in lexicon.POSITION_NOUNS:
        return None
    return next((c for c in token.children if c.dep_ == "poss" and c.pos_ in NOUN_POS), None)


def _is_presenting(verb: Token) -> bool:
    """Passive "can be seen" / "is shown" says where a thing is, like "is"."""
    if verb.lemma_.lower() not in lexicon.PRESENTING_VERBS:
        return False
    return any(child.dep_ in {"auxpass", "nsubjpass"} for child in verb.children)


def _agents(verb: Token) -> list[Token]:
    return [
        conjunct
        for child in verb.children
        if child.dep_ == "agent"
        for pobj in child.children
        if pobj.dep_ == "pobj"
        for conjunct in with_conjuncts(pobj)
    ]


def _verb_phrase(verb: Token) -> str:
    """Lemma plus particles ("pick up"); empty for the copula, whose prepositions say it all."""
    if verb.lemma_ == "be":
        return ""
    particles = [child.lower_ for child in verb.children if child.dep_ == "prt"]
    return " ".join([lemma(verb), *particles])


def _is_bare_arrangement(token: Token) -> bool:
    """A group word after "in" with no determiner and nothing after "of": how things are
    arranged ("standing in line", "arranged in neat rows"), no thing."""
    if lemma(token) not in lexicon.COUNTING_COLLECTIVE_NOUNS or _is_people_group(token):
        return False
    if token.dep_ != "pobj" or token.head.lower_ != "in":
        return False
    return not _has_determiner(token) and _of_object(token) is None


def _is_colour_predicate(token: Token) -> bool:
    """A colour said of the subject as a noun: "the sky is a brilliant blue", "the water is a
    deep turquoise color"."""
    if token.dep_ != "attr" or token.head.pos_ not in VERB_POS:
        return False
    word = lemma(token)
    return word in lexicon.COLORS or word in lexicon.COLOUR_NOUNS


def _colour_shades(adjective: Token) -> list[Token]:
    """The shade words of a colour ("bright" and "dark" in "bright yellow", "dark blue")."""
    if adjective.lower_ not in lexicon.COLORS:
        return []
    return [c for c in adjective.children if c.dep_ == "advmod" and c.lower_ in lexicon.COLORS]


def _has_prepositional_object(token: Token) -> bool:
    """Whether an adjective governs a prepositional object ("full of", "close to")."""
    return any(
        child.dep_ == "prep" and any(True for _ in _preposition_targets(child))
        for child in token.children
    )


def prepositional_phrases(token: Token, mark_fronted: bool = False) -> Iterator[Any]:
    """(preposition phrase, object noun) pairs hanging from token, multiword ones joined:
    "on" table, "next to" vase, "in front of" wall, "on top of" table. With `mark_fronted`,
    triples whose last item says the phrase opens the clause before a comma ("Above the
    sink, a mirror hangs"): such a phrase places the subject, whatever the verb."""
    for child in token.children:
        if child.dep_ == "prep":
            fronted = mark_fronted and _is_fronted(child, token)
            for phrase, target in _preposition_targets(child):
                yield (phrase, target, fronted) if mark_fronted else (phrase, target)
        elif child.dep_ in ADVERBIAL_HEAD_DEPS and child.pos_ in {"ADV", "ADJ"}:
            silent = child.lower_ in lexicon.PRESENCE_ADJECTIVES or _is_compound_tail(child)
            for grandchild in child.children:
                if grandchild.dep_ == "prep":
                    for phrase, target in _preposition_targets(grandchild):
                        pair = (phrase if silent else f"{child.lower_} {phrase}", target)
                        fronted = mark_fronted and _is_fronted(child, token)
                        yield (*pair, fronted) if mark_fronted else pair


def _is_fronted(preposition: Token, verb: Token) -> bool:
    """A prepositional phrase before its verb's subject, closed by a comma."""
    end = preposition.right_edge.i + 1
    if preposition.i > verb.i or end >= len(preposition.doc):
        return False
    subjects = [c.i for c in verb.children if c.dep_ in SUBJECT_DEPS]
    return preposition.doc[end].text == "," and all(end < i for i in subjects)


def _preposition_targets(preposition: Token) -> Iterator[tuple[str, Token]]:
    if preposition.lower_ in NEGATING_PREPOSITIONS:
        return
    word = lemma(preposition) if preposition.tag_ in PARTICIPLE_TAGS else preposition.lower_
    before = preposition.doc[preposition.i - 1] if preposition.i > 0 else None
    if word == "as" and before is not None and before.lower_ == "such":
        word = "such as"
    for child in preposition.children:
        if child.dep_ == "pobj":
            yield _through_position_noun(word, child)
        elif child.dep_ in {"prep", "pcomp"} and child.pos_ == "ADP":
            for phrase, target in _preposition_targets(child):
                yield f"{word} {phrase}", target


def _through_position_noun(preposition: str, noun: Token) -> tuple[str, Token]:
    """Fold "in front of X" / "in the middle of X" into one phrase whose object is X."""
    if lemma(noun) not in lexicon.POSITION_NOUNS:
        return preposition, noun
    inner = _of_object(noun)
    if inner is not None:
        words = [preposition, *(t.lower_ for t in noun.lefts), noun.lower_, "of"]
        return " ".join(words), inner
    owner = next((c for c in noun.lefts if c.dep_ == "poss" and c.pos_ == "PRON"), None)
    if owner is None or preposition not in SIDE_PREPOSITIONS:  # "in his left" is his hand
        return preposition, noun
    # "to her left" says "to the left of" her, "along its side" "along the side of" it
    words = [preposition, "the", *(t.lower_ for t in noun.lefts if t.i != owner.i), noun.lower_]
    return " ".join([*words, "of"]), owner


def extract_priors(doc: Doc) -> ParsedCaption:
    """All object, attribute and relation priors of one parsed caption."""
    return DocPriors(doc).extract()
