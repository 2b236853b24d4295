"""Pictures of a segmentation: the photo tinted by class, with a legend of colour, name and share.

Objects are tinted; the background class keeps the photo's colours. The picture keeps its
orientation and size (a thumbnail under MIN_OVERLAY_SIDE pixels is enlarged by a whole factor so it
stays readable); the legend is a white panel to its right, so it hides nothing of the photo.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from segmentation.text.vocabulary import is_background

if TYPE_CHECKING:
    from segmentation.inference import ClassArea

OVERLAY_OPACITY = 0.55
"""How strongly class colours cover the photo."""

MIN_OVERLAY_SIDE = 256
"""Overlays of smaller pictures are enlarged (nearest neighbour, whole factor) to at least this."""

BACKGROUND_SWATCH = (255, 255, 255)
"""The background class's legend swatch: empty, as its pixels are left untinted."""

MAX_LEGEND_ROWS = 12
"""Classes listed by share, largest first; the rest are summed up in one last row."""


def class_palette(num_classes: int) -> np.ndarray:
    """Distinct RGB colours (uint8, one row per class): tab20 up to 20 classes, hues beyond.

    tab20's strong shades come first and its light twins after, so few classes differ in hue.
    """
    from matplotlib import colormaps

    if num_classes <= 20:
        strong_then_light = np.r_[0:20:2, 1:20:2][:num_classes]
        colours = colormaps["tab20"](strong_then_light)
    else:
        colours = colormaps["hsv"](np.linspace(0.0, 1.0, num_classes, endpoint=False))
    return (colours[:, :3] * 255).round().astype(np.uint8)


def overlay_image(
    rgb: np.ndarray, label_map: np.ndarray, classes: Sequence[ClassArea]
) -> Image.Image:
    """The photo blended with its class colours (top-left, its own size or enlarged) + legend.

    `classes` lists every label id of `label_map` with its name and share of the picture; pixels
    of the background class keep the photo's own colours (an empty swatch in the legend).
    """
    palette = class_palette(len(classes))
    tinted = Image.blend(Image.fromarray(rgb), Image.fromarray(palette[label_map]), OVERLAY_OPACITY)
    background = [c.id for c in classes if is_background(c.name)]
    untinted = np.isin(label_map, background)[..., None]
    picture = Image.fromarray(np.where(untinted, rgb, np.asarray(tinted)))
    palette[background] = BACKGROUND_SWATCH
    factor = -(-MIN_OVERLAY_SIDE // min(picture.size))
    if factor > 1:
        size = (picture.width * factor, picture.height * factor)
        picture = picture.resize(size, Image.Resampling.NEAREST)
    present = sorted((c for c in classes if c.area > 0), key=lambda c: -c.area)
    return with_legend(picture, present, palette)


def label_map_image(label_map: np.ndarray) -> Image.Image:
    """The label ids as a grey PNG: 8-bit when they fit, 16-bit otherwise."""
    if label_map.size and int(label_map.max()) > 255:
        return Image.fromarray(label_map.astype(np.uint16))
    return Image.fromarray(label_map.astype(np.uint8))


def legend_font_size(picture_height: int) -> int:
    """Legend text height in pixels: a thirtieth of the picture, at least 12."""
    return max(12, picture_height // 30)


def with_legend(
    picture: Image.Image, entries: Sequence[ClassArea], palette: np.ndarray
) -> Image.Image:
    """The picture with a white legend panel (swatch, name, share per row) on its right."""
    rows = _legend_rows(entries)
    font_size = legend_font_size(picture.height)
    font = _font(font_size)
    pad, swatch, line = font_size // 2, font_size, round(font_size * 1.4)
    text_width = max((font.getlength(text) for _, text in rows), default=0)
    panel = (round(3 * pad + swatch + text_width), 2 * pad + line * len(rows))
    size = (picture.width + panel[0], max(picture.height, panel[1]))
    canvas = Image.new("RGB", size, (255, 255, 255))
    canvas.paste(picture, (0, 0))
    draw = ImageDraw.Draw(canvas)
    left = picture.width + pad
    for row, (class_id, text) in enumerate(rows):
        top = pad + row * line
        if class_id is not None:
            colour = tuple(int(v) for v in palette[class_id])
            box = (left, top, left + swatch, top + swatch)
            draw.rectangle(box, fill=colour, outline=(0, 0, 0))
        draw.text((left + pad + swatch, top), text, fill=(0, 0, 0), font=font)
    return canvas


def _legend_rows(entries: Sequence[ClassArea]) -> list[tuple[int | None, str]]:
    """(class id or None, text) per row; classes past MAX_LEGEND_ROWS share one last row."""
    shown = list(entries[:MAX_LEGEND_ROWS])
    rows: list[tuple[int | None, str]] = [(e.id, f"{e.name}  {e.area:.1%}") for e in shown]
    rest = entries[MAX_LEGEND_ROWS:]
    if rest:
        rows.append((None, f"{len(rest)} more  {sum(e.area for e in rest):.1%}"))
    return rows


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont:
    """DejaVu Sans, the font matplotlib ships, at `size` pixels."""
    from matplotlib import font_manager

    return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)
