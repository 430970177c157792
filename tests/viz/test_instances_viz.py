from __future__ import annotations

import colorsys

import numpy as np
import pytest
import torch

from fcnlab.viz.boxes import LEGIBLE_SIDE
from fcnlab.viz.instances import (
    OUTLINE_SHADE,
    draw_instances,
    instance_colours,
    instance_id_map,
    mask_outline,
    plot_instances,
)


def rectangles(shape: tuple[int, int], *boxes: tuple[int, int, int, int]) -> np.ndarray:
    """Bool (K, H, W) masks of the pixels x1 <= x < x2, y1 <= y < y2 of each box."""
    masks = np.zeros((len(boxes), *shape), dtype=bool)
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        masks[k, y1:y2, x1:x2] = True
    return masks


def test_instance_colours_follow_the_golden_ratio_and_never_repeat() -> None:
    colours = instance_colours(60)
    assert colours.dtype == np.uint8 and colours.shape == (60, 3)
    assert len({tuple(c) for c in colours.tolist()}) == 60
    golden = (np.sqrt(5) - 1) / 2
    for k in (0, 1, 7):
        expected = np.round(np.array(colorsys.hsv_to_rgb(k * golden % 1, 0.65, 0.95)) * 255)
        np.testing.assert_array_equal(colours[k], expected)
    np.testing.assert_array_equal(instance_colours(60), colours)  # deterministic
    assert instance_colours(0).shape == (0, 3)


def test_touching_instances_of_one_class_get_distinct_colours() -> None:
    image = np.full((12, 16, 3), 100, dtype=np.uint8)
    # Two squares of class 0 sharing the edge between columns 7 and 8.
    masks = rectangles((12, 16), (2, 2, 8, 10), (8, 2, 14, 10))
    drawn = draw_instances(image, masks, [0, 0], [0.4, 0.8], alpha=1.0, show_text=False)
    left, right = drawn[5, 4], drawn[5, 11]  # inside each, away from its outline
    assert not np.array_equal(left, right)
    # The most confident instance takes the first colour, the other the second.
    np.testing.assert_array_equal(right, instance_colours(2)[0])
    np.testing.assert_array_equal(left, instance_colours(2)[1])
    # Half-transparent: the colour blended with the image, pixel by pixel.
    half = draw_instances(image, masks, [0, 0], [0.4, 0.8], alpha=0.5, show_text=False)
    np.testing.assert_array_equal(half[5, 11], np.round(0.5 * 100 + 0.5 * right.astype(float)))
    np.testing.assert_array_equal(half[0, 0], [100, 100, 100])  # background untouched
    # Ground truth (no scores) in the given order.
    truth = draw_instances(image, masks, [0, 0], alpha=1.0, show_text=False)
    np.testing.assert_array_equal(truth[5, 4], instance_colours(2)[0])


def test_mask_outline_by_hand() -> None:
    # An L: rows 1-4 of columns 1-2, and row 4 through column 5.
    mask = np.zeros((6, 7), dtype=bool)
    mask[1:5, 1:3] = True
    mask[4, 1:6] = True
    expected = np.array(
        [
            [0, 0, 0, 0, 0, 0, 0],
            [0, 1, 1, 0, 0, 0, 0],
            [0, 1, 1, 0, 0, 0, 0],
            [0, 1, 1, 0, 0, 0, 0],
            [0, 1, 1, 1, 1, 1, 0],
            [0, 0, 0, 0, 0, 0, 0],
        ],
        dtype=bool,
    )  # every pixel of a 2-wide L touches the outside
    np.testing.assert_array_equal(mask_outline(mask), expected)
    block = rectangles((7, 7), (1, 1, 6, 6))[0]
    ring = block.copy()
    ring[2:5, 2:5] = False
    np.testing.assert_array_equal(mask_outline(block), ring)
    thick = block.copy()
    thick[3, 3] = False  # two steps wide, only the centre is more than 2 steps from outside
    np.testing.assert_array_equal(mask_outline(block, width=2), thick)
    # A mask cut by the image's border is closed along it: of a 3 x 3 corner only (1, 1) is
    # inner.
    corner = rectangles((4, 4), (0, 0, 3, 3))[0]
    rim = corner.copy()
    rim[1, 1] = False
    np.testing.assert_array_equal(mask_outline(corner), rim)


def test_outline_pixels_are_the_mask_boundary_in_a_darker_shade() -> None:
    image = np.zeros((10, 12, 3), dtype=np.uint8)
    masks = rectangles((10, 12), (2, 1, 9, 8))
    masks[0, 4, 5] = False  # a hole: its rim is boundary too
    for width, scale in ((1, 1), (2, 1), (1, 3)):
        drawn = draw_instances(
            image, masks, [3], [0.7], alpha=0.0, line_width=width, show_text=False, scale=scale
        )
        assert drawn.shape == (10 * scale, 12 * scale, 3)
        large = masks[0].repeat(scale, axis=0).repeat(scale, axis=1)
        boundary = large & ~_eroded(large, width)
        coloured = drawn.any(axis=-1)
        np.testing.assert_array_equal(coloured, boundary)
        shade = np.round(instance_colours(1)[0] * OUTLINE_SHADE)
        assert (drawn[boundary] == shade).all()


