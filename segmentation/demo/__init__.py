"""The procedural demo set: seeded shape scenes, masks and synthetic LLM-style captions."""

from segmentation.demo.generator import DemoSpec, generate_image, images_showing_unseen, write_demo

__all__ = ["DemoSpec", "generate_image", "images_showing_unseen", "write_demo"]
