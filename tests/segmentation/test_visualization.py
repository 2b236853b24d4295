"""segmentation.visualization: overlay colours, legend placement, label map bit depth."""

from __future__ import annotations

import numpy as np
import pytest

from segmentation.inference import ClassArea
from segmentation.visualization import (
    MAX_LEGEND_ROWS,
    MIN_OVERLAY_SIDE,
    OVERLAY_OPACITY,
    _legend_rows,
    class_palette,
    label_map_image,
    legend_font_size,
    outline_width,
    overlay_image,
    segment_rims,
)


def _classes(shares: list[float]) -> list[ClassArea]:
    return [ClassArea(i, f"class{i}", share) for i, share in enumerate(shares)]


@pytest.mark.parametrize("count", [1, 7, 20, 45])
def test_palette_gives_distinct_colours(count: int) -> None:
    palette = class_palette(count)
    assert palette.shape == (count, 3) and palette.dtype == np.uint8
    assert len({tuple(colour) for colour in palette}) == count


def test_overlay_keeps_the_picture_and_tints_each_class_with_its_colour() -> None:
    rgb = np.full((300, 400, 3), 200, np.uint8)
    labels = np.zeros((300, 400), np.uint16)
    labels[:, 200:] = 1
    overlay = np.asarray(overlay_image(rgb, labels, _classes([0.5, 0.5])))
    assert overlay.shape[0] == 300 and overlay.shape[1] > 400
    palette = class_palette(2).astype(float)
    for (row, col), class_id in [((5, 5), 0), ((290, 100), 0), ((5, 399), 1), ((290, 390), 1)]:
        expected = 200 * (1 - OVERLAY_OPACITY) + palette[class_id] * OVERLAY_OPACITY
        assert np.abs(overlay[row, col] - expected).max() <= 1


def test_legend_is_a_white_panel_right_of_the_picture_with_swatches() -> None:
    rgb = np.zeros((300, 400, 3), np.uint8)
    labels = np.zeros((300, 400), np.uint16)
    labels[:, 300:] = 1
    overlay = np.asarray(overlay_image(rgb, labels, _classes([0.75, 0.25])))
    size = legend_font_size(300)
    pad, line = size // 2, round(size * 1.4)
    assert overlay[299, 401].tolist() == [255, 255, 255]
    first = overlay[pad + size // 2, 400 + pad + size // 2]
    second = overlay[pad + line + size // 2, 400 + pad + size // 2]
    assert first.tolist() == class_palette(2)[0].tolist()
    assert second.tolist() == class_palette(2)[1].tolist()


def test_small_pictures_are_enlarged_by_a_whole_factor() -> None:
    overlay = overlay_image(
        np.zeros((64, 100, 3), np.uint8), np.zeros((64, 100), np.uint16), _classes([1.0])
    )
    assert overlay.height == 64 * 4 >= MIN_OVERLAY_SIDE
    assert overlay.width > 100 * 4


def test_legend_lists_largest_classes_and_sums_up_the_rest() -> None:
    shares = [0.5] + [0.5 / (MAX_LEGEND_ROWS + 2)] * (MAX_LEGEND_ROWS + 2)
    rows = _legend_rows(sorted(_classes(shares), key=lambda c: -c.area))
    assert len(rows) == MAX_LEGEND_ROWS + 1
    assert rows[0] == (0, "class0  50.0%")
    assert rows[-1] == (None, f"3 more  {3 * 0.5 / (MAX_LEGEND_ROWS + 2):.1%}")


def test_label_map_png_is_8_bit_when_ids_fit_and_16_bit_otherwise() -> None:
    assert label_map_image(np.array([[0, 255]], np.uint16)).mode == "L"
    wide = label_map_image(np.array([[0, 300]], np.uint16))
    assert wide.mode.startswith("I;16")
    assert np.asarray(wide).tolist() == [[0, 300]]


def test_strong_tab20_shades_come_before_their_light_twins() -> None:
    assert class_palette(2).tolist() == [[31, 119, 180], [255, 127, 14]]  # blue, orange
    assert class_palette(11)[10].tolist() == [174, 199, 232]  # light blue


@pytest.mark.parametrize("background", ["background", "Background"])
def test_background_keeps_the_photo_and_gets_an_empty_named_swatch(background) -> None:
    rgb = np.full((300, 400, 3), 200, np.uint8)
    labels = np.zeros((300, 400), np.uint16)
    labels[:, 100:] = 1
    classes = [ClassArea(0, "dog", 0.25), ClassArea(1, background, 0.75)]
    overlay = np.asarray(overlay_image(rgb, labels, classes))
    palette = class_palette(2).astype(float)
    expected_dog = 200 * (1 - OVERLAY_OPACITY) + palette[0] * OVERLAY_OPACITY
    assert np.abs(overlay[150, 50] - expected_dog).max() <= 1
    assert overlay[150, 250].tolist() == [200, 200, 200]
    size = legend_font_size(300)
    swatch_middle = 400 + size // 2 + size // 2
    assert overlay[size // 2 + size // 2, swatch_middle].tolist() == [255, 255, 255]
    assert overlay[size // 2, swatch_middle].tolist() == [0, 0, 0]  # its outline
    assert _legend_rows(classes[::-1])[0] == (1, f"{background}  75.0%")


def test_segment_rims_are_each_segments_pixels_next_to_another_label() -> None:
    labels = np.zeros((8, 10), np.uint16)
    labels[2:6, 3:8] = 1
    near_the_square = np.zeros((8, 10), bool)
    near_the_square[1:7, 2:9] = True
    square_interior = np.zeros((8, 10), bool)
    square_interior[3:5, 4:7] = True
    expected = near_the_square & ~square_interior
    assert (segment_rims(labels, 1) == expected).all()
    assert not segment_rims(labels, 2)[:, 0].any()  # the picture's border is no rim
    assert segment_rims(labels, 2)[labels == 1].all()  # 4 rows: all rim at width 2


def test_objects_are_outlined_in_their_exact_colour_over_an_untouched_background() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    labels = np.ones((300, 400), np.uint16)
    labels[100:200, 100:200] = 0
    classes = [ClassArea(0, "square", 1 / 12), ClassArea(1, "background", 11 / 12)]
    overlay = np.asarray(overlay_image(rgb, labels, classes))[:300, :400]
    square = class_palette(2)[0]
    width = outline_width(labels.shape)
    assert width == 3
    rim = np.zeros(labels.shape, bool)
    rim[100:200, 100:200] = True
    rim[100 + width : 200 - width, 100 + width : 200 - width] = False
    assert (overlay[rim] == square).all()
    interior = (labels == 0) & ~rim
    blend = rgb * (1 - OVERLAY_OPACITY) + square.astype(float) * OVERLAY_OPACITY
    assert np.abs(overlay[interior] - blend[interior]).max() <= 1
    assert (overlay[labels == 1] == rgb[labels == 1]).all()
