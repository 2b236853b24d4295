"""Caption clean-up before parsing: markup, lists, length."""

from __future__ import annotations

import logging

import pytest

from prior_extraction.caption_text import clean_caption, truncate


def test_list_items_and_lines_become_sentences() -> None:
    text = "Objects:\n1. A red car\n2) A dog\n- Trees\n* Grass\n• A bench"
    assert clean_caption(text) == "Objects: A red car. A dog. Trees. Grass. A bench."


def test_markdown_and_html_are_stripped() -> None:
    text = "## Scene\n**A cat** on a [mat](http://x.y) &amp; a <i>dog</i>."
    assert clean_caption(text) == "Scene. A cat on a mat & a dog ."


def test_non_text_becomes_empty() -> None:
    assert clean_caption(None) == ""
    assert clean_caption(3.5) == ""
    assert clean_caption(" \n\t") == ""


def test_truncate_cuts_at_a_space_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert truncate("aaa bbb ccc", max_chars=9) == "aaa bbb"
    assert "caption of 11 characters truncated to 9" in caplog.text
    assert truncate("short", max_chars=9) == "short"


def test_section_labels_opening_a_line_are_dropped() -> None:
    text = (
        "The image shows a cafe.\n- **People:** A barista works.\n**Background**: Shelves.\n"
        "Lighting: Warm lamps.\n**A metal fire escape** climbs the wall."
    )
    assert clean_caption(text) == (
        "The image shows a cafe. A barista works. Shelves. Warm lamps. A metal fire escape "
        "climbs the wall."
    )
