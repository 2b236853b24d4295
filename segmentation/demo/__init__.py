"""The procedural demo set: seeded shape scenes, masks and synthetic LLM-style captions."""

from segmentation.demo.descriptions import CAPTION_PROFILES, CaptionProfile
from segmentation.demo.generator import (
    DemoSpec,
    generate_image,
    images_showing_unseen,
    write_captions,
    write_demo,
)

__all__ = [
    "CAPTION_PROFILES",
    "CaptionProfile",
    "DemoSpec",
    "generate_image",
    "images_showing_unseen",
    "write_captions",
    "write_demo",
]
