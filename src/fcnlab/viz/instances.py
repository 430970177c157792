"""Pictures of instance masks: every object in its own colour, outlined and captioned, the way
detectron2's ``Visualizer`` draws instances, and the instance-id map that says which object
each pixel belongs to.

Masks are bool ``(K, H, W)`` at the image's size, labels ``(K,)`` 0-based object classes (no
background), scores ``(K,)`` or None (ground truth). Where masks overlap, the higher-scored
instance owns the pixel (without scores, the earlier one): the id map, the fill and the file
``fcnlab predict`` writes all follow that one rule, :func:`instance_id_map`.
"""

from __future__ import annotations

import colorsys
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont

from fcnlab.viz.boxes import (
    caption_size,
    caption_text,
    check_one_per_object,
    draw_caption,
    legible_scale,
    plot_panels,
)
from fcnlab.viz.colours import ArrayLike, to_numpy, to_rgb

# The golden ratio's conjugate: hues k * GOLDEN (mod 1) never repeat and any few consecutive
# ones lie far apart on the colour wheel, so neighbouring instances differ at a glance.
GOLDEN = (5**0.5 - 1) / 2
# Outlines are the fill colour darkened to this fraction, so that two touching instances of
# similar hue still show where one ends.
OUTLINE_SHADE = 0.6


def instance_colours(count: int) -> np.ndarray:
    """(count, 3) uint8 colours, one per instance: hue ``k * GOLDEN`` (mod 1) at saturation
    0.65 and value 0.95, the same for the same ``count`` every time, no two alike."""
    if count < 0:
        raise ValueError(f"instance_colours needs a count of at least 0, got {count}")
    rgb = [colorsys.hsv_to_rgb((k * GOLDEN) % 1.0, 0.65, 0.95) for k in range(count)]
    return np.round(np.asarray(rgb, dtype=np.float64).reshape(-1, 3) * 255).astype(np.uint8)


def instance_id_map(masks: ArrayLike, scores: ArrayLike | None = None) -> np.ndarray:
    """(H, W) int64 instance ids from bool masks (K, H, W): 0 for background, ``k + 1`` where
    ``masks[k]`` holds; where masks overlap, the instance with the higher score wins (ties and
    ``scores=None``: the earlier one)."""
    stack = to_numpy(masks).astype(bool, copy=False)
    if stack.ndim != 3:
        raise ValueError(f"instance_id_map needs (K, H, W) masks, got shape {stack.shape}")
    ids = np.zeros(stack.shape[1:], dtype=np.int64)
    for k in reversed(_ranking(len(stack), scores)):
        ids[stack[k]] = k + 1
    return ids


def mask_outline(mask: ArrayLike, width: int = 1) -> np.ndarray:
    """(H, W) bool: the pixels of ``mask`` (H, W) within ``width`` steps (4-neighbour) of a pixel
    outside it; the image's border counts as outside, so a mask cut by it is closed."""
    inside = to_numpy(mask).astype(bool, copy=False)
    if inside.ndim != 2:
        raise ValueError(f"mask_outline needs an (H, W) mask, got shape {inside.shape}")
    if width < 1:
        raise ValueError(f"mask_outline width must be a positive integer, got {width}")
    eroded = inside
    for _ in range(width):
        padded = np.pad(eroded, 1, constant_values=False)
        eroded = (
            padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1]
            & padded[1:-1, :-2] & padded[1:-1, 2:]
        )  # fmt: skip
    return inside & ~eroded


