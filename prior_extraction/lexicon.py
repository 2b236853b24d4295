"""Closed word lists the caption parser needs beyond the dependency tree: attribute kinds, nouns
that never name a segmentable object, quantities, and person nouns for pronoun reference."""

from __future__ import annotations

import re


def _ordered_words(text: str) -> tuple[str, ...]:
    """A word list written as one space-separated string, in order."""
    return tuple(text.split())


def _words(text: str) -> frozenset[str]:
    """A word set written as one space-separated string."""
    return frozenset(_ordered_words(text))


COLORS = _words(
    "red orange yellow green blue purple violet pink brown black white gray grey silver gold "
    "golden beige tan maroon navy teal turquoise cyan magenta cream ivory colorful colourful "
    "multicolored multicoloured blond blonde dark light bright pale crimson scarlet"
)
SIZES = _words(
    "small large big little tiny huge giant enormous massive tall short long wide narrow thick "
    "thin high low medium miniature oversized compact vast deep shallow"
)
MATERIALS = _words(
    "wooden wood metal metallic steel iron plastic glass brick stone concrete leather fabric "
    "cotton wool woolen woollen denim silk ceramic porcelain marble paper cardboard rubber bamboo "
    "wicker straw granite tile tiled clay copper bronze aluminum aluminium velvet lace fur canvas "
    "vinyl stainless chrome cobblestone asphalt"
)
STATES = _words(
    "open closed empty full wet dry broken lit fresh ripe rotten dirty clean new old used calm "
    "busy crowded sunny cloudy snowy rainy foggy frozen melted asleep awake alive dead young "
    "shiny messy tidy cluttered sliced cooked raw"
)
# Surface patterns describe appearance, not a state, even where tagged as participles.
PATTERNS = _words(
    "striped stripy dotted spotted speckled checkered chequered plaid floral patterned polka-dot"
)
QUANTIFIERS: dict[str, int] = {
    "several": 3,
    "many": 3,
    "few": 2,
    "multiple": 2,
    "numerous": 3,
    "various": 2,
    "some": 2,
    "both": 2,
    "countless": 3,
}
NUMBER_NAMES = _ordered_words(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty"
)
NUMBER_WORDS: dict[str, int] = {word: value for value, word in enumerate(NUMBER_NAMES)} | {
    "dozen": 12,
    "pair": 2,
    "couple": 2,
}
# Nouns that only say how many of something there are: "a group of people" names people.
COLLECTIVE_NOUNS = _words(
    "group bunch herd flock pair couple number lot lots variety set collection row assortment "
    "array selection cluster series handful dozen dozens school pack swarm crowd stack pile "
    "line plenty range mix mixture kind type sort"
)
# Nouns naming a part of some stuff: "a slice of pizza" names pizza.
PARTITIVE_NOUNS = _words("slice piece bit chunk scoop wedge strip sliver")
# Words that pick members out of an "of" phrase: "some of them", "one of the dogs".
SELECTING_WORDS = _words("some one all both each many most several few any none")
# Verbs that present what the picture contains: "the image shows X on Y" says X is on Y.
PRESENTING_VERBS = _words(
    "see show depict feature display capture find spot notice observe portray picture "
    "include contain"
)
# Nouns about the picture itself, its layout or abstractions: never segmentable objects.
META_NOUNS = _words(
    "image picture photo photograph photography scene background foreground view shot snapshot "
    "frame depiction illustration setting atmosphere composition object attribute relation "
    "relationship detail item element description overview summary caption day night time "
    "moment way color colour shape style appearance look mood feeling sense environment "
    "surroundings something anything everything nothing someone anyone everyone thing things "
    "total presence position location distance activity event perspective angle balance turn "
    "attention direction motion movement action energy vibe ambiance feel interest purpose"
)
# Nouns naming a place relative to something else ("in front of", "on the left").
POSITION_NOUNS = _words(
    "front top bottom middle center centre side left right edge back rear corner end part "
    "portion half"
)
# Adjectives that pick out a referent rather than describe it.
NON_DESCRIPTIVE_ADJECTIVES = _words("other same own such certain particular main")
MALE_NOUNS = _words(
    "man boy gentleman guy father dad son brother husband king prince groom grandfather "
    "businessman policeman fisherman"
)
FEMALE_NOUNS = _words(
    "woman girl lady mother mom daughter sister wife queen princess bride grandmother "
    "businesswoman policewoman"
)
PERSON_NOUNS = _words(
    "person people child kid baby toddler teenager adult player skier surfer snowboarder "
    "skateboarder rider biker cyclist chef cook worker officer tourist pedestrian student "
    "teacher doctor nurse athlete batter catcher pitcher umpire driver passenger customer "
    "vendor farmer soldier individual friend couple family crowd spectator audience "
    "performer musician artist waiter waitress"
)
MALE_PRONOUNS = frozenset({"he", "him", "himself"})
FEMALE_PRONOUNS = frozenset({"she", "her", "herself"})
PLURAL_PRONOUNS = frozenset({"they", "them", "themselves"})
NEUTER_PRONOUNS = frozenset({"it", "itself"})
# Words standing for an earlier noun: "one dog is brown and the other is gray".
ANAPHORIC_WORDS = frozenset({"other", "others", "another", "one", "ones"})
# Known errors of spaCy's rule lemmatizer on verbs captions use ("riding" -> "rid").
LEMMA_FIXES: dict[str, str] = {
    "riding": "ride",
    "rides": "ride",
    "dining": "dine",
    "shining": "shine",
    "wading": "wade",
    "people": "person",
}

_DIGITS = re.compile(r"^\d{1,4}$")


def number_value(word: str) -> int | None:
    """The integer a numeral stands for ("two" -> 2, "12" -> 12), else None."""
    word = word.lower()
    if _DIGITS.match(word):
        return int(word)
    return NUMBER_WORDS.get(word)


def attribute_kind(value: str, is_participle: bool = False) -> str:
    """Classify an attribute value as color, size, material, count, state or other."""
    last_word = value.lower().split()[-1]
    if last_word in COLORS:
        return "color"
    if last_word in SIZES:
        return "size"
    if last_word in MATERIALS:
        return "material"
    if last_word in QUANTIFIERS or number_value(last_word) is not None:
        return "count"
    if last_word in STATES or (is_participle and last_word not in PATTERNS):
        return "state"
    return "other"


def person_gender(name: str) -> str | None:
    """'male', 'female' or 'person' for a noun naming people (by its head word), else None."""
    head = name.split()[-1]
    if head in MALE_NOUNS:
        return "male"
    if head in FEMALE_NOUNS:
        return "female"
    if head in PERSON_NOUNS:
        return "person"
    return None
