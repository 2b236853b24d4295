"""CaptionParser on the phenomena LLaVA descriptions contain: each test names one rule and
checks the exact priors it yields, read back as names so the assertions stay legible."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
import spacy
from threadpoolctl import threadpool_info

from prior_extraction.parsing import (
    PARSER_NAME,
    PARSER_VERSION,
    AttributePrior,
    CaptionParser,
    ObjectPrior,
    ParsedCaption,
    RelationPrior,
    default_process_count,
)
from prior_extraction.rules import quoted_token_indices


@pytest.fixture(scope="module")
def parser() -> CaptionParser:
    return CaptionParser()


def objects(parsed: ParsedCaption) -> list[tuple[str, int]]:
    return [(item.name, item.count) for item in parsed.objects]


def attributes(parsed: ParsedCaption) -> set[tuple[str, str, str]]:
    names = [item.name for item in parsed.objects]
    return {(names[a.object], a.value, a.kind) for a in parsed.attributes}


def relations(parsed: ParsedCaption) -> set[tuple[str, str, str]]:
    names = [item.name for item in parsed.objects]
    return {(names[r.subject], r.predicate, names[r.object]) for r in parsed.relations}


def test_constants_name_the_parser() -> None:
    assert PARSER_NAME == "llmformer-spacy-rules"
    assert PARSER_VERSION.count(".") == 2


def test_the_default_process_count_is_the_usable_cores_or_fewer_for_a_few_captions() -> None:
    cores = len(os.sched_getaffinity(0))
    assert default_process_count() == cores
    assert default_process_count(10) == 1
    assert default_process_count(10**6) == cores


# Objects


def test_compound_nouns_keep_their_modifiers(parser: CaptionParser) -> None:
    parsed = parser.parse("A teddy bear sits next to a fire hydrant.")
    assert objects(parsed) == [("teddy bear", 1), ("fire hydrant", 1)]
    assert parsed.objects[0].span == "teddy bear"


def test_plurals_become_singular_lemmas_with_counts(parser: CaptionParser) -> None:
    parsed = parser.parse("Two elephants and several people are standing near a river.")
    assert objects(parsed) == [("elephant", 2), ("person", 3), ("river", 1)]
    assert {("elephant", "two", "count"), ("person", "several", "count")} <= attributes(parsed)


def test_conjoined_nouns_are_separate_objects(parser: CaptionParser) -> None:
    parsed = parser.parse("Bananas, apples, and oranges are in a bowl.")
    assert objects(parsed) == [("banana", 2), ("apple", 2), ("orange", 2), ("bowl", 1)]
    assert relations(parsed) == {
        ("banana", "in", "bowl"),
        ("apple", "in", "bowl"),
        ("orange", "in", "bowl"),
    }


def test_pronouns_and_meta_nouns_never_become_objects(parser: CaptionParser) -> None:
    parsed = parser.parse("It is sunny. The image shows a scene with a dog in the foreground.")
    assert objects(parsed) == [("dog", 1)]
    assert parsed.attributes == [] and parsed.relations == []


def test_a_collective_noun_names_its_members(parser: CaptionParser) -> None:
    parsed = parser.parse("A group of people can be seen walking on the beach.")
    assert objects(parsed) == [("person", 2), ("beach", 1)]
    assert attributes(parsed) == {("person", "group", "count")}
    assert relations(parsed) == {("person", "walk on", "beach")}


def test_repeated_mentions_merge_into_one_object(parser: CaptionParser) -> None:
    parsed = parser.parse("A dog sits on a mat. The dog is brown.")
    assert objects(parsed) == [("dog", 1), ("mat", 1)]
    assert attributes(parsed) == {("dog", "brown", "color")}


# Attributes


def test_coordinated_and_predicative_adjectives(parser: CaptionParser) -> None:
    parsed = parser.parse("A blue and white airplane flies over a brick wall. The water is calm.")
    assert attributes(parsed) == {
        ("airplane", "blue", "color"),
        ("airplane", "white", "color"),
        ("wall", "brick", "material"),
        ("water", "calm", "state"),
    }
    assert objects(parsed) == [("airplane", 1), ("wall", 1), ("water", 1)]


def test_material_nouns_are_attributes_not_names(parser: CaptionParser) -> None:
    parsed = parser.parse("A cat is sleeping on a leather couch.")
    assert objects(parsed) == [("cat", 1), ("couch", 1)]
    assert attributes(parsed) == {("couch", "leather", "material")}


def test_appears_to_be_carries_the_adjective_to_the_subject(parser: CaptionParser) -> None:
    parsed = parser.parse("The sky appears to be cloudy.")
    assert attributes(parsed) == {("sky", "cloudy", "state")}


def test_attribute_kinds(parser: CaptionParser) -> None:
    parsed = parser.parse("A large wooden table with three red cups stands in a busy room.")
    assert attributes(parsed) == {
        ("table", "large", "size"),
        ("table", "wooden", "material"),
        ("cup", "three", "count"),
        ("cup", "red", "color"),
        ("room", "busy", "state"),
    }


def test_a_passive_participle_without_participants_describes_its_subject(
    parser: CaptionParser,
) -> None:
    parsed = parser.parse(
        "The door is closed. The car is parked next to a fence. A tree can be seen. "
        "The field is surrounded by a fence. The shop is not closed."
    )
    assert attributes(parsed) == {("door", "closed", "state")}


def test_a_pattern_has_one_kind_however_it_is_tagged(parser: CaptionParser) -> None:
    parsed = parser.parse(
        "A striped cat sleeps next to a dotted ball. The towel is checkered and the rug is striped."
    )
    assert attributes(parsed) == {
        ("cat", "striped", "other"),
        ("ball", "dotted", "other"),
        ("towel", "checkered", "other"),
        ("rug", "striped", "other"),
    }


# Relations


def test_verb_object_and_lemmatised_predicates(parser: CaptionParser) -> None:
    parsed = parser.parse("A man is riding a horse. A woman rides a bike.")
    assert relations(parsed) == {("man", "ride", "horse"), ("woman", "ride", "bike")}


def test_noun_preposition_and_copula_relations(parser: CaptionParser) -> None:
    parsed = parser.parse("A bowl of fruit is on the table.")
    assert relations(parsed) == {("bowl", "of", "fruit"), ("bowl", "on", "table")}


def test_multiword_prepositions_are_one_predicate(parser: CaptionParser) -> None:
    parsed = parser.parse(
        "A dog is lying next to a cat. A vase stands on top of a table. "
        "A car is parked in front of a house."
    )
    assert relations(parsed) == {
        ("dog", "lie next to", "cat"),
        ("vase", "stand on top of", "table"),
        ("car", "park in front of", "house"),
    }


def test_passives_are_turned_active(parser: CaptionParser) -> None:
    parsed = parser.parse("The field is surrounded by a fence.")
    assert relations(parsed) == {("fence", "surround", "field")}


def test_participial_and_relative_clauses(parser: CaptionParser) -> None:
    parsed = parser.parse(
        "A woman wearing a red dress is holding an umbrella. "
        "A man who is wearing a hat is reading a book."
    )
    assert relations(parsed) == {
        ("woman", "wear", "dress"),
        ("woman", "hold", "umbrella"),
        ("man", "wear", "hat"),
        ("man", "read", "book"),
    }


def test_conjoined_subjects_are_distributed(parser: CaptionParser) -> None:
    parsed = parser.parse("A man and a woman are sitting on a bench.")
    assert relations(parsed) == {("man", "sit on", "bench"), ("woman", "sit on", "bench")}


def test_pronouns_refer_back_to_a_compatible_object(parser: CaptionParser) -> None:
    parsed = parser.parse("A boy is standing on the beach. He is wearing a helmet.")
    assert relations(parsed) == {("boy", "stand on", "beach"), ("boy", "wear", "helmet")}


def test_it_prefers_the_previous_subject_over_a_nearer_noun(parser: CaptionParser) -> None:
    parsed = parser.parse("The car is parked next to a fire hydrant. It is black.")
    assert attributes(parsed) == {("car", "black", "color")}


def test_negated_relations_and_their_objects_are_dropped(parser: CaptionParser) -> None:
    parsed = parser.parse("The man is not holding a phone, and there is no dog.")
    assert objects(parsed) == [("man", 1)]
    assert parsed.relations == []


@pytest.mark.parametrize(
    ("text", "present"),
    [
        ("There are no people or animals in the image.", []),
        ("There are no cars, buses, or trucks on the road.", [("road", 1)]),
        ("Neither a car nor a bicycle is visible.", []),
        ("The street is empty, without any people or umbrellas.", [("street", 1)]),
        ("A man without a hat is walking a dog.", [("man", 1), ("dog", 1)]),
        ("A dog and no cat.", [("dog", 1)]),
        ("There are no cats but two dogs on the sofa.", [("dog", 2), ("sofa", 1)]),
    ],
)
def test_a_denial_reaches_every_member_of_its_list_but_not_past_a_but(
    parser: CaptionParser, text: str, present: list[tuple[str, int]]
) -> None:
    assert objects(parser.parse(text)) == present


@pytest.mark.parametrize(
    ("text", "present"),
    [
        ('The man is wearing a T-shirt that says "I love dogs".', [("man", 1), ("t-shirt", 1)]),
        ('The book cover reads "The Cat in the Hat".', [("book cover", 1)]),
        (
            "A sign reads \u201cFresh Fish and Chips\u201d above a window.",
            [("sign", 1), ("window", 1)],
        ),
    ],
)
def test_words_written_in_the_picture_name_no_objects(
    parser: CaptionParser, text: str, present: list[tuple[str, int]]
) -> None:
    parsed = parser.parse(text)
    assert objects(parsed) == present
    assert all(parsed.objects[r.object].name != "hat" for r in parsed.relations)


def test_a_quotation_mark_without_a_near_partner_hides_nothing() -> None:
    nlp = spacy.blank("en")
    doc = nlp('He said " and then ' + "a dog " * 15 + 'sat on a "mat" here.')
    assert [doc[i].text for i in sorted(quoted_token_indices(doc))] == ["mat"]


def test_presenting_verbs_pass_their_prepositions_to_what_they_show(
    parser: CaptionParser,
) -> None:
    parsed = parser.parse("A soccer goal can be seen on the left side of the field.")
    assert relations(parsed) == {("soccer goal", "on the left side of", "field")}


# What LLaVA writes around the content


def test_numbered_lists_and_markdown_are_sentences(parser: CaptionParser) -> None:
    text = "**Objects**:\n1. A red car\n2. A man crossing the road\n- Traffic lights"
    parsed = parser.parse(text)
    assert objects(parsed) == [("car", 1), ("man", 1), ("road", 1), ("traffic light", 2)]
    assert relations(parsed) == {("man", "cross", "road")}


def test_background_and_can_be_seen_frames(parser: CaptionParser) -> None:
    parsed = parser.parse(
        "In the background, there are several trees. A large building can be seen."
    )
    assert objects(parsed) == [("tree", 3), ("building", 1)]
    assert attributes(parsed) == {("tree", "several", "count"), ("building", "large", "size")}


# Bad input


@pytest.mark.parametrize(
    "text",
    ["", "   \n\t ", None, 42, "Ceci n'est pas une pipe. 猫がいます。", "🙂🙂🙂", "<br/><p></p>"],
)
def test_bad_input_gives_empty_or_partial_priors(parser: CaptionParser, text: object) -> None:
    parsed = parser.parse(text)  # type: ignore[arg-type]
    assert isinstance(parsed, ParsedCaption)
    assert all(0 <= r.subject < len(parsed.objects) for r in parsed.relations)


def test_html_and_emoji_around_a_caption_still_parse(parser: CaptionParser) -> None:
    parsed = parser.parse("<p>A <b>dog</b> 🐶 sits on a sofa.</p>")
    assert relations(parsed) == {("dog", "sit on", "sofa")}


def test_an_overlong_caption_is_truncated_with_a_warning(
    parser: CaptionParser, caplog: pytest.LogCaptureFixture
) -> None:
    text = "A red car is parked on the street. " * 3000  # about 105,000 characters
    with caplog.at_level(logging.WARNING):
        parsed = parser.parse(text)
    assert "truncated to 10000" in caplog.text
    assert ("car", "park on", "street") in relations(parsed)


def test_parse_many_keeps_order_and_survives_bad_items(parser: CaptionParser) -> None:
    texts = ["A cat.", "", "A dog sits on a mat.", None, "- "]
    parsed = parser.parse_many(texts)  # type: ignore[arg-type]
    assert [objects(p) for p in parsed] == [
        [("cat", 1)],
        [],
        [("dog", 1), ("mat", 1)],
        [],
        [],
    ]


def test_parse_many_agrees_with_parse(parser: CaptionParser) -> None:
    texts = [f"A man is holding {n} balloons next to a car." for n in ("two", "three", "four")]
    assert parser.parse_many(texts) == [parser.parse(text) for text in texts]


# The JSON contract


def test_to_dict_matches_the_json_contract_and_round_trips() -> None:
    parsed = ParsedCaption(
        [ObjectPrior("man", "tall man", 1), ObjectPrior("horse", "horse", 2)],
        [AttributePrior(0, "tall", "size")],
        [RelationPrior(0, "ride", 1)],
    )
    data = parsed.to_dict()
    assert data == {
        "objects": [
            {"name": "man", "span": "tall man", "count": 1},
            {"name": "horse", "span": "horse", "count": 2},
        ],
        "attributes": [{"object": 0, "value": "tall", "kind": "size"}],
        "relations": [{"subject": 0, "predicate": "ride", "object": 1}],
    }
    assert ParsedCaption.from_dict(data) == parsed


def test_two_processes_give_the_same_priors_in_the_same_order(parser: CaptionParser) -> None:
    texts = ["A man is riding a horse.", "", "A dog sits on a mat. It is brown."] * 5
    in_parallel = CaptionParser(batch_size=4, n_process=2)
    try:
        assert in_parallel.parse_many(texts) == parser.parse_many(texts)
        assert in_parallel.parse_many(texts[:2]) == parser.parse_many(texts[:2])
    finally:
        in_parallel.close()
    assert in_parallel._pool is None


def test_threads_sharing_a_parser_get_its_priors_and_leave_blas_as_it_was(
    parser: CaptionParser,
) -> None:
    texts = ["A man is riding a horse.", "A dog sits on a mat. It is brown."] * 40
    expected = [parser.parse_many(texts[:1]) + parser.parse_many(texts[1:2])] * 4
    blas_threads = [info["num_threads"] for info in threadpool_info()]
    small_batches = CaptionParser(batch_size=2)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(small_batches.parse_many, [texts] * 4))
    assert [result[:2] for result in results] == expected
    assert all(result == results[0] for result in results)
    assert [info["num_threads"] for info in threadpool_info()] == blas_threads