def draw_instances(
    image: ArrayLike,
    masks: ArrayLike,
    labels: ArrayLike,
    scores: ArrayLike | None = None,
    class_names: Sequence[str] | None = None,
    alpha: float = 0.5,
    line_width: int = 1,
    show_text: bool = True,
    scale: int = 1,
) -> np.ndarray:
    """``image`` with each instance filled in its own colour (blended by ``alpha``), its mask's
    boundary outlined ``line_width`` pixels wide in a darker shade, and captioned with its class
    name and score (no score for ground truth) at the mask pixel nearest its pixels' median.

    ``image`` as :func:`fcnlab.viz.colours.to_rgb` takes it (uint8 (H, W, 3) or float (3, H, W)
    in [0, 1]); ``masks`` bool (K, H, W). Colours follow :func:`instance_colours` in score order
    (the most confident instance first; without scores, the given order), so two touching
    instances of one class always differ. ``scale`` > 1 draws on the image enlarged that many
    times (nearest neighbour), so that captions stay legible on small images. Returns uint8
    (H * scale, W * scale, 3).
    """
    rgb = to_rgb(image)
    stack = to_numpy(masks).astype(bool, copy=False)
    label_array = to_numpy(labels).astype(np.int64).reshape(-1)
    score_array = None if scores is None else to_numpy(scores).astype(np.float64).reshape(-1)
    if stack.ndim != 3 or stack.shape[1:] != rgb.shape[:2]:
        raise ValueError(
            f"draw_instances needs (K, H, W) masks of the image's {rgb.shape[:2]} pixels, got "
            f"shape {stack.shape}"
        )
    check_one_per_object("draw_instances", "mask", len(stack), label_array, score_array)
    names = list(class_names) if class_names is not None else None
    if len(label_array) and (
        label_array.min() < 0 or (names is not None and label_array.max() >= len(names))
    ):
        raise ValueError(
            f"labels {sorted(set(label_array.tolist()))} are not all among the "
            f"{len(names) if names is not None else 'non-negative'} class labels"
        )
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"draw_instances alpha must be in [0, 1], got {alpha}")
    if scale < 1:
        raise ValueError(f"draw_instances scale must be a positive integer, got {scale}")
    ranking = _ranking(len(stack), score_array)
    colours = np.zeros((len(stack), 3), dtype=np.uint8)
    colours[ranking] = instance_colours(len(stack))
    ids = _enlarge(instance_id_map(stack, score_array), scale)
    picture = _enlarge(rgb, scale).astype(np.float64)
    owned = ids > 0
    picture[owned] = (1 - alpha) * picture[owned] + alpha * colours[ids[owned] - 1]
    picture = np.round(picture).astype(np.uint8)
    spans = [_span(mask) for mask in stack]
    # Least confident first, so the most confident outlines and captions end up on top.
    for k in reversed(ranking):
        if spans[k] is None:
            continue
        top, bottom, left, right = spans[k]
        # The crop is exact: every pixel outside a mask's box is outside the mask.
        edge = mask_outline(_enlarge(stack[k, top:bottom, left:right], scale), line_width)
        shade = np.round(colours[k] * OUTLINE_SHADE).astype(np.uint8)
        picture[top * scale : bottom * scale, left * scale : right * scale][edge] = shade
    if not show_text or not len(stack):
        return picture
    drawn = Image.fromarray(picture)
    draw = ImageDraw.Draw(drawn)
    font = ImageFont.load_default()
    for k in reversed(ranking):
        if spans[k] is None:
            continue
        top, bottom, left, right = spans[k]
        text = caption_text(
            int(label_array[k]), None if score_array is None else score_array[k], names
        )
        width, height = caption_size(draw, text, font)
        x, y = _label_point(stack[k, top:bottom, left:right])
        x, y = (x + left + 0.5) * scale, (y + top + 0.5) * scale
        corner_x = min(max(round(x - width / 2), 0), max(drawn.width - width, 0))
        corner_y = min(max(round(y - height / 2), 0), max(drawn.height - height, 0))
        draw_caption(draw, text, (corner_x, corner_y), colours[k], font)
    return np.asarray(drawn).copy()


def plot_instances(
    images: Sequence[ArrayLike],
    targets: Sequence[Mapping[str, ArrayLike]],
    predictions: Sequence[Mapping[str, ArrayLike]],
    class_names: Sequence[str],
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> Figure:
    """One row per image: image | ground truth | prediction, instances drawn by
    :func:`draw_instances` (on images enlarged to at least ``LEGIBLE_SIDE`` pixels a side).

    Images as :func:`fcnlab.viz.colours.to_rgb` takes them (``mean``/``std`` undo a
    normalisation); targets {"masks", "labels"}; predictions {"masks", "labels", "scores"}, the
    masks bool (K, H, W) at the image's size.
    """
    if not len(images) == len(targets) == len(predictions) > 0:
        raise ValueError(
            f"need as many images, targets and predictions (at least one), got "
            f"{len(images)}, {len(targets)} and {len(predictions)}"
        )
    scale = legible_scale(to_rgb(images[0], mean, std).shape[:2])
    rows = []
    for image, target, found in zip(images, targets, predictions, strict=True):
        rgb = to_rgb(image, mean, std)
        rows.append([
            (_enlarge(rgb, scale), "image"),
            (draw_instances(rgb, target["masks"], target["labels"], None, class_names,
                            scale=scale),
             f"ground truth ({len(to_numpy(target['labels']))})"),
            (draw_instances(rgb, found["masks"], found["labels"], found["scores"], class_names,
                            scale=scale),
             f"prediction ({len(to_numpy(found['labels']))})"),
        ])  # fmt: skip
    return plot_panels(rows)


def _ranking(count: int, scores: ArrayLike | None) -> list[int]:
    # Instance indices, most confident first; a stable sort keeps the given order among ties.
    if scores is None:
        return list(range(count))
    values = to_numpy(scores).astype(np.float64).reshape(-1)
    if len(values) != count:
        raise ValueError(f"{len(values)} scores for {count} masks; expected one score per mask")
    return np.argsort(-values, kind="stable").tolist()


def _enlarge(array: np.ndarray, scale: int) -> np.ndarray:
    # Nearest-neighbour enlargement of the two leading (row, column) axes.
    if scale == 1:
        return array
    return array.repeat(scale, axis=0).repeat(scale, axis=1)


def _span(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    # (top, bottom, left, right), the rows and columns of the mask's box (bottom and right
    # exclusive); None for an empty mask.
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _label_point(mask: np.ndarray) -> tuple[int, int]:
    # The mask's pixel (x, y) nearest the median of its pixels: on the object even when the
    # object is not convex (a ring's median lies in its hole).
    rows, cols = np.nonzero(mask)
    y, x = np.median(rows), np.median(cols)
    nearest = int(np.argmin((rows - y) ** 2 + (cols - x) ** 2))
    return int(cols[nearest]), int(rows[nearest])