def _eroded(mask: np.ndarray, width: int) -> np.ndarray:
    # The mask's pixels whose (2 width + 1)-diamond lies inside it, by brute force.
    height, cols = mask.shape
    kept = np.zeros_like(mask)
    for y in range(height):
        for x in range(cols):
            kept[y, x] = all(
                0 <= y + dy < height and 0 <= x + dx < cols and mask[y + dy, x + dx]
                for dy in range(-width, width + 1)
                for dx in range(-width, width + 1)
                if abs(dy) + abs(dx) <= width
            )
    return kept


def test_instance_id_map_by_hand_with_an_overlap() -> None:
    masks = rectangles((4, 6), (0, 0, 3, 3), (2, 1, 5, 4), (4, 0, 6, 2))
    # Instance 2 (0.9) beats 1 (0.5) where they overlap; 3 (0.7) loses column 4 to instance 2.
    expected = np.array(
        [
            [1, 1, 1, 0, 3, 3],
            [1, 1, 2, 2, 2, 3],
            [1, 1, 2, 2, 2, 0],
            [0, 0, 2, 2, 2, 0],
        ]
    )
    ids = instance_id_map(torch.from_numpy(masks), torch.tensor([0.5, 0.9, 0.7]))
    assert ids.dtype == np.int64
    np.testing.assert_array_equal(ids, expected)
    # Without scores the earlier instance wins.
    expected_in_order = expected.copy()
    expected_in_order[1:3, 2] = 1
    expected_in_order[1, 4] = 2
    np.testing.assert_array_equal(instance_id_map(masks), expected_in_order)
    np.testing.assert_array_equal(instance_id_map(np.zeros((0, 2, 3), bool)), np.zeros((2, 3)))


def test_captions_name_the_class_and_score_near_the_instance() -> None:
    image = np.zeros((60, 90, 3), dtype=np.uint8)
    masks = rectangles((60, 90), (30, 20, 70, 50))
    drawn = draw_instances(image, masks, [1], [0.87], ["disk", "square"], alpha=0.0)
    tab = (drawn == instance_colours(1)[0]).all(axis=-1)
    rows, cols = np.nonzero(tab)
    assert tab.sum() > 50
    # The tab is centred on the mask pixel nearest its pixels' median (49.5, 34.5): (49, 34).
    assert (
        abs((cols.min() + cols.max()) / 2 - 49.5) <= 1
        and abs((rows.min() + rows.max()) / 2 - 34.5) <= 1
    )
    truth = draw_instances(image, masks, [1], None, ["disk", "square"], alpha=0.0)
    narrower = (truth == instance_colours(1)[0]).all(axis=-1)
    assert np.ptp(np.nonzero(narrower)[1]) < np.ptp(cols)  # "square" is narrower than "square 0.87"
    # A tab near the image's edge is moved inside it.
    edge = draw_instances(image, rectangles((60, 90), (0, 0, 2, 2)), [0], [0.5], ["a"], alpha=0.0)
    assert (edge == instance_colours(1)[0]).all(axis=-1)[0, :10].any()


def test_draw_instances_errors() -> None:
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"\(K, H, W\) masks of the image's \(8, 8\)"):
        draw_instances(image, np.zeros((1, 8, 9), bool), [0])
    with pytest.raises(
        ValueError, match="one label \\(and score\\) per mask, got 1 masks, 2 labels"
    ):
        draw_instances(image, np.zeros((1, 8, 8), bool), [0, 1])
    with pytest.raises(ValueError, match=r"labels \[2\] are not all among the 2 class labels"):
        draw_instances(image, np.zeros((1, 8, 8), bool), [2], class_names=["a", "b"])
    with pytest.raises(ValueError, match="alpha must be in"):
        draw_instances(image, np.zeros((0, 8, 8), bool), [], alpha=2.0)
    # No instances: the image itself.
    np.testing.assert_array_equal(draw_instances(image, np.zeros((0, 8, 8), bool), []), image)


def test_plot_instances_rows_of_image_truth_and_prediction() -> None:
    images = [torch.rand(3, 32, 40), torch.rand(3, 32, 40)]
    masks = torch.from_numpy(rectangles((32, 40), (4, 4, 20, 20), (20, 10, 36, 30)))
    targets = [{"masks": masks, "labels": torch.tensor([0, 1])}] * 2
    found = [{"masks": masks[:1], "labels": torch.tensor([1]), "scores": torch.tensor([0.5])}] * 2
    figure = plot_instances(images, targets, found, ["disk", "square"])
    axes = figure.get_axes()
    assert len(axes) == 6
    assert [ax.get_title() for ax in axes[:3]] == ["image", "ground truth (2)", "prediction (1)"]
    # Small images are drawn enlarged to LEGIBLE_SIDE pixels.
    assert axes[1].get_images()[0].get_array().shape[:2] == (32 * 8, 40 * 8)
    assert LEGIBLE_SIDE <= 32 * 8
    with pytest.raises(ValueError, match="need as many images"):
        plot_instances(images, targets[:1], found, ["disk", "square"])
