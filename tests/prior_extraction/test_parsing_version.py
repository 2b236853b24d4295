"""PARSER_VERSION tags every prior set the store holds, so priors from different rules never mix
under one version. The parser's outputs on the labelled captions are fingerprinted here with the
version that produced them: changing what the rules output without bumping the version fails."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from prior_extraction.parsing import PARSER_VERSION, CaptionParser
from prior_extraction.scoring import load_labelled

DATA = Path(__file__).parent / "data"
FINGERPRINTED_SETS = (
    "labelled_captions.jsonl",
    "labelled_paragraphs.jsonl",
    "labelled_realstyle.jsonl",
)


@dataclass(frozen=True)
class Fingerprint:
    """A parser version with sha256 digests of the captions it parsed and of its priors."""

    version: str
    captions_sha256: str
    outputs_sha256: str


# Update all three together, and only with a new PARSER_VERSION when the outputs changed.
RECORDED = Fingerprint(
    version="3.4.0",
    captions_sha256="77326d13ddfe6ef6baa9a6a50037ed00b393f7619f4b1d7c10e840238253ed43",
    outputs_sha256="fdd9630aeac308042e3b1079745516a7329d9f3c63304c4d14b11304ad7a2496",
)


def _sha256(value: object) -> str:
    encoded = json.dumps(value, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(encoded).hexdigest()


def current_fingerprint(parser: CaptionParser) -> Fingerprint:
    """The fingerprint of this parser on every labelled caption, in order."""
    captions = [item.caption for name in FINGERPRINTED_SETS for item in load_labelled(DATA / name)]
    outputs = [parsed.to_dict() for parsed in parser.parse_many(captions)]
    return Fingerprint(PARSER_VERSION, _sha256(captions), _sha256(outputs))


@pytest.fixture(scope="module")
def fingerprint() -> Fingerprint:
    return current_fingerprint(CaptionParser())


def _record_advice(fingerprint: Fingerprint) -> str:
    return f"record RECORDED = {fingerprint!r} in {__file__}"


def test_the_fingerprint_is_recorded_for_the_current_version(fingerprint: Fingerprint) -> None:
    assert RECORDED.version == PARSER_VERSION, (
        f"PARSER_VERSION is {PARSER_VERSION} but the outputs recorded are those of "
        f"{RECORDED.version}: {_record_advice(fingerprint)}"
    )


def test_the_fingerprinted_captions_are_the_recorded_ones(fingerprint: Fingerprint) -> None:
    assert fingerprint.captions_sha256 == RECORDED.captions_sha256, (
        "the labelled captions changed, so the fingerprint must be taken again (no new "
        f"version needed if the rules did not change): {_record_advice(fingerprint)}"
    )


def test_the_rules_give_the_outputs_recorded_for_this_version(fingerprint: Fingerprint) -> None:
    if fingerprint.captions_sha256 != RECORDED.captions_sha256:
        pytest.fail("the labelled captions changed: take the fingerprint again (see above)")
    assert fingerprint.outputs_sha256 == RECORDED.outputs_sha256, (
        f"the parser's outputs changed but PARSER_VERSION is still {PARSER_VERSION}: bump "
        f"PARSER_VERSION in prior_extraction/parsing.py, then {_record_advice(fingerprint)}"
    )
