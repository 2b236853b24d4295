"""CaptionParser on what multi-sentence LLM descriptions add to short captions: abstract padding,
groups and containers, quantifiers, judgements and hedges, reference across sentences,
interpretive verbs and part nouns. Each test names one rule and checks the exact priors."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import pytest

from prior_extraction.parsing import CaptionParser, ParsedCaption
from prior_extraction.scoring import load_labelled

PARAGRAPHS = Path(__file__).parent / "data" / "labelled_paragraphs.jsonl"


@pytest.fixture(scope="module")
def parser() -> CaptionParser:
    return CaptionParser()


def objects(parsed: ParsedCaption) -> list[tuple[str, int]]:
    return [(item.name, item.count) for item in parsed.objects]


def attributes(parsed: ParsedCaption) -> set[tuple[str, str]]:
    names = [item.name for item in parsed.objects]
    return {(names[a.object], a.value) for a in parsed.attributes}


def relations(parsed: ParsedCaption) -> set[tuple[str, str, str]]:
    names = [item.name for item in parsed.objects]
    return {(names[r.subject], r.predicate, names[r.object]) for r in parsed.relations}


def test_abstract_padding_names_no_object(parser: CaptionParser) -> None:
    parsed = parser.parse(
        "The overall atmosphere of the area is calm. The design adds a touch of elegance, "
        "and in addition there is a sense of calm."
    )
    assert parsed.objects == [] and parsed.relations == []


def test_a_thing_among_padding_is_kept(parser: CaptionParser) -> None:
    parsed = parser.parse("A kite adds a splash of color to the scene, offering a break.")
    assert objects(parsed) == [("kite", 1)]


def test_group_nouns_name_their_members_and_count_them(parser: CaptionParser) -> None:
    parsed = parser.parse("A group of people stands near a herd of cows. A crowd is cheering.")
    assert objects(parsed) == [("person", 2), ("cow", 2), ("person", 2)]  # "a crowd": new
    assert attributes(parsed) == {("person", "group"), ("cow", "herd"), ("person", "crowd")}
    assert relations(parsed) == {("person", "stand near", "cow")}


def test_kind_nouns_count_nothing(parser: CaptionParser) -> None:
    parsed = parser.parse("A variety of fruits and an assortment of pastries are on display.")
    assert objects(parsed) == [("fruit", 2), ("pastry", 2)]
    assert attributes(parsed) == set()


def test_containers_are_objects_related_to_what_they_hold(parser: CaptionParser) -> None:
    parsed = parser.parse("A carton of eggs sits next to a slice of bread.")
    assert objects(parsed) == [("carton", 1), ("egg", 2), ("bread", 1)]
    assert relations(parsed) == {("carton", "of", "egg"), ("carton", "sit next to", "bread")}


def test_quantifiers_that_count_nothing_are_no_attributes(parser: CaptionParser) -> None:
    parsed = parser.parse("Some dogs, both cats, various birds and one horse are here.")
    assert objects(parsed) == [("dog", 2), ("cat", 2), ("bird", 2), ("horse", 1)]
    assert attributes(parsed) == set()


def test_counts_stay_attributes(parser: CaptionParser) -> None:
    parsed = parser.parse("There are several boats, a few gulls and dozens of ducks.")
    assert attributes(parsed) == {("boat", "several"), ("gull", "few"), ("duck", "dozen")}


def test_judgements_and_hedges_are_no_attributes(parser: CaptionParser) -> None:
    parsed = parser.parse(
        "The delicious pizza looks appealing, a unique red tower is visible, and the "
        "picturesque lake is calm."
    )
    assert attributes(parsed) == {("tower", "red"), ("lake", "calm")}


def test_shades_of_colours_colour_their_thing(parser: CaptionParser) -> None:
    parsed = parser.parse(
        "The sky is painted with shades of orange and pink. The path is covered with leaves "
        "in hues of red."
    )
    assert [name for name, _ in objects(parsed)] == ["sky", "path", "leaf"]
    assert attributes(parsed) == {("sky", "orange"), ("sky", "pink"), ("leaf", "red")}


def test_position_words_are_no_attributes(parser: CaptionParser) -> None:
    parsed = parser.parse("A bench stands against the back wall near the left window.")
    assert objects(parsed) == [("bench", 1), ("wall", 1), ("window", 1)]
    assert attributes(parsed) == set()


def test_a_pronoun_in_a_later_sentence_refers_back(parser: CaptionParser) -> None:
    parsed = parser.parse(
        "A woman is sitting at a table. She is smiling. "
        "The pizza is placed on a plate in front of her."
    )
    assert ("pizza", "place in front of", "woman") in relations(parsed)


def test_a_definite_mention_refers_to_the_longer_name_before_it(parser: CaptionParser) -> None:
    parsed = parser.parse(
        "A chocolate cake sits on a plate near a rowboat. The cake is topped with "
        "strawberries, and the boat is red."
    )
    assert objects(parsed) == [
        ("chocolate cake", 1),
        ("plate", 1),
        ("rowboat", 1),
        ("strawberry", 2),
    ]
    assert ("chocolate cake", "top with", "strawberry") in relations(parsed)
    assert attributes(parsed) == {("rowboat", "red")}


def test_a_generic_definite_mention_refers_to_the_last_thing_of_its_kind(
    parser: CaptionParser,
) -> None:
    parsed = parser.parse(
        "A fox sits beside a slice of cake on a bench. The dessert looks delicious, and the "
        "animal is sniffing it."
    )
    assert [name for name, _ in objects(parsed)] == ["fox", "cake", "bench"]
    assert ("fox", "sniff", "cake") in relations(parsed)


def test_an_indefinite_mention_is_a_new_object(parser: CaptionParser) -> None:
    parsed = parser.parse("A coffee table stands in the room, and a table stands outside.")
    assert [name for name, _ in objects(parsed)] == ["coffee table", "room", "table"]


def test_interpretive_verbs_relate_nothing(parser: CaptionParser) -> None:
    parsed = parser.parse(
        "A man is enjoying a slice of pizza, and a woman admires a painting. The lamp adds "
        "warmth to the room."
    )
    assert relations(parsed) == set()
    assert ("pizza", 1) in objects(parsed) and ("painting", 1) in objects(parsed)


def test_part_nouns_stand_for_their_whole(parser: CaptionParser) -> None:
    parsed = parser.parse(
        "The side of the train is decorated with a gold stripe, and the top of the wall is "
        "covered with ivy. Mist rises from the water's surface."
    )
    names = [name for name, _ in objects(parsed)]
    assert names == ["train", "stripe", "wall", "ivy", "mist", "water"]
    assert relations(parsed) == {
        ("train", "decorate with", "stripe"),
        ("wall", "cover with", "ivy"),
        ("mist", "rise from", "water"),
    }


def test_plurals_that_name_one_thing_stay_plural(parser: CaptionParser) -> None:
    parsed = parser.parse("A boy wearing jeans and glasses holds two glasses of milk.")
    names = [name for name, _ in objects(parsed)]
    assert names == ["boy", "jeans", "glasses", "glass", "milk"]
    assert relations(parsed) >= {("boy", "wear", "glasses"), ("glass", "of", "milk")}


def test_dictionary_compounds_keep_their_modifier_and_attributes_do_not(
    parser: CaptionParser,
) -> None:
    parsed = parser.parse("A worker in a hard hat drinks orange juice next to a red wine.")
    names = [name for name, _ in objects(parsed)]
    assert names == ["worker", "hard hat", "orange juice", "wine"]
    assert attributes(parsed) == {("wine", "red")}


def test_hyphenated_compounds_keep_their_hyphen(parser: CaptionParser) -> None:
    parsed = parser.parse("A boy in a blue t-shirt.")
    assert objects(parsed) == [("boy", 1), ("t-shirt", 1)]
    assert attributes(parsed) == {("t-shirt", "blue")}


def test_an_ing_clause_after_in_or_of_describes_the_first_noun(parser: CaptionParser) -> None:
    parsed = parser.parse(
        "A boy in a swimsuit splashing in a pool, and a terminal with windows overlooking "
        "the runway."
    )
    assert relations(parsed) >= {
        ("boy", "in", "swimsuit"),
        ("boy", "splash in", "pool"),
        ("window", "overlook", "runway"),
    }


def test_drawn_shapes_are_things(parser: CaptionParser) -> None:
    parsed = parser.parse("A red circle is to the left of a blue hexagon and a crescent.")
    assert [name for name, _ in objects(parsed)] == ["circle", "hexagon", "crescent"]


def test_place_names_are_no_objects(parser: CaptionParser) -> None:
    parsed = parser.parse("A red bus drives down a street in London.")
    assert [name for name, _ in objects(parsed)] == ["bus", "street"]


def test_scrambled_paragraphs_never_break_a_batch(parser: CaptionParser, caplog) -> None:
    """No rule trips over a garbled parse (which would log and give that caption nothing)."""
    rng = random.Random(0)
    texts = []
    for item in load_labelled(PARAGRAPHS):
        words = item.caption.split()
        rng.shuffle(words)
        texts.append(" ".join(words))
    with caplog.at_level(logging.WARNING, logger="prior_extraction.parsing"):
        results = parser.parse_many(texts)
    assert caplog.records == []
    for parsed in results:
        size = len(parsed.objects)
        assert all(0 <= a.object < size for a in parsed.attributes)
        assert all(0 <= r.subject < size and 0 <= r.object < size for r in parsed.relations)
        assert all(o.name and o.count >= 1 for o in parsed.objects)


def test_each_instance_the_text_brings_in_is_its_own_object(parser: CaptionParser) -> None:
    """An indefinite article or "another" brings in a new thing with its own attributes; a
    later mention refers to the instance whose words it shares, so relations join the right
    ones."""
    parsed = parser.parse(
        "There is a small red cross, a large orange checkered cross and a blue circle. "
        "The orange cross is above the red cross. Another circle sits below the blue circle."
    )
    assert objects(parsed) == [("cross", 1), ("cross", 1), ("circle", 1), ("circle", 1)]
    by_object = [sorted(a.value for a in parsed.attributes if a.object == i) for i in range(4)]
    assert by_object == [["red", "small"], ["checkered", "large", "orange"], ["blue"], []]
    pairs = {(r.subject, r.object) for r in parsed.relations}
    assert pairs == {(1, 0), (3, 2)}


def test_a_definite_mention_refers_back_and_keeps_the_largest_count(
    parser: CaptionParser,
) -> None:
    parsed = parser.parse("A man rides a horse. The man wears a hat. The horses are tired.")
    assert objects(parsed) == [("man", 1), ("horse", 2), ("hat", 1)]


def test_saying_what_a_thing_is_brings_in_nothing_new(parser: CaptionParser) -> None:
    parsed = parser.parse("There is a cup on a table. The cup is a small white cup.")
    assert objects(parsed) == [("cup", 1), ("table", 1)]
    assert attributes(parsed) == {("cup", "small"), ("cup", "white")}


def test_patterns_a_thing_is_covered_with_describe_it(parser: CaptionParser) -> None:
    parsed = parser.parse(
        "This graphic shows a star with a checkered pattern, a polka-dot cross and a "
        "triangle with dots. A woman wears a shirt with stripes."
    )
    assert [name for name, _ in objects(parsed)] == ["star", "cross", "triangle", "woman", "shirt"]
    assert {(n, v) for n, v in attributes(parsed) if n != "woman"} == {
        ("star", "checkered"),
        ("cross", "polka-dot"),
        ("triangle", "dotted"),
        ("shirt", "striped"),
    }


def test_things_with_other_things_stay_objects(parser: CaptionParser) -> None:
    parsed = parser.parse("A man with a hat stands next to a cake with candles.")
    assert [name for name, _ in objects(parsed)] == ["man", "hat", "cake", "candle"]
    assert ("cake", "with", "candle") in relations(parsed)


def test_photos_cameras_and_photographers_in_the_picture_are_things(
    parser: CaptionParser,
) -> None:
    parsed = parser.parse(
        "A framed photo hangs on the wall above a picture frame. A man is holding a camera, "
        "and a photographer stands beside him."
    )
    names = [name for name, _ in objects(parsed)]
    assert names == ["photo", "wall", "picture frame", "man", "camera", "photographer"]
    assert relations(parsed) >= {("photo", "hang on", "wall"), ("man", "hold", "camera")}


def test_the_picture_itself_and_whoever_takes_it_are_no_things(parser: CaptionParser) -> None:
    parsed = parser.parse(
        "In this photo, a dog looks at the camera. A photo of a cat on a couch. The "
        "photographer took the picture from a low angle."
    )
    assert [name for name, _ in objects(parsed)] == ["dog", "cat", "couch"]


def test_a_hedged_alternative_names_one_thing(parser: CaptionParser) -> None:
    parsed = parser.parse(
        "A small bird, possibly a pigeon or a sparrow, sits on the ledge. There is possibly a "
        "crow or a raven on the roof."
    )
    assert objects(parsed) == [("bird", 1), ("ledge", 1), ("crow", 1), ("roof", 1)]
    assert relations(parsed) == {("bird", "sit on", "ledge"), ("crow", "on", "roof")}


def test_an_apposition_names_the_thing_before_it(parser: CaptionParser) -> None:
    parsed = parser.parse("The patient, an elderly man, rests in a bed.")
    assert objects(parsed) == [("patient", 1), ("bed", 1)]
    assert attributes(parsed) == {("patient", "elderly")}


def test_what_is_said_not_to_be_present_is_no_object(parser: CaptionParser) -> None:
    parsed = parser.parse(
        "A bench stands in the park. People are not present, and animals do not appear near "
        "the bench."
    )
    assert [name for name, _ in objects(parsed)] == ["bench", "park"]


def test_a_two_word_noun_the_parser_splits_after_shows_stays_one(parser: CaptionParser) -> None:
    parsed = parser.parse("The image shows a red fire hydrant next to a car.")
    assert objects(parsed) == [("fire hydrant", 1), ("car", 1)]
    assert attributes(parsed) == {("fire hydrant", "red")}
    assert relations(parsed) == {("fire hydrant", "next to", "car")}


def test_a_dummy_it_stands_for_nothing(parser: CaptionParser) -> None:
    parsed = parser.parse(
        "A cat sits on a mat. It is sunny and warm. A dog lies on a porch. It is raining, and "
        "it looks cold."
    )
    assert [name for name, _ in objects(parsed)] == ["cat", "mat", "dog", "porch"]
    assert attributes(parsed) == set()


def test_a_noun_that_only_locates_is_no_part_of_the_name(parser: CaptionParser) -> None:
    parsed = parser.parse(
        "A basket sits on the kitchen counter top next to the kitchen sink. A woman walks down "
        "a city street."
    )
    names = [name for name, _ in objects(parsed)]
    assert names == ["basket", "counter", "kitchen sink", "woman", "street"]
    assert attributes(parsed) == set()


def test_guesses_add_no_things(parser: CaptionParser) -> None:
    parsed = parser.parse(
        "A few egrets wade in the shallows, likely searching for fish. The clouds suggest that "
        "a storm is coming."
    )
    assert [name for name, _ in objects(parsed)] == ["egret", "shallows", "cloud"]
    assert relations(parsed) == {("egret", "wade in", "shallows")}


def test_a_side_of_a_pronoun_folds_into_the_predicate(parser: CaptionParser) -> None:
    parsed = parser.parse("A girl stands by a bench. To her left, a dog sleeps.")
    assert ("dog", "to the left of", "girl") in relations(parsed)


def test_a_clause_after_a_photo_of_a_thing_describes_the_thing(parser: CaptionParser) -> None:
    parsed = parser.parse("A close-up photo of a cat lying next to a laptop.")
    assert relations(parsed) == {("cat", "lie next to", "laptop")}


def test_the_room_refers_to_the_indoor_place_before_it(parser: CaptionParser) -> None:
    parsed = parser.parse("A sculpture stands in a museum gallery. The room is dimly lit.")
    assert [name for name, _ in objects(parsed)] == ["sculpture", "gallery"]
    assert attributes(parsed) == {("gallery", "lit")}


def test_a_colour_said_as_a_noun_describes_the_subject(parser: CaptionParser) -> None:
    parsed = parser.parse("The sky is a brilliant blue, and the walls are a pale yellow.")
    assert [name for name, _ in objects(parsed)] == ["sky", "wall"]
    assert attributes(parsed) == {
        ("sky", "brilliant"),
        ("sky", "blue"),
        ("wall", "pale"),
        ("wall", "yellow"),
    }


def test_some_of_whom_and_one_of_which_refer_to_the_group_before(parser: CaptionParser) -> None:
    parsed = parser.parse(
        "There are a few people in the square, some of whom are carrying bags. Several boats "
        "float in the harbor, one of which has a red sail."
    )
    assert relations(parsed) >= {("person", "carry", "bag"), ("boat", "have", "sail")}
    assert ("harbor", "have", "sail") not in relations(parsed)


def test_a_comma_and_with_before_a_participle_opens_a_clause_of_its_own(
    parser: CaptionParser,
) -> None:
    parsed = parser.parse("A laptop is placed on the desk, with a mouse positioned to its right.")
    assert relations(parsed) == {
        ("laptop", "place on", "desk"),
        ("mouse", "position to the right of", "laptop"),
    }


def test_in_line_and_in_rows_arrange_things_and_name_none(parser: CaptionParser) -> None:
    parsed = parser.parse(
        "People are standing in line at the counter. Macarons are arranged in neat rows, and "
        "white lines mark the field."
    )
    assert [name for name, _ in objects(parsed)] == [
        "person",
        "counter",
        "macaron",
        "line",
        "field",
    ]


def test_it_inside_a_with_phrase_is_the_noun_the_phrase_belongs_to(parser: CaptionParser) -> None:
    parsed = parser.parse("The bathroom has a white toilet and a sink with a mirror above it.")
    assert ("mirror", "above", "sink") in relations(parsed)
    assert ("mirror", "above", "bathroom") not in relations(parsed)


def test_whoever_the_picture_invites_is_not_in_it(parser: CaptionParser) -> None:
    parsed = parser.parse("A wooden bench faces the lake, inviting visitors to sit and relax.")
    assert [name for name, _ in objects(parsed)] == ["bench", "lake"]


def test_what_a_copula_says_a_thing_is_is_that_thing(parser: CaptionParser) -> None:
    parsed = parser.parse("The car is a shiny red sports car.")
    assert objects(parsed) == [("car", 1)]
    assert attributes(parsed) == {("car", "shiny"), ("car", "red")}


def test_a_side_named_without_its_noun_is_no_side_of_its_owner(parser: CaptionParser) -> None:
    parsed = parser.parse("The man holds a cup in his right hand and a phone in his left.")
    assert not any(predicate.endswith(" of") for _, predicate, _ in relations(parsed))
