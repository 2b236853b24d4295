"""Turn what an LLM writes (markdown, HTML, numbered or bulleted lists, runaway length) into plain
sentences the dependency parser handles well."""

from __future__ import annotations

import html
import logging
import re

logger = logging.getLogger(__name__)

MAX_CAPTION_CHARS = 10_000

_HTML_TAG = re.compile(r"<[^>\n]{0,200}>")
_MARKDOWN_LINK = re.compile(r"\[([^\]\n]*)\]\([^)\n]*\)")
_MARKDOWN_EMPHASIS = re.compile(r"[*_`]{1,3}|^\s{0,3}#{1,6}\s*", re.MULTILINE)
_LIST_MARKER = re.compile(r"^\s*(?:[-*+•‣◦]|\(?\d{1,3}[.)]|\(?[a-zA-Z][.)])\s+", re.MULTILINE)
# A section label opening a line: "**People:**", "**Background**:", "Lighting:" (bold, or one or
# two capitalised words): a heading, not something in the picture.
_SECTION_LABEL = re.compile(
    r"^[ \t]*(?:(?:\*\*|__)[^*_\n:]{1,40}(?::(?:\*\*|__)|(?:\*\*|__):)|[A-Z][a-z]+(?: [A-Za-z]+)?:)"
    r"[ \t]+",
    re.MULTILINE,
)
_SENTENCE_END = re.compile(r"[.!?:;]$")
_SPACES = re.compile(r"[ \t\r\f\v]+")


def truncate(text: str, max_chars: int = MAX_CAPTION_CHARS) -> str:
    """Cut text longer than max_chars at the last space before the limit, with a warning."""
    if len(text) <= max_chars:
        return text
    cut = text.rfind(" ", 0, max_chars)
    logger.warning("caption of %d characters truncated to %d", len(text), max_chars)
    return text[: cut if cut > 0 else max_chars]


def _as_sentence(line: str) -> str:
    line = _SPACES.sub(" ", line).strip()
    if line and not _SENTENCE_END.search(line):
        line += "."
    return line


def clean_caption(text: object, max_chars: int = MAX_CAPTION_CHARS) -> str:
    """Plain text for parsing: markup removed, each list item or line its own sentence.

    Anything that is not a string becomes the empty string, so a bad record parses to no priors.
    """
    if not isinstance(text, str):
        return ""
    text = truncate(text, max_chars)
    text = html.unescape(_HTML_TAG.sub(" ", text))
    text = _MARKDOWN_LINK.sub(r"\1", text)
    text = _LIST_MARKER.sub("", text)
    text = _SECTION_LABEL.sub("", text)
    text = _MARKDOWN_EMPHASIS.sub("", text)
    lines = (_as_sentence(line) for line in text.splitlines())
    return " ".join(line for line in lines if line)
