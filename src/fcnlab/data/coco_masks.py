"""COCO's ``segmentation`` field decoded to a mask, each rule of the format checked first.

An annotation's ``segmentation`` is one of

- polygons: a list of ``[x1, y1, x2, y2, ...]`` lists in pixel-edge coordinates (a point at
  ``(0, 0)`` is the top-left corner of the top-left pixel), one list per connected part;
- an uncompressed RLE, ``{"counts": [int, ...], "size": [height, width]}``: run lengths over the
  mask in column-major order, starting with a (possibly empty) run of zeros; COCO stores crowd
  regions this way;
- a compressed RLE, ``{"counts": str, "size": [height, width]}``: the same run lengths written
  in COCO's text encoding (pycocotools' ``encode``).

pycocotools reads malformed input without naming it (a polygon of one point is "input type is
not supported.", one of two points is taken for a box and fails with a ``TypeError``, RLE
counts that overrun the image write past its buffer), so :func:`segmentation_mask` checks every
rule here and raises :class:`SegmentationError` with a sentence naming the rule; the data set
adds the file and the annotation. Polygons are then rasterised by pycocotools (its rasteriser
defines which pixels a COCO polygon covers); RLE counts are checked and expanded here.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

# COCO's compressed RLE writes each count in 5-bit groups, one character per group offset by
# this (pycocotools ``rleToString``); a group with 0x20 set is followed by another.
_RLE_CHARACTER_OFFSET = 48


class SegmentationError(ValueError):
    """A ``segmentation`` field that breaks a rule of COCO's format; the message names the rule."""


def segmentation_mask(segmentation: Any, size: tuple[int, int]) -> np.ndarray:
    """The bool ``(H, W)`` mask of a COCO ``segmentation`` (polygons, uncompressed or compressed
    RLE) on an image of ``size`` ``(H, W)``.

    Raises :class:`SegmentationError` for polygons of fewer than 3 points, an odd number of
    coordinates or non-numbers; an RLE whose ``size`` is not the image's or whose counts do not
    cover it exactly; an empty polygon list (a box-only annotation); anything else.
    """
    height, width = size
    if isinstance(segmentation, list):
        return _polygons_mask(segmentation, height, width)
    if isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        rle_size = segmentation["size"]
        if not isinstance(rle_size, list | tuple) or list(rle_size) != [height, width]:
            raise SegmentationError(
                f"its RLE size {rle_size!r} is not its image's size [{height}, {width}] "
                "(height, width)"
            )
        counts = segmentation["counts"]
        if isinstance(counts, str):
            return _counts_mask(decode_rle_string(counts), height, width, "compressed")
        if isinstance(counts, list) and all(is_integer(c) for c in counts):
            return _counts_mask(counts, height, width, "uncompressed")
        raise SegmentationError(
            f"its RLE counts are {_shown(counts)}; expected a list of integers (uncompressed) "
            "or a string (compressed)"
        )
    raise SegmentationError(
        f"its segmentation {_shown(segmentation)} is neither polygons (a list of "
        "[x1, y1, x2, y2, ...] lists) nor an RLE ({'counts': ..., 'size': [height, width]})"
    )


def decode_rle_string(text: str) -> list[int]:
    """The run lengths written in a compressed RLE's ``counts`` (pycocotools ``rleFrString``).

    Each count is a signed number in 5-bit groups, least significant first; from the third count
    on, it is stored as the difference to the count two places before it.
    """
    counts: list[int] = []
    position = 0
    while position < len(text):
        value, shift, more = 0, 0, True
        while more:
            if position == len(text):
                raise SegmentationError("its compressed RLE counts end inside a number")
            code = ord(text[position]) - _RLE_CHARACTER_OFFSET
            if not 0 <= code < 64:
                raise SegmentationError(
                    f"its compressed RLE counts hold {text[position]!r}, which is not a "
                    "character of COCO's RLE encoding"
                )
            value |= (code & 0x1F) << shift
            more = bool(code & 0x20)
            position += 1
            shift += 5
            if not more and code & 0x10:
                value |= -1 << shift
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts


def _polygons_mask(polygons: list[Any], height: int, width: int) -> np.ndarray:
    if not polygons:
        raise SegmentationError(
            "its segmentation is an empty list (a box-only annotation?); a mask needs polygons "
            "or an RLE"
        )
    if all(_is_number(value) for value in polygons):
        raise SegmentationError(
            "its segmentation is one flat list of numbers; COCO polygons are a list of "
            "[x1, y1, x2, y2, ...] lists"
        )
    for number, polygon in enumerate(polygons, start=1):
        if not isinstance(polygon, list) or not all(_is_number(value) for value in polygon):
            raise SegmentationError(
                f"its polygon {number} is {_shown(polygon)}; expected a list of finite numbers "
                "[x1, y1, x2, y2, ...]"
            )
        if len(polygon) % 2:
            raise SegmentationError(
                f"its polygon {number} has {len(polygon)} coordinates; a polygon needs an even "
                "number (x, y pairs)"
            )
        if len(polygon) < 6:
            points = len(polygon) // 2
            raise SegmentationError(
                f"its polygon {number} has {points} point{'' if points == 1 else 's'}; a polygon "
                "needs at least 3"
            )
    rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    return mask_utils.decode(rle).astype(bool)


def _counts_mask(counts: list[int], height: int, width: int, kind: str) -> np.ndarray:
    negative = next((count for count in counts if count < 0), None)
    if negative is not None:
        raise SegmentationError(f"its {kind} RLE holds the negative run length {negative}")
    total = sum(counts)
    if total != height * width:
        raise SegmentationError(
            f"its {kind} RLE counts cover {total} pixels, not the {height}x{width} = "
            f"{height * width} of its size"
        )
    # Runs alternate between 0 and 1, starting with 0, over the pixels in column-major order.
    values = np.arange(len(counts)) % 2 == 1
    flat = np.repeat(values, counts)
    return np.ascontiguousarray(flat.reshape(width, height).T)


def is_integer(value: object) -> bool:
    """Whether a JSON value is an integer (``True``/``False`` are not, though Python's bools are
    ints)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _shown(value: object, limit: int = 60) -> str:
    """``repr(value)``, cut short for long coordinate lists."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
