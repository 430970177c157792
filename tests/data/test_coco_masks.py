"""COCO's segmentation field decoded to masks: polygons, uncompressed and compressed RLE checked
against masks written by hand and by pycocotools' own encoder."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.fixtures import compressed_rle, rectangle_polygon, uncompressed_rle
from pycocotools import mask as mask_utils

from fcnlab.data.coco_masks import SegmentationError, decode_rle_string, segmentation_mask


def random_masks(count: int = 50, seed: int = 0):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        height, width = (int(v) for v in rng.integers(1, 40, 2))
        yield rng.random((height, width)) < rng.random()


def test_compressed_and_uncompressed_rle_give_back_the_encoded_mask() -> None:
    for mask in random_masks():
        size = mask.shape
        assert np.array_equal(segmentation_mask(compressed_rle(mask), size), mask)
        assert np.array_equal(segmentation_mask(uncompressed_rle(mask), size), mask)


def test_rle_string_decodes_to_pycocotools_counts() -> None:
    # pycocotools turns a compressed RLE back into counts through frPyObjects of counts lists;
    # its area is the sum of the odd runs.
    for mask in random_masks(seed=1):
        rle = compressed_rle(mask)
        counts = decode_rle_string(rle["counts"])
        assert sum(counts) == mask.size and sum(counts[1::2]) == mask.sum()
        again = mask_utils.frPyObjects({"counts": counts, "size": rle["size"]}, *mask.shape)
        assert again["counts"].decode("ascii") == rle["counts"]


def test_polygons_cover_the_pixel_squares_inside_them() -> None:
    # A rectangle with integer corners covers exactly its pixel squares; two polygons of one
    # annotation are one object (their union).
    mask = segmentation_mask(rectangle_polygon(1, 2, 4, 6) + rectangle_polygon(5, 0, 6, 1), (7, 8))
    expected = np.zeros((7, 8), dtype=bool)
    expected[1:4, 2:6] = True
    expected[5, 0] = True
    assert mask.dtype == bool and np.array_equal(mask, expected)


def test_triangle_of_three_points() -> None:
    # The lower-left half of a 4x4 square: pixel (row, col) is inside when its centre is below
    # the diagonal y = x, i.e. col < row, plus the diagonal pixels pycocotools' rasteriser keeps.
    mask = segmentation_mask([[0, 0, 0, 4, 4, 4]], (4, 4))
    rows, cols = np.indices((4, 4))
    assert mask[cols < rows].all() and not mask[cols > rows].any()


@pytest.mark.parametrize(
    ("segmentation", "rule"),
    [
        ([[1, 1]], "polygon 1 has 1 point; a polygon needs at least 3"),
        ([[1, 1, 2, 2]], "polygon 1 has 2 points"),
        ([[1, 1, 2, 2, 3]], "polygon 1 has 5 coordinates; a polygon needs an even number"),
        ([[0, 0, 3, 0, float("nan"), 3]], "polygon 1 is .* expected a list of finite numbers"),
        ([[0, 0, 3, 0, True, 3]], "polygon 1 is"),
        ({"counts": [16], "size": [4]}, r"RLE size \[4\] is not its image's size \[4, 4\]"),
        ({"counts": [10, 3, 4], "size": [4, 4]}, "counts cover 17 pixels, not the 4x4 = 16"),
        ({"counts": [1.5, 14.5], "size": [4, 4]}, "counts are .*; expected a list of integers"),
        ({"counts": "3", "size": [4, 4]}, "compressed RLE counts cover 3 pixels"),
        ({"counts": "P", "size": [4, 4]}, "compressed RLE counts end inside a number"),
        ({"size": [4, 4]}, "is neither polygons"),
        ("polygon", "is neither polygons"),
    ],
)
def test_rules_of_the_format(segmentation, rule: str) -> None:
    with pytest.raises(SegmentationError, match=rule):
        segmentation_mask(segmentation, (4, 4))
