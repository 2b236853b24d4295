"""Pictures of a segmentation: the photo tinted by class, with a legend of colour, name and share.

The overlay keeps the photo's orientation and size (a thumbnail under MIN_OVERLAY_SIDE pixels is
enlarged by a whole factor so its legend stays readable); the legend sits in its top-left corner.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

if TYPE_CHECKING:
    from segmentation.inference import ClassArea

OVERLAY_OPACITY = 0.55
"""How strongly class colours cover the photo."""

MIN_OVERLAY_SIDE = 256
"""Overlays of smaller pictures are enlarged (nearest neighbour, whole factor) to at least this."""

MAX_LEGEND_ROWS = 12
"""Classes listed by share, largest first; the rest are summed up in one last row."""


def class_palette(num_classes: int) -> np.ndarray:
    """Distinct RGB colours (uint8, one row per class): tab20 up to 20 classes, hues beyond."""
    from matplotlib import colormaps

    if num_classes <= 20:
        colours = colormaps["tab20"](np.arange(num_classes))
    else:
        colours = colormaps["hsv"](np.linspace(0.0, 1.0, num_classes, endpoint=False))
    return (colours[:, :3] * 255).round().astype(np.uint8)


def overlay_image(
    rgb: np.ndarray, label_map: np.ndarray, classes: Sequence[ClassArea]
) -> Image.Image:
    """The photo blended with its class colours, with a legend, at its own size (or enlarged).

    `classes` lists every label id of `label_map` with its name and share of the picture.
    """
    palette = class_palette(len(classes))
    tint = Image.fromarray(palette[label_map])
    overlay = Image.blend(Image.fromarray(rgb), tint, OVERLAY_OPACITY)
    factor = -(-MIN_OVERLAY_SIDE // min(overlay.size))
    if factor > 1:
        size = (overlay.width * factor, overlay.height * factor)
        overlay = overlay.resize(size, Image.Resampling.NEAREST)
    present = sorted((c for c in classes if c.area > 0), key=lambda c: -c.area)
    draw_legend(overlay, present, palette)
    return overlay


def label_map_image(label_map: np.ndarray) -> Image.Image:
    """The label ids as a grey PNG: 8-bit when they fit, 16-bit otherwise."""
    if label_map.size and int(label_map.max()) > 255:
        return Image.fromarray(label_map.astype(np.uint16))
    return Image.fromarray(label_map.astype(np.uint8))


def draw_legend(image: Image.Image, entries: Sequence[ClassArea], palette: np.ndarray) -> None:
    """Draw a boxed legend (swatch, name, share) in the image's top-left corner."""
    rows = _legend_rows(entries)
    font_size = max(10, min(image.size) // 30)
    font = _font(font_size)
    draw = ImageDraw.Draw(image)
    pad, swatch = font_size // 2, font_size
    text_width = max((draw.textlength(text, font=font) for _, text in rows), default=0)
    line = round(font_size * 1.4)
    box = (0, 0, round(3 * pad + swatch + text_width), 2 * pad + line * len(rows))
    draw.rectangle(box, fill=(255, 255, 255))
    for row, (class_id, text) in enumerate(rows):
        top = pad + row * line
        if class_id is not None:
            colour = tuple(int(v) for v in palette[class_id])
            draw.rectangle((pad, top, pad + swatch, top + swatch), fill=colour, outline=(0, 0, 0))
        draw.text((2 * pad + swatch, top), text, fill=(0, 0, 0), font=font)


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
