"""Closed word lists the caption parser needs beyond the dependency tree: attribute kinds, nouns
that never name a segmentable object, quantities, and person nouns for pronoun reference; and the
open-class test of whether a noun names a visible physical thing, read from the WordNet-derived
table that `prior_extraction.wordnet_nouns` builds."""

from __future__ import annotations

import re
from functools import cache

from prior_extraction import wordnet_nouns


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
    "vinyl stainless chrome cobblestone asphalt terracotta linen gravel brass rattan suede satin "
    "tin stucco plaster burlap cashmere dirt"
)
STATES = _words(
    "open closed empty full wet dry broken lit fresh ripe rotten dirty clean new old used calm "
    "busy crowded sunny cloudy snowy rainy foggy frozen melted asleep awake alive dead young "
    "shiny messy tidy cluttered sliced cooked raw boiling burning melting glowing steaming "
    "smoking"
)
# Surface patterns describe appearance, not a state, even where tagged as participles.
PATTERNS = _words(
    "striped stripy dotted spotted speckled checkered chequered plaid floral patterned polka-dot"
)
PATTERN_NOUNS = {
    "dot": "dotted",
    "polka": "polka-dot",
    "stripe": "striped",
    "spot": "spotted",
    "check": "checkered",
    "checker": "checkered",
}
"""Marks on a thing, named as what it is covered with ("a triangle with dots"): no objects, an
attribute of the thing they mark."""
PATTERN_HOLDERS = frozenset({"pattern", "print", "design"})
"""Nouns whose pattern words describe the thing they belong to ("with a checkered pattern")."""
# Nouns a colour is said through: "the water is a deep turquoise color".
COLOUR_NOUNS = _words("color colour shade hue tone tint")
# Words of colour, state or size used as a bare noun name a quality, not a thing ("dressed in
# blue", "a sense of calm"), unless plural or determined ("the lights", "an orange").
QUALITY_WORDS = COLORS | STATES | SIZES
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
# Nouns that say how many of something there are and how they are grouped: "a group of
# people" names people, counted as a group.
COUNTING_COLLECTIVE_NOUNS = _words(
    "group bunch herd flock pair couple row cluster handful dozen dozens school pack swarm crowd "
    "stack pile line heap hundreds thousands hundred thousand fleet pod troop gaggle litter"
)
# Nouns that only say there are several kinds or some amount: "a variety of fruits" names
# fruits, and "variety" is no count.
KIND_NOUNS = _words(
    "number lot lots variety set collection assortment array selection series plenty range mix "
    "mixture kind type sort combination medley abundance multitude host shade shades"
)
COLLECTIVE_NOUNS = COUNTING_COLLECTIVE_NOUNS | KIND_NOUNS
# Nouns naming a part or portion of some stuff: "a slice of pizza" names pizza.
PARTITIVE_NOUNS = _words(
    "slice piece bit chunk scoop wedge strip sliver sheet sprig stick coil loaf mound sprinkle "
    "dollop drop lump strand cube splash patch patches wisp puff pinch bale blade spoonful "
    "cloud plume column ball serving helping layer trail roll swirl drizzle dab ray "
    "pop"
)
# Nouns that give their thing the colours after "of": "leaves in shades of red and gold".
SHADE_NOUNS = _words("shade hue tone tint")
# Group nouns that stand for the people in them when nothing follows: "a crowd" is people.
PEOPLE_GROUP_NOUNS = _words("crowd audience couple")
# Group nouns that are segmentable things in their own right ("a family", "the band").
GROUP_OBJECTS = _words("family team band crew orchestra choir fleet")
# Words that pick members out of an "of" phrase: "some of them", "one of the dogs".
SELECTING_WORDS = _words("some one all both each many most several few any none")
# Verbs that present what the picture contains: "the image shows X on Y" says X is on Y.
PRESENTING_VERBS = _words(
    "see show depict feature display capture find spot notice observe portray picture "
    "include contain"
)
# Nouns that name visible things although most of their WordNet senses do not.
VISIBLE_NOUNS = _words(
    "sign fire poster banner graffiti logo label menu screen flame bonfire campfire lampshade "
    "painting drawing footprint"
)
# Nouns about the picture itself, its layout or abstractions: never segmentable objects.
META_NOUNS = _words(
    "image photography scene background foreground view shot snapshot "
    "depiction illustration setting atmosphere composition object attribute relation "
    "relationship detail item element description overview summary caption day night time "
    "moment way color colour shape style appearance look mood feeling sense environment "
    "surroundings something anything everything nothing someone anyone everyone thing things "
    "total presence position location distance activity event perspective angle balance turn "
    "attention direction motion movement action energy vibe ambiance feel interest purpose "
    "area region space place spot weather lighting landscape scenery horizon skyline "
    "subject main focus variety texture pattern design combination touch addition charm beauty "
    "character personality quality sight spectacle display viewer work workspace effect glow "
    "setup "
    "glimpse hint piece kind type sort silhouette outline reflection shadow silhouettes life "
    "nature world tone hue shade shades colors colours blur break bustle game match sunset "
    "sunrise dusk dawn evening morning afternoon noon midday winter summer autumn spring "
    "season weekend holiday vacation graphic diagram rendering air"
)
# Nouns that always name the picture or a view of it, never a thing in it.
PICTURE_WORDS = _words("image picture photo photograph scene view shot snapshot illustration")
# Nouns that name the picture itself in some uses ("in this photo", "a photo of a dog", "taking
# a picture") and a thing in it in others ("a framed photo hangs on the wall", "picture frame").
PICTURE_NOUNS = _words("photo photograph picture frame")
# Nouns that name whoever takes the picture in some uses ("looking at the camera", "taken by
# the photographer") and a person or thing in it in others ("a man holding a camera").
VIEWER_NOUNS = _words("camera lens photographer")
# Verbs whose object is the picture being made ("taking a photo"), or whose subject is the
# picture ("the photo captures a dog").
PICTURE_MAKING_VERBS = _words("take snap shoot capture frame")
# Prepositions after which "the camera" or "the photographer" is the viewpoint ("looking at the
# camera", "posing for the photographer", "taken by the photographer").
VIEWPOINT_PREPOSITIONS = _words("at toward towards for to into from by")
# Nouns of places a modifier may name only to say where a thing is ("kitchen counter", "city
# street", "bathroom wall"): the thing keeps its own name unless a dictionary lists the pair
# ("kitchen sink", "park bench", "street lamp").
PLACE_MODIFIERS = _words(
    "kitchen bathroom bedroom office room street city town village downtown backyard yard "
    "restaurant cafe bakery library classroom hospital airport museum market shop store hotel "
    "lobby"
)
# Adverbs that hedge a whole participial clause: ", likely searching for fish" guesses at what
# is not seen. On a noun they hedge a name ("a bird, possibly a pigeon").
HEDGE_ADVERBS = _words("possibly perhaps probably likely presumably maybe apparently seemingly")
# Verbs whose complement is a guess or a wish, not something seen ("suggesting that a storm is
# approaching", "hoping for scraps").
SPECULATIVE_VERBS = _words(
    "suggest indicate imply hope wish want expect anticipate invite encourage beckon"
)
# Predicates that say whether a thing is there at all: "people are not present", "no car is
# visible near the house" (as a relation: "visible near" says "near").
PRESENCE_ADJECTIVES = _words("present visible apparent evident seen noticeable discernible")
PRESENCE_VERBS = _words("appear exist")
# What a dummy "it" is said to be: "it is a sunny day", "it is raining", "it looks cold".
WEATHER_WORDS = _words(
    "sunny cloudy rainy foggy snowy windy stormy overcast misty hazy humid cold hot warm chilly "
    "freezing dark early late"
)
WEATHER_VERBS = _words("rain snow drizzle pour hail storm")
# Nouns naming a place on or relative to something else ("in front of", "on the left", "the
# side of the train", "the surface of the water"): they stand for that thing.
POSITION_NOUNS = _words(
    "front top bottom middle center centre side left right edge back rear corner end part "
    "portion half surface base tip crest rim interior exterior inside outside sides edges "
    "corners"
)
# Adjectives that pick out a referent, place it, judge it or hedge about it rather than
# describe how it looks: never attributes.
NON_DESCRIPTIVE_ADJECTIVES = _words(
    # selecting and ordering
    "other same own such certain particular main additional extra various different some "
    "both each every all any another single only entire whole overall total usual typical "
    "general specific similar distinct separate respective "
    # position
    "back front top bottom left right far near nearby rear upper lower middle central "
    "opposite inner outer side foreground background neighboring neighbouring "
    # order
    "first second third fourth fifth last next final nearest closest farthest furthest"
)
# Words for a side that never belong to a name: "right hand" is a hand.
SIDE_WORDS = _words("left right")
# Words saying how many without counting: kept as the object's count, never as an attribute.
UNCOUNTED_QUANTIFIERS = _words("some various both each every all any another one no")
# Judgements of appeal or interest and hedges: what the writer thinks, not what is seen.
EVALUATIVE_ADJECTIVES = _words(
    "beautiful stunning picturesque delicious appetizing appealing inviting cozy cosy charming "
    "lovely elegant gorgeous breathtaking magnificent impressive pleasant serene tranquil "
    "idyllic perfect nice great good wonderful amazing vibrant unique interesting special "
    "indulgent tempting mouthwatering tasty scenic majestic striking visible apparent possible "
    "likely probable distinctive notable prominent iconic stylish fancy luxurious welcoming "
    "romantic quiet relaxing calming soothing cheerful festive lively bustling inviting "
    "attractive pretty cute adorable delightful fascinating captivating remarkable beloved "
    "popular famous classic quaint enjoyable fun playful joyful "
    "healthy nutritious well-organized organized well-equipped equipped cinematic "
    "dramatic moody nostalgic whimsical harmonious balanced dynamic energetic intimate "
    "real actual true exact comfortable comfy homey assorted diverse varied scrumptious yummy "
    "savory savoury flavorful hearty gourmet exquisite sophisticated refined chic trendy "
    "fashionable convenient functional practical useful essential important significant "
    "primary key common ordinary regular standard ideal suitable excellent fantastic "
    "eye-catching memorable unforgettable grand historic inspiring upscale"
)
# Adjectives of age: attributes, never part of a name ("young girl", "old man").
AGE_ADJECTIVES = _words("young old little elderly adult baby teenage aged ancient new")
MALE_NOUNS = _words(
    "man boy gentleman guy father dad son brother husband king prince groom grandfather "
    "businessman policeman fisherman groom fireman"
)
FEMALE_NOUNS = _words(
    "woman girl lady mother mom daughter sister wife queen princess bride grandmother "
    "businesswoman policewoman bride waitress actress ballerina nun"
)
PERSON_NOUNS = _words(
    "person people child kid baby toddler teenager adult player skier surfer snowboarder "
    "skateboarder rider biker cyclist chef cook worker officer tourist pedestrian student "
    "teacher doctor nurse athlete batter catcher pitcher umpire driver passenger customer "
    "vendor farmer soldier individual friend couple family crowd spectator audience "
    "performer musician artist waiter barista mechanic scientist veterinarian barber painter "
    "gardener hiker kayaker jogger runner swimmer diver skater guitarist drummer singer dancer "
    "goalkeeper defender referee guard firefighter pilot sailor baker librarian cashier "
    "clerk bartender shopper traveler traveller commuter visitor guest owner patient "
    "photographer infant climber lifeguard"
)
MALE_PRONOUNS = frozenset({"he", "him", "himself", "his"})
FEMALE_PRONOUNS = frozenset({"she", "her", "herself"})
PLURAL_PRONOUNS = frozenset({"they", "them", "themselves", "their"})
NEUTER_PRONOUNS = frozenset({"it", "itself", "its"})
# Words standing for an earlier noun: "one dog is brown and the other is gray".
ANAPHORIC_WORDS = frozenset({"other", "others", "another", "one", "ones"})
# Verbs that interpret the picture rather than say what a thing does to another: "adds a touch
# of elegance", "enjoying a slice of pizza", "suggesting that ...".
INTERPRETIVE_VERBS = _words(
    "enjoy admire appreciate suggest indicate imply evoke convey create add give offer provide "
    "bring contribute enhance complement highlight showcase emphasize emphasise invite exude "
    "celebrate seem appear make symbolize symbolise represent reveal demonstrate express "
    "accentuate engage signify emanate radiate"
)
# Rooms and other indoor places "the room" may stand for ("a museum gallery ... the room").
ROOM_NOUNS = _words(
    "kitchen bathroom bedroom classroom library gallery studio office cafe restaurant bakery "
    "laundromat barbershop salon shop store lobby hall gym clinic diner bar pub nursery "
    "laboratory lab workshop garage attic basement cellar"
)
ROOM_KIND = "r"
"""The kind letter of `ROOM_NOUNS`, beside WordNet's `f` and `a` (`thing_kind`)."""
# Generic nouns a definite mention uses for an earlier thing of their kind (a `wordnet_nouns`
# kind letter): "the dessert" after "a chocolate cake", "the animal" after "a fox".
GENERIC_NOUNS: dict[str, str] = (
    dict.fromkeys(_ordered_words("food dessert dish meal snack treat drink beverage"), "f")
    | dict.fromkeys(_ordered_words("animal creature pet"), "a")
    | dict.fromkeys(_ordered_words("room"), ROOM_KIND)
)
# Known errors of spaCy's rule lemmatizer on verbs captions use ("riding" -> "rid").
LEMMA_FIXES: dict[str, str] = {
    "riding": "ride",
    "rides": "ride",
    "dining": "dine",
    "shining": "shine",
    "wading": "wade",
    "people": "person",
}
# Plural nouns with no singular for the thing they name: "a pair of jeans", "glasses".
PLURALIA_TANTUM = _words(
    "pants shorts jeans trousers leggings tights overalls pajamas pyjamas glasses sunglasses "
    "eyeglasses goggles binoculars scissors pliers tongs scrubs clothes sweatpants shears "
    "clippers rapids shallows"
)

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


