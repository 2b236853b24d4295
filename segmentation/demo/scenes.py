"""Procedural scenes for the demo set: shapes with colours, textures, sizes, occlusion and layout.

A scene is sampled from a seed (`sample_scene`), then rendered to an RGB image and a label map
(`render_scene`). The category of an object is its shape; colour, texture and size vary per
object, so attribute words in a description carry information the label map does not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageDraw

BACKGROUND = "background"
SEEN_SHAPES = ("circle", "square", "triangle", "star", "cross", "ring")
UNSEEN_SHAPES = ("hexagon", "crescent")
SHAPES = SEEN_SHAPES + UNSEEN_SHAPES
CLASSES = (BACKGROUND, *SHAPES)

COLOURS = {
    "red": (215, 40, 40),
    "green": (40, 165, 60),
    "blue": (45, 80, 215),
    "yellow": (235, 205, 35),
    "purple": (140, 55, 175),
    "orange": (240, 130, 30),
    "black": (25, 25, 25),
}
TEXTURES = ("plain", "striped", "dotted", "checkered")
SIZES = {"small": 0.09, "medium": 0.14, "large": 0.21}
BACKGROUNDS = {"grey": (175, 175, 170), "beige": (225, 210, 180), "light blue": (185, 210, 230)}
NOTICEABLE_PIXELS = 30
"""A shape with fewer visible pixels is too small to judge a recognition of it by."""


@dataclass(frozen=True)
class SceneObject:
    """One shape: category, attributes, centre (x, y) and radius in pixels, drawing order."""

    shape: str
    colour: str
    texture: str
    size: str
    x: float
    y: float
    radius: float
    angle: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Scene:
    """Objects in drawing order (later ones occlude earlier ones) on a coloured background."""

    background: str
    objects: tuple[SceneObject, ...]


def sample_object(
    rng: np.random.Generator,
    shapes: tuple[str, ...],
    image_size: int,
    close_up_radius: tuple[float, float] | None = None,
) -> SceneObject:
    """One object with random attributes, wholly inside the image; with `close_up_radius` (a
    range of radii as fractions of the image side) a large one of such a radius."""
    if close_up_radius is None:
        size = str(rng.choice(list(SIZES)))
        radius = SIZES[size] * image_size * float(rng.uniform(0.9, 1.1))
    else:
        size = "large"
        radius = float(rng.uniform(*close_up_radius)) * image_size
    margin = radius + 1
    return SceneObject(
        shape=str(rng.choice(shapes)),
        colour=str(rng.choice(list(COLOURS))),
        texture=str(rng.choice(TEXTURES)),
        size=size,
        x=float(rng.uniform(margin, image_size - margin)),
        y=float(rng.uniform(margin, image_size - margin)),
        radius=radius,
        angle=float(rng.uniform(0, 2 * np.pi)),
    )


def sample_scene(rng: np.random.Generator, shapes: tuple[str, ...], image_size: int) -> Scene:
    """Draw 2-4 objects with random attributes and positions inside the image."""
    count = int(rng.integers(2, 5))
    objects = [sample_object(rng, shapes, image_size) for _ in range(count)]
    return Scene(background=str(rng.choice(list(BACKGROUNDS))), objects=tuple(objects))


def _polygon(obj: SceneObject, corners: int, inner: float | None = None) -> list[tuple[float, ...]]:
    """Vertices of a regular polygon (or a star when `inner` gives the inner radius ratio)."""
    steps = corners * 2 if inner else corners
    points = []
    for step in range(steps):
        radius = obj.radius * (inner if inner and step % 2 else 1.0)
        theta = obj.angle + 2 * np.pi * step / steps
        points.append((obj.x + radius * np.cos(theta), obj.y + radius * np.sin(theta)))
    return points


def _box(x: float, y: float, radius: float) -> tuple[float, float, float, float]:
    return (x - radius, y - radius, x + radius, y + radius)


def shape_mask(obj: SceneObject, image_size: int) -> np.ndarray:
    """Boolean mask of the pixels one object covers (before occlusion)."""
    canvas = Image.new("1", (image_size, image_size), 0)
    draw = ImageDraw.Draw(canvas)
    r = obj.radius
    if obj.shape in ("circle", "ring", "crescent"):
        draw.ellipse(_box(obj.x, obj.y, r), fill=1)
        if obj.shape == "ring":
            draw.ellipse(_box(obj.x, obj.y, r * 0.55), fill=0)
        if obj.shape == "crescent":
            dx, dy = 0.45 * r * np.cos(obj.angle), 0.45 * r * np.sin(obj.angle)
            draw.ellipse(_box(obj.x + dx, obj.y + dy, r * 0.85), fill=0)
    elif obj.shape == "cross":
        arm = r * 0.33
        c, s = np.cos(obj.angle), np.sin(obj.angle)
        for ax, ay in ((c, s), (-s, c)):
            draw.polygon(
                [
                    (obj.x + sx * r * ax - sy * arm * ay, obj.y + sx * r * ay + sy * arm * ax)
                    for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))
                ],
                fill=1,
            )
    else:
        corners = {"square": 4, "triangle": 3, "hexagon": 6, "star": 5}[obj.shape]
        draw.polygon(_polygon(obj, corners, 0.45 if obj.shape == "star" else None), fill=1)
    return np.asarray(canvas, dtype=bool)


def texture_pattern(texture: str, image_size: int, angle: float) -> np.ndarray:
    """Boolean pattern; True pixels take the object's colour, False ones a darker shade."""
    y, x = np.mgrid[0:image_size, 0:image_size].astype(np.float32)
    if texture == "striped":
        return ((x * np.cos(angle) + y * np.sin(angle)) // 4) % 2 == 0
    if texture == "dotted":
        return ((x % 6 - 3) ** 2 + (y % 6 - 3) ** 2) > 3.5
    if texture == "checkered":
        return ((x // 5) + (y // 5)) % 2 == 0
    return np.ones((image_size, image_size), dtype=bool)


def render_scene(
    scene: Scene, image_size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Paint the scene: RGB uint8 image, uint8 label map (class ids), visible pixels per object."""
    base = np.array(BACKGROUNDS[scene.background], dtype=np.float32)
    image = base + rng.normal(0, 8, size=(image_size, image_size, 3)).astype(np.float32)
    labels = np.zeros((image_size, image_size), dtype=np.uint8)
    owner = np.full((image_size, image_size), -1, dtype=np.int64)
    for index, obj in enumerate(scene.objects):
        mask = shape_mask(obj, image_size)
        colour = np.array(COLOURS[obj.colour], dtype=np.float32)
        pattern = texture_pattern(obj.texture, image_size, obj.angle)[..., None]
        painted = np.where(pattern, colour, colour * 0.55 + 20)
        image[mask] = painted[mask]
        labels[mask] = CLASSES.index(obj.shape)
        owner[mask] = index
    visible = [int((owner == index).sum()) for index in range(len(scene.objects))]
    return np.clip(image, 0, 255).astype(np.uint8), labels, visible
