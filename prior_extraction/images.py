"""Image validation before an image reaches a captioner: decode, EXIF orientation, RGB conversion
(palette, alpha, CMYK, 16-bit, grayscale), first frame of animations and a pixel-count limit."""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

DEFAULT_MAX_PIXELS = 64 * 1024 * 1024
"""About 67 megapixels (an 8192x8192 picture): larger files are refused before they are decoded."""

_BACKGROUND = (255, 255, 255)
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})


class InvalidImageError(Exception):
    """A file that cannot become an RGB picture; `error_class` names the underlying cause."""

    def __init__(self, error_class: str, message: str) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.message = message


@dataclass(frozen=True)
class LoadedImage:
    """A validated picture: RGB, upright, with the facts the store records about its file."""

    image: Image.Image
    width: int
    height: int
    sha256: str


def load_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Read, check and decode `path` into an upright RGB picture.

    Raises InvalidImageError, carrying the original error's class name, for anything unreadable.
    """
    try:
        data = Path(path).read_bytes()
        if not data:
            raise InvalidImageError("EmptyFileError", "file is empty (0 bytes)")
        image = _decode(data, max_pixels)
    except InvalidImageError:
        raise
    except Image.DecompressionBombError as error:
        raise InvalidImageError("ImageTooLargeError", str(error)) from error
    except Exception as error:  # Pillow's plugins raise many types on malformed files
        raise InvalidImageError(type(error).__name__, str(error) or repr(error)) from error
    return LoadedImage(image, image.width, image.height, hashlib.sha256(data).hexdigest())


def _decode(data: bytes, max_pixels: int) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = Image.open(io.BytesIO(data))
        _check_pixel_count(image, max_pixels)
        image.seek(0)
        image.load()
        upright = ImageOps.exif_transpose(image)
    return to_rgb(upright)


def _check_pixel_count(image: Image.Image, max_pixels: int) -> None:
    width, height = image.size
    if width * height > max_pixels:
        raise InvalidImageError(
            "ImageTooLargeError",
            f"{width}x{height} = {width * height} pixels exceeds the limit of {max_pixels}",
        )


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparency is composited onto white."""
    if image.mode == "RGB":
        return image
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in _SIXTEEN_BIT_MODES:
        return _sixteen_bit_to_rgb(image)
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        return _flatten_alpha(image.convert("RGBA"))
    return image.convert("RGB")


def _sixteen_bit_to_rgb(image: Image.Image) -> Image.Image:
    """Scale 16-bit samples to 8 bits (Pillow's own conversion clips instead of scaling)."""
    samples = np.asarray(image, dtype=np.int64).clip(0, 65535)
    return Image.fromarray((samples // 257).astype(np.uint8)).convert("RGB")


def _flatten_alpha(image: Image.Image) -> Image.Image:
    background = Image.new("RGBA", image.size, (*_BACKGROUND, 255))
    return Image.alpha_composite(background, image).convert("RGB")