@cache
def noun_table() -> dict[str, str]:
    """The WordNet-derived noun table, read once per process."""
    return wordnet_nouns.read_table()


def wordnet_class(words: str) -> str | None:
    """What WordNet says a (one- or two-word) lower-case noun names: see `wordnet_nouns`."""
    return noun_table().get(words)


def names_physical_thing(name: str, is_proper_noun: bool = False) -> bool:
    """Whether a noun (by its head word, or the whole name where WordNet lists it) names a
    visible physical thing; a compound names one when its head can ("soccer goal"). Words
    WordNet lacks count as things ("smartphone"), unless proper names ("London")."""
    head = name.split()[-1]
    if head in VISIBLE_NOUNS or head in GROUP_OBJECTS or head in PERSON_NOUNS:
        return True
    if head in META_NOUNS:
        return False
    category = wordnet_class(name)
    if category is None:
        category = wordnet_class(head)
        if category == wordnet_nouns.MOSTLY_ABSTRACT and " " in name:
            return True
    if category is None:
        return not is_proper_noun
    return wordnet_nouns.is_physical(category)


def thing_kind(name: str) -> str | None:
    """The kind letter of a physical noun (`f` food, `a` animal, see `wordnet_nouns`; `r` a
    room)."""
    if name.split()[-1] in ROOM_NOUNS:
        return ROOM_KIND
    category = wordnet_class(name) or wordnet_class(name.split()[-1])
    if not wordnet_nouns.is_physical(category):
        return None
    return category[len(wordnet_nouns.PHYSICAL) :] or None


def is_noun_only_as_written(written: str, lemma: str) -> bool:
    """Whether WordNet knows a plural-looking noun as written but not its lemma ("thermos",
    not "thermo")."""
    return wordnet_class(lemma) is None and wordnet_class(written) is not None


def is_known_phrase(words: str) -> bool:
    """Whether WordNet lists these words as one physical noun ("orange juice", "hard hat")."""
    return " " in words and wordnet_nouns.is_physical(wordnet_class(words))


def is_adjective_only(word: str) -> bool:
    """A word WordNet knows as an adjective and never as a noun ("crispy")."""
    return wordnet_class(word) == wordnet_nouns.ADJECTIVE


def is_description(value: str) -> bool:
    """Whether an attribute value says how something looks (not a judgement or a hedge)."""
    word = value.lower()
    return word not in NON_DESCRIPTIVE_ADJECTIVES and word not in EVALUATIVE_ADJECTIVES
