"""LLM-style descriptions of demo scenes: varied wording, and the mistakes real captioners make.

These are synthetic: written by rules from the scene, not by a language model. Like an LLM's, a
description may leave out an object (always one hidden under others, sometimes a visible one),
give it the wrong size, call it by a wrong, usually similar, shape's name, or name a shape that is
not in the picture, so the priors a parser extracts from it are useful but imperfect. How often
each happens is a `CaptionProfile`; `CAPTION_PROFILES` holds the demo's own, one with a real VLM's
error rates, and a failed captioner's.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from segmentation.demo.scenes import COLOURS, SIZES, Scene, SceneObject, shape_mask

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
NOTHING_NAMED = "I am not able to tell what is shown here."
"""What a failed captioner says: a sentence without a single noun, so no parser finds an object."""
MIN_VISIBLE_FRACTION = 0.3
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
class CaptionProfile:
    """How often a captioner errs. Rates are probabilities per noticeable object (`recall`), per
    named object (`wrong_name_rate`, `wrong_size_rate`) and per description
    (`hallucination_rate`: it names one shape that is not in the picture). `names_one` makes
    every description name at least one real object, as the demo's captioner always does."""

    recall: float
    wrong_name_rate: float
    wrong_size_rate: float
    hallucination_rate: float
    names_one: bool = False

    def __post_init__(self) -> None:
        rates = (self.recall, self.wrong_name_rate, self.wrong_size_rate, self.hallucination_rate)
        if not all(0.0 <= rate <= 1.0 for rate in rates):
            raise ValueError(f"caption profile rates must lie in [0, 1], got {rates}")


CAPTION_PROFILES = {
    # The demo set's own captioner: kind, it misses 12% and never names an absent shape.
    "demo": CaptionProfile(0.88, 0.08, 0.12, 0.0, names_one=True),
    # A LLaVA-1.5-class model. Recall: AMBER's generative "Cover" (share of annotated objects a
    # description names) is about one half for LLaVA-1.5, and detailed prompts reach about two
    # thirds on COCO: 0.6. Absent objects: CHAIR_S (descriptions naming at least one absent
    # object) is 10-20% for short captions and 40-50% for long detailed ones (Rohrbach et al.
    # 2018; AMBER); demo descriptions are short, so 0.2 per description, which makes CHAIR_I
    # (absent mentions over all mentions) about 10%, inside the published 5-15%. Wrong names:
    # mistaking a thing for a similar one, which AMBER and POPE count apart from absent objects;
    # no published per-mention rate fits shapes, so 0.10, above the demo's 0.08.
    "llava-like": CaptionProfile(0.6, 0.10, 0.12, 0.2),
    # A captioner that failed: every description names nothing (`NOTHING_NAMED`).
    "empty": CaptionProfile(0.0, 0.0, 0.0, 0.0),
}


@dataclass(frozen=True)
class Description:
    """The text, and which objects it names with which size word (the truth about its errors)."""

    text: str
    sizes: dict[int, str]
    names: dict[int, str]
    absent: tuple[str, ...] = ()
    """Shapes the text names that are not in the picture."""


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


def noticeable_objects(scene: Scene, visible: list[int], image_size: int) -> list[int]:
    """Indices of the objects a captioner could name: at least `MIN_VISIBLE_FRACTION` visible."""
    full = [int(shape_mask(obj, image_size).sum()) for obj in scene.objects]
    return [
        i
        for i, (v, f) in enumerate(zip(visible, full, strict=True))
        if v >= MIN_VISIBLE_FRACTION * f
    ]


def _mentioned(
    scene: Scene, visible: list[int], image_size: int, profile: CaptionProfile, rng
) -> list[int]:
    """Indices of the objects a captioner names: hidden ones never, others with `recall`."""
    noticeable = noticeable_objects(scene, visible, image_size)
    kept = [i for i in noticeable if rng.random() >= 1.0 - profile.recall]
    if kept or not profile.names_one:
        return kept
    return noticeable[:1] or [len(scene.objects) - 1]


def _size_word(obj: SceneObject, profile: CaptionProfile, rng: np.random.Generator) -> str:
    if rng.random() < profile.wrong_size_rate:
        return str(rng.choice([size for size in SIZES if size != obj.size]))
    return obj.size


def _shape_word(obj: SceneObject, profile: CaptionProfile, rng: np.random.Generator) -> str:
    if rng.random() < profile.wrong_name_rate:
        return str(rng.choice(NEAR_SHAPES[obj.shape]))
    return obj.shape


def _happens(rate: float, rng: np.random.Generator) -> bool:
    """A draw with probability `rate`; none at rate 0, so a profile without the error leaves
    the random stream, and so the demo's captions, as they were."""
    return rate > 0 and rng.random() < rate


def _absent_object(scene: Scene, rng: np.random.Generator) -> SceneObject | None:
    """A shape that is nowhere in the scene, with random attributes (None: every shape is)."""
    present = {obj.shape for obj in scene.objects}
    absent = [shape for shape in NEAR_SHAPES if shape not in present]
    if not absent:
        return None
    template = scene.objects[0]
    return SceneObject(
        shape=str(rng.choice(absent)),
        colour=str(rng.choice(list(COLOURS))),
        texture="plain",
        size=str(rng.choice(list(SIZES))),
        x=template.x,
        y=template.y,
        radius=template.radius,
        angle=template.angle,
    )


def describe_scene(
    scene: Scene,
    visible: list[int],
    image_size: int,
    rng: np.random.Generator,
    profile: CaptionProfile = CAPTION_PROFILES["demo"],
) -> Description:
    """A one-paragraph description; objects may be missing, mis-sized, misnamed or absent from
    the picture, as often as `profile` says."""
    mentioned = _mentioned(scene, visible, image_size, profile, rng)
    sizes = {i: _size_word(scene.objects[i], profile, rng) for i in mentioned}
    shapes = {i: _shape_word(scene.objects[i], profile, rng) for i in mentioned}
    phrases = [_noun_phrase(scene.objects[i], sizes[i], shapes[i], rng) for i in mentioned]
    absent = _absent_object(scene, rng) if _happens(profile.hallucination_rate, rng) else None
    if absent is not None:
        position = int(rng.integers(0, len(phrases) + 1))
        phrases.insert(position, _noun_phrase(absent, absent.size, absent.shape, rng))
    if not phrases:
        return Description(NOTHING_NAMED, {}, {})
    sentences = [
        str(rng.choice(OPENINGS)).format(
            objects=_join(phrases), background=scene.background, count=NUMBER_WORDS[len(phrases)]
        )
    ]
    for first, second in itertools.pairwise(mentioned):
        a, b = scene.objects[second], scene.objects[first]
        names = _short_names(a, b, (sizes[second], sizes[first]), (shapes[second], shapes[first]))
        sentences.append(_relation_sentence(a, b, image_size, names, rng))
    hallucinated = () if absent is None else (absent.shape,)
    return Description(" ".join(sentences), sizes, shapes, hallucinated)
