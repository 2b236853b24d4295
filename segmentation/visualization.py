"""Pictures of a segmentation: the photo tinted by class, with a legend of colour, name and share.

Objects are tinted and outlined in their class colour: the tint mixes with the object's own colour,
the outline shows the very colour of the legend's swatch. The background class keeps the photo's
colours. The picture keeps its orientation and size (a thumbnail under MIN_OVERLAY_SIDE pixels is
enlarged by a whole factor so it stays readable); the legend is a white panel to its right, so it
hides nothing of the photo.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
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
    """The photo blended with its class colours, each object outlined in its colour (top-left,
    its own size or enlarged) + legend.

    `classes` lists every label id of `label_map` with its name and share of the picture; pixels
    of the background class keep the photo's own colours (an empty swatch in the legend).
    """
    palette = class_palette(len(classes))
    background = [c.id for c in classes if is_background(c.name)]
    factor = -(-MIN_OVERLAY_SIDE // min(label_map.shape))
    rgb, label_map = _enlarged(rgb, factor), _enlarged(label_map, factor)
    picture = Image.fromarray(_tinted(rgb, label_map, palette, background))
    palette[background] = BACKGROUND_SWATCH
    present = sorted((c for c in classes if c.area > 0), key=lambda c: -c.area)
    return with_legend(picture, present, palette)


def _enlarged(pixels: np.ndarray, factor: int) -> np.ndarray:
    """Each pixel repeated `factor` times down and across (nearest-neighbour enlargement)."""
    if factor <= 1:
        return pixels
    return pixels.repeat(factor, axis=0).repeat(factor, axis=1)


def _tinted(
    rgb: np.ndarray, label_map: np.ndarray, palette: np.ndarray, background: Sequence[int]
) -> np.ndarray:
    """The photo blended with its class colours and each segment's rim in its exact class colour;
    pixels of the `background` ids are left as they are."""
    colours = palette[label_map]
    blend = Image.blend(Image.fromarray(rgb), Image.fromarray(colours), OVERLAY_OPACITY)
    rims = segment_rims(label_map, outline_width(label_map.shape))
    picture = np.where(rims[..., None], colours, np.asarray(blend))
    return np.where(np.isin(label_map, background)[..., None], rgb, picture)


def outline_width(shape: tuple[int, ...]) -> int:
    """Outline thickness in pixels: a 160th of the picture's shorter side, at least 3."""
    return max(3, min(shape[:2]) // 160)


def segment_rims(label_map: np.ndarray, width: int) -> np.ndarray:
    """Boolean mask of the pixels within `width` pixels (a square window) of another label: each
    segment's inner rim. The picture's own border is no rim."""
    lowest = _square_window(label_map, width, np.min)
    highest = _square_window(label_map, width, np.max)
    return (lowest != label_map) | (highest != label_map)


def _square_window(
    values: np.ndarray, radius: int, reduce: Callable[..., np.ndarray]
) -> np.ndarray:
    """`reduce` (np.min or np.max) over the square of `radius` pixels around each pixel, one axis
    after the other; the picture's border repeats outward."""
    for axis in (0, 1):
        padding = [(radius, radius) if dim == axis else (0, 0) for dim in range(values.ndim)]
        padded = np.pad(values, padding, mode="edge")
        values = reduce(sliding_window_view(padded, 2 * radius + 1, axis=axis), axis=-1)
    return values


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
