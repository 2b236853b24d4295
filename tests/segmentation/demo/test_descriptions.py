"""Caption profiles: the demo's, a real VLM's error rates and a failed captioner's, as measured."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest

from segmentation.demo import CAPTION_PROFILES, CaptionProfile, DemoSpec, generate_image
from segmentation.demo.descriptions import describe_scene, noticeable_objects
from segmentation.demo.scenes import SHAPES, render_scene, sample_scene

IMAGE_SIZE = 64
DEMO_CAPTIONS_DIGEST = "9ea17a123fef32d4"
"""sha256 of seed 0's first 40 validation captions, written by the generator before profiles."""
SHAPE_WORDS = re.compile(r"\b(" + "|".join(SHAPES) + r")\b")


def describe(count: int, profile: str, seed: int = 11):
    """`count` validation-like scenes with their noticeable objects and descriptions."""
    for index in range(count):
        rng = np.random.default_rng([seed, index])
        scene = sample_scene(rng, SHAPES, IMAGE_SIZE)
        _, _, visible = render_scene(scene, IMAGE_SIZE, rng)
        description = describe_scene(scene, visible, IMAGE_SIZE, rng, CAPTION_PROFILES[profile])
        yield scene, noticeable_objects(scene, visible, IMAGE_SIZE), description


def test_llava_like_captions_err_at_the_documented_rates_on_2000_scenes() -> None:
    profile = CAPTION_PROFILES["llava-like"]
    noticeable = named = wrong = hallucinating = 0
    scenes = list(describe(2000, "llava-like"))
    for scene, visible, description in scenes:
        noticeable += len(visible)
        named += len(description.names)
        wrong += sum(scene.objects[i].shape != name for i, name in description.names.items())
        hallucinating += bool(description.absent)
        assert set(description.names) <= set(visible)
        assert not {obj.shape for obj in scene.objects} & set(description.absent)
    assert abs(named / noticeable - profile.recall) <= 0.02
    assert abs(wrong / named - profile.wrong_name_rate) <= 0.02
    assert abs(hallucinating / len(scenes) - profile.hallucination_rate) <= 0.02


@pytest.mark.parametrize("profile", ["demo", "llava-like"])
def test_the_text_names_exactly_the_shapes_the_description_records(profile: str) -> None:
    for _, _, description in describe(300, profile):
        recorded = set(description.names.values()) | set(description.absent)
        assert set(SHAPE_WORDS.findall(description.text)) == recorded, description.text


def test_empty_captions_yield_no_object_priors() -> None:
    from prior_extraction.parsing import CaptionParser

    captions = [d.text for _, _, d in describe(50, "empty")]
    parsed = CaptionParser().parse_many(captions)
    assert [record.objects for record in parsed] == [[]] * 50


def test_the_demo_profile_writes_the_captions_it_always_wrote() -> None:
    """The demo set's captions, and so every figure measured on it, do not move with the new
    profiles: a digest of seed 0's first validation captions, recorded before they existed."""
    captions = "\n".join(generate_image(DemoSpec(seed=0), "val", i).caption for i in range(40))
    assert hashlib.sha256(captions.encode()).hexdigest()[:16] == DEMO_CAPTIONS_DIGEST


def test_profiles_refuse_rates_outside_0_1_and_specs_unknown_profiles() -> None:
    with pytest.raises(ValueError, match=r"rates must lie in \[0, 1\]"):
        CaptionProfile(1.2, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="unknown caption profile 'gpt'; known: demo, llava-like"):
        DemoSpec(captions="gpt")
