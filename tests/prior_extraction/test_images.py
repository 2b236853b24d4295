"""Image validation: every awkward-but-valid file becomes upright 8-bit RGB; every broken one
raises InvalidImageError with the cause's class name."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from prior_extraction.images import InvalidImageError, load_image, to_rgb

RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def _write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_plain_jpeg_keeps_size_and_hashes_the_file_bytes(tmp_path, pictures) -> None:
    data = pictures.jpeg_bytes(pictures.noise_image(0, (32, 24)))
    loaded = load_image(_write(tmp_path, "a.jpg", data))
    assert (loaded.width, loaded.height, loaded.image.mode) == (32, 24, "RGB")
    assert loaded.sha256 == hashlib.sha256(data).hexdigest()


def test_exif_orientation_is_applied(tmp_path) -> None:
    image = Image.new("RGB", (40, 20), RED)
    image.paste(BLUE, (20, 0, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: display rotated 90 degrees clockwise
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", exif=exif)
    loaded = load_image(_write(tmp_path, "turned.png", buffer.getvalue()))
    assert (loaded.width, loaded.height) == (20, 40)
    assert loaded.image.getpixel((10, 5)) == RED
    assert loaded.image.getpixel((10, 35)) == BLUE


def test_palette_with_transparency_is_composited_on_white(tmp_path, pictures) -> None:
    data = pictures.png_bytes(pictures.palette_with_transparency())
    loaded = load_image(_write(tmp_path, "p.png", data))
    assert loaded.image.mode == "RGB"
    assert loaded.image.getpixel((0, 0)) == WHITE
    assert loaded.image.getpixel((7, 3)) == RED


def test_alpha_channels_are_composited_on_white() -> None:
    rgba = Image.new("RGBA", (2, 1), (0, 0, 0, 0))
    rgba.putpixel((1, 0), (0, 0, 255, 255))
    assert np.asarray(to_rgb(rgba)).tolist() == [[list(WHITE), list(BLUE)]]
    gray_alpha = Image.new("LA", (1, 1), (0, 128))
    assert to_rgb(gray_alpha).getpixel((0, 0)) == (127, 127, 127)


def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path, pictures) -> None:
    loaded = load_image(_write(tmp_path, "deep.png", pictures.sixteen_bit_png_bytes()))
    pixels = np.asarray(loaded.image)
    assert pixels[0, :, 0].tolist() == [0, 128, 255, 3]
    assert (pixels == pixels[..., :1]).all()


def test_cmyk_jpeg_becomes_rgb(tmp_path, pictures) -> None:
    loaded = load_image(_write(tmp_path, "cmyk.jpg", pictures.cmyk_jpeg_bytes()))
    assert loaded.image.mode == "RGB"
    red, green, blue = loaded.image.getpixel((8, 8))
    assert red > 240 and green < 15 and blue < 15


def test_animated_gif_gives_its_first_frame(tmp_path, pictures) -> None:
    loaded = load_image(_write(tmp_path, "anim.gif", pictures.animated_gif_bytes()))
    assert loaded.image.mode == "RGB"
    assert not getattr(loaded.image, "is_animated", False)
    assert loaded.image.getpixel((4, 4)) == RED


@pytest.mark.parametrize("mode", ["L", "1", "I", "F", "YCbCr"])
def test_other_modes_become_rgb(mode: str) -> None:
    source = Image.fromarray(np.full((3, 3), 200, dtype=np.uint8)).convert(mode)
    converted = to_rgb(source)
    assert converted.mode == "RGB" and converted.size == (3, 3)


@pytest.mark.parametrize("name", ["zero_bytes.jpg", "truncated.jpg", "text.jpg", "bomb.png"])
def test_broken_files_raise_with_their_error_class(tmp_path, pictures, name: str) -> None:
    make, error_class = pictures.broken[name]
    with pytest.raises(InvalidImageError) as caught:
        load_image(_write(tmp_path, name, make()))
    assert caught.value.error_class == error_class
    assert caught.value.message


def test_pixel_limit_is_checked_before_decoding(tmp_path, pictures) -> None:
    path = _write(tmp_path, "big.png", pictures.png_bytes(Image.new("RGB", (100, 100))))
    with pytest.raises(InvalidImageError, match="100x100 = 10000 pixels exceeds the limit of 5000"):
        load_image(path, max_pixels=5000)
    assert load_image(path, max_pixels=10000).width == 100


def test_missing_file_names_the_cause(tmp_path) -> None:
    with pytest.raises(InvalidImageError) as caught:
        load_image(tmp_path / "absent.png")
    assert caught.value.error_class == "FileNotFoundError"
