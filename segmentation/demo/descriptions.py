"""LLM-style descriptions of demo scenes: varied wording, and the mistakes real captioners make.

These are synthetic: written by rules from the scene, not by a language model. Like an LLM's, a
description may leave out an object (always one hidden under others, sometimes a visible one),
give it the wrong size, or call it by a wrong, usually similar, shape's name, so the priors a
parser extracts from it are useful but imperfect.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from segmentation.demo.scenes import SIZES, Scene, SceneObject, shape_mask

NUMBER_WORDS = ("no", "one", "two", "three", "four", "five")
TEXTURE_WORDS = {
    "striped": ("striped",),
    "dotted": ("dotted", "polka-dot"),
    "checkered": ("checkered",),
}
OPENINGS = (
    "The image shows {objects} on a {background} background.",
    "This simple graphic contains {objects}, set against a {background} background.",
    "On a {background} background, there are {count} shapes: {objects}.",
    "In this picture we can see {objects} on a plain {background} background.",
)
PLACEMENT_SENTENCES = (
    "The {a} is {relation} the {b}.",
    "The {a} sits {relation} the {b}.",
    "The {a} appears {relation} the {b}.",
)
OCCLUSION_SENTENCES = (
    "The {a} partly covers the {b}.",
    "The {a} overlaps the {b}.",
    "The {a} is in front of the {b}.",
)
MIN_VISIBLE_FRACTION = 0.3
MISS_PROBABILITY = 0.12
MISSIZE_PROBABILITY = 0.12
MISNAME_PROBABILITY = 0.08
NEAR_SHAPES = {
    "circle": ("ring", "hexagon"),
    "square": ("hexagon", "cross"),
    "triangle": ("star",),
    "star": ("cross", "triangle"),
    "cross": ("star", "square"),
    "ring": ("circle", "crescent"),
    "hexagon": ("circle", "square"),
    "crescent": ("ring", "circle"),
}
"""The shape a captioner mistakes each shape for, now and then."""


@dataclass(frozen=True)
class Description:
    """The text, and which objects it names with which size word (the truth about its errors)."""

    text: str
    sizes: dict[int, str]
    names: dict[int, str]


def _noun_phrase(obj: SceneObject, size: str, name: str, rng: np.random.Generator) -> str:
    """'a large striped red star', with the attribute words in a varied order or form."""
    words = [size, obj.colour]
    texture = TEXTURE_WORDS.get(obj.texture)
    if texture and rng.random() < 0.5:
        words.insert(int(rng.integers(0, 3)), str(rng.choice(texture)))
        return f"{_article(words[0])} {' '.join(words)} {name}"
    phrase = f"{_article(words[0])} {' '.join(words)} {name}"
    if texture:
        phrase += {
            "striped": " with stripes",
            "dotted": " with dots",
            "checkered": " with a checkered pattern",
        }[obj.texture]
    return phrase


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _join(phrases: list[str]) -> str:
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def _placement(a: SceneObject, b: SceneObject) -> str:
    dx, dy = a.x - b.x, a.y - b.y
    if abs(dx) >= abs(dy):
        return "to the left of" if dx < 0 else "to the right of"
    return "above" if dy < 0 else "below"


def _relation_sentence(a: SceneObject, b: SceneObject, image_size: int, names, rng) -> str:
    """How `a` (drawn later) relates to `b`: it covers b where they overlap, else where it is."""
    if (shape_mask(a, image_size) & shape_mask(b, image_size)).any():
        return str(rng.choice(OCCLUSION_SENTENCES)).format(a=names[0], b=names[1])
    template = str(rng.choice(PLACEMENT_SENTENCES))
    return template.format(a=names[0], relation=_placement(a, b), b=names[1])


def _short_names(
    a: SceneObject, b: SceneObject, sizes: tuple[str, str], shapes: tuple[str, str]
) -> tuple[str, str]:
    """'red star'; with the size word too when both objects would otherwise read the same."""
    names = (f"{a.colour} {shapes[0]}", f"{b.colour} {shapes[1]}")
    if names[0] == names[1]:
        names = (f"{sizes[0]} {names[0]}", f"{sizes[1]} {names[1]}")
    return names


def _mentioned(scene: Scene, visible: list[int], image_size: int, rng) -> list[int]:
    """Indices of the objects a captioner would name: hidden ones never, others usually."""
    full = [int(shape_mask(obj, image_size).sum()) for obj in scene.objects]
    noticeable = [
        i
        for i, (v, f) in enumerate(zip(visible, full, strict=True))
        if v >= MIN_VISIBLE_FRACTION * f
    ]
    kept = [i for i in noticeable if rng.random() >= MISS_PROBABILITY]
    return kept or noticeable[:1] or [len(scene.objects) - 1]


def _size_word(obj: SceneObject, rng: np.random.Generator) -> str:
    if rng.random() < MISSIZE_PROBABILITY:
        return str(rng.choice([size for size in SIZES if size != obj.size]))
    return obj.size


def _shape_word(obj: SceneObject, rng: np.random.Generator) -> str:
    if rng.random() < MISNAME_PROBABILITY:
        return str(rng.choice(NEAR_SHAPES[obj.shape]))
    return obj.shape


def describe_scene(
    scene: Scene, visible: list[int], image_size: int, rng: np.random.Generator
) -> Description:
    """A one-paragraph description; objects may be missing, mis-sized or misnamed on purpose."""
    mentioned = _mentioned(scene, visible, image_size, rng)
    sizes = {i: _size_word(scene.objects[i], rng) for i in mentioned}
    shapes = {i: _shape_word(scene.objects[i], rng) for i in mentioned}
    phrases = [_noun_phrase(scene.objects[i], sizes[i], shapes[i], rng) for i in mentioned]
    sentences = [
        str(rng.choice(OPENINGS)).format(
            objects=_join(phrases), background=scene.background, count=NUMBER_WORDS[len(phrases)]
        )
    ]
    for first, second in itertools.pairwise(mentioned):
        a, b = scene.objects[second], scene.objects[first]
        names = _short_names(a, b, (sizes[second], sizes[first]), (shapes[second], shapes[first]))
        sentences.append(_relation_sentence(a, b, image_size, names, rng))
    return Description(" ".join(sentences), sizes, shapes)
