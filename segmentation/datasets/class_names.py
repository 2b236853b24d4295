"""Class vocabularies: names and synonyms read from plain-text data files.

Format: one class per line, synonyms separated by commas, the first entry is the class name
("building, edifice"). Blank lines and lines starting with "#" are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

PACKAGED_CLASSES = "segmentation.datasets.classes"


class ClassNamesError(ValueError):
    """A class-name file is missing, empty or malformed."""


@dataclass(frozen=True)
class ClassNames:
    """Ordered class names (index = label id) with their synonyms (first synonym = the name)."""

    synonyms: tuple[tuple[str, ...], ...]

    @property
    def names(self) -> list[str]:
        return [words[0] for words in self.synonyms]

    def __len__(self) -> int:
        return len(self.synonyms)

    def metainfo(self) -> dict:
        """The `classes` and `synonyms` entries of an MMSeg dataset's metainfo."""
        return {"classes": tuple(self.names), "synonyms": [list(words) for words in self.synonyms]}

    def to_text(self) -> str:
        return "".join(", ".join(words) + "\n" for words in self.synonyms)

    @classmethod
    def from_text(cls, text: str, source: str) -> ClassNames:
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            words = tuple(word.strip() for word in line.split(","))
            if not all(words):
                raise ClassNamesError(f"{source}:{number}: empty class name in {line!r}")
            rows.append(words)
        if not rows:
            raise ClassNamesError(f"{source}: no class names")
        return cls(tuple(rows))

    @classmethod
    def from_file(cls, path: str | Path) -> ClassNames:
        path = Path(path)
        if not path.is_file():
            raise ClassNamesError(f"class-name file not found: {path}")
        return cls.from_text(path.read_text(encoding="utf-8"), str(path))

    @classmethod
    def packaged(cls, name: str) -> ClassNames:
        """A vocabulary shipped with the package, e.g. `ClassNames.packaged("ade20k_150")`."""
        resource = resources.files(PACKAGED_CLASSES).joinpath(f"{name}.txt")
        if not resource.is_file():
            raise ClassNamesError(f"no packaged class list named {name!r}")
        return cls.from_text(resource.read_text(encoding="utf-8"), f"{name}.txt")
