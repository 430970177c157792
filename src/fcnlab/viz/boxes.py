"""Pictures of detections: boxes drawn on images, ground truth beside prediction, PR curves.

Boxes are (K, 4) xyxy pixel edges, the detectors' and data sets' convention: box
``[x1, y1, x2, y2]`` covers the pixels ``x1 <= x < x2``, ``y1 <= y < y2``, so its outline runs
along columns ``x1`` and ``x2 - 1``. Class ``k`` is drawn in ``palette[k]`` (0-based object
classes, no background).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont

from fcnlab.data.palettes import voc_palette
from fcnlab.viz.colours import ArrayLike, as_palette, to_numpy, to_rgb

# Classes named in a precision-recall legend; past this (COCO's 80) only the mean is.
LEGEND_CLASSES = 20
# The pictures' grids enlarge smaller images (by an integer factor, legible_scale) to this many
# pixels a side, so that captions stay readable.
LEGIBLE_SIDE = 256
Font = ImageFont.ImageFont | ImageFont.FreeTypeFont


def default_palette(num_classes: int) -> np.ndarray:
    """(K, 3) uint8 colours for K object classes: VOC's colour map without its black."""
    if not 1 <= num_classes <= 255:
        raise ValueError(f"default_palette needs 1 to 255 classes, got {num_classes}")
    return voc_palette(num_classes + 1)[1:]


def text_colour(colour: ArrayLike) -> tuple[int, int, int]:
    """Black for text on a light ``colour`` (RGB), white on a dark one (ITU-R BT.601 luma)."""
    red, green, blue = (float(c) for c in to_numpy(colour)[:3])
    return (0, 0, 0) if 0.299 * red + 0.587 * green + 0.114 * blue > 140 else (255, 255, 255)


def check_one_per_object(
    caller: str, noun: str, count: int, labels: np.ndarray, scores: np.ndarray | None
) -> None:
    """Raise unless there are ``count`` labels (and scores, when given), one per ``noun``."""
    if len(labels) != count or (scores is not None and len(scores) != count):
        counts = f"{count} {noun}es" if noun.endswith("x") else f"{count} {noun}s"
        counts += f", {len(labels)} labels"
        if scores is not None:
            counts += f", {len(scores)} scores"
        raise ValueError(f"{caller} needs one label (and score) per {noun}, got {counts}")


def caption_text(label: int, score: float | None, class_names: Sequence[str] | None) -> str:
    """An object's caption: its class name (its label number without names) and its score to
    two decimals, when it has one (ground truth has none)."""
    text = class_names[label] if class_names is not None else str(label)
    return text if score is None else f"{text} {score:.2f}"


def caption_size(draw: ImageDraw.ImageDraw, text: str, font: Font) -> tuple[int, int]:
    """(width, height) in pixels of the tab :func:`draw_caption` draws for ``text``."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return right - left + 4, bottom - top + 2


def draw_caption(
    draw: ImageDraw.ImageDraw,
    text: str,
    corner: tuple[int, int],
    colour: ArrayLike,
    font: Font,
) -> None:
    """``text`` on a tab filled with ``colour`` whose top-left pixel is ``corner`` (x, y), in
    black or white, whichever reads better on it (:func:`text_colour`)."""
    left, top, _, _ = draw.textbbox((0, 0), text, font=font)
    width, height = caption_size(draw, text, font)
    fill = tuple(int(c) for c in to_numpy(colour)[:3])
    x, y = corner
    draw.rectangle((x, y, x + width - 1, y + height - 1), fill=fill)
    draw.text((x + 2 - left, y + 1 - top), text, fill=text_colour(fill), font=font)


def draw_detections(
    image: Image.Image | ArrayLike,
    boxes: ArrayLike,
    labels: ArrayLike,
    scores: ArrayLike | None = None,
    class_names: Sequence[str] | None = None,
    palette: ArrayLike | None = None,
    line_width: int = 2,
    show_text: bool = True,
    scale: int = 1,
) -> Image.Image:
    """A copy of ``image`` with each box outlined in its class colour and captioned with its
    class name (and score, when ``scores`` are given) on a filled tab.

    ``image`` is a PIL image or anything :func:`fcnlab.viz.colours.to_rgb` takes (uint8 (H, W, 3)
    or float (3, H, W) in [0, 1]). ``palette`` defaults to :func:`default_palette` for the
    largest label (or the class names); ``class_names`` to the label numbers. ``scale`` > 1
    draws on the image enlarged that many times (nearest neighbour), so that captions stay
    legible on small images.
    """
    if isinstance(image, Image.Image):
        picture = image.convert("RGB")
    else:
        picture = Image.fromarray(to_rgb(image))
    if scale < 1:
        raise ValueError(f"draw_detections scale must be a positive integer, got {scale}")
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    box_array = to_numpy(boxes).astype(np.float64).reshape(-1, 4) * scale
    label_array = to_numpy(labels).astype(np.int64).reshape(-1)
    score_array = None if scores is None else to_numpy(scores).astype(np.float64).reshape(-1)
    check_one_per_object("draw_detections", "box", len(box_array), label_array, score_array)
    needed = max(int(label_array.max(initial=-1)) + 1, len(class_names or ()), 1)
    colours = default_palette(needed) if palette is None else as_palette(palette)
    if len(label_array) and (label_array.min() < 0 or label_array.max() >= len(colours)):
        raise ValueError(
            f"labels {sorted(set(label_array.tolist()))} do not all index the palette's "
            f"{len(colours)} colours"
        )
    names = list(class_names) if class_names is not None else None
    if names is not None and len(label_array) and label_array.max() >= len(names):
        raise ValueError(f"label {label_array.max()} has no name among {len(names)} class names")
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default()
    # Low scores first, so the most confident boxes and captions end up on top.
    order = (
        np.argsort(score_array, kind="stable") if score_array is not None else range(len(box_array))
    )
    for k in order:
        x1, y1, x2, y2 = box_array[k]
        if not x2 > x1 or not y2 > y1:
            continue
        colour = tuple(int(c) for c in colours[label_array[k]])
        draw.rectangle(
            (round(x1), round(y1), round(x2) - 1, round(y2) - 1), outline=colour, width=line_width
        )
        if not show_text:
            continue
        text = caption_text(
            int(label_array[k]), None if score_array is None else score_array[k], names
        )
        _, tab_h = caption_size(draw, text, font)
        # Above the box when it fits, else just inside its top edge.
        tab_y = round(y1) - tab_h if round(y1) >= tab_h else round(y1)
        draw_caption(draw, text, (round(x1), tab_y), colour, font)
    return picture


def plot_detections(
    images: Sequence[ArrayLike],
    targets: Sequence[dict[str, ArrayLike]],
    predictions: Sequence[dict[str, ArrayLike]],
    class_names: Sequence[str],
    palette: ArrayLike | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> Figure:
    """One row per image: ground truth | prediction, boxes drawn by :func:`draw_detections`
    (on images enlarged to at least ``LEGIBLE_SIDE`` pixels, so captions stay readable).

    Images as :func:`fcnlab.viz.colours.to_rgb` takes them (``mean``/``std`` undo a
    normalisation); targets {"boxes", "labels"}; predictions {"boxes", "labels", "scores"}.
    """
    if not len(images) == len(targets) == len(predictions) > 0:
        raise ValueError(
            f"need as many images, targets and predictions (at least one), got "
            f"{len(images)}, {len(targets)} and {len(predictions)}"
        )
    colours = default_palette(len(class_names)) if palette is None else as_palette(palette)
    scale = legible_scale(to_rgb(images[0], mean, std).shape[:2])
    rows = []
    for image, target, found in zip(images, targets, predictions, strict=True):
        rgb = to_rgb(image, mean, std)
        rows.append([
            (draw_detections(rgb, target["boxes"], target["labels"], None, class_names, colours,
                             scale=scale),
             f"ground truth ({len(to_numpy(target['labels']))})"),
            (draw_detections(rgb, found["boxes"], found["labels"], found["scores"], class_names,
                             colours, scale=scale),
             f"prediction ({len(to_numpy(found['labels']))})"),
        ])  # fmt: skip
    return plot_panels(rows)


def legible_scale(size: Sequence[int]) -> int:
    """The integer factor that enlarges an image of ``size`` (H, W) to at least
    ``LEGIBLE_SIDE`` pixels on its shorter side (1 for images that large already)."""
    return max(1, math.ceil(LEGIBLE_SIDE / max(1, min(int(v) for v in size))))


def plot_panels(
    rows: Sequence[Sequence[tuple[Image.Image | ArrayLike, str]]], inches: float = 4.0
) -> Figure:
    """A grid of titled pictures, one figure row per entry of ``rows``: each a sequence of
    ``(picture, title)`` (a PIL image or uint8 (H, W, 3)), ``inches`` a side per panel."""
    columns = max((len(row) for row in rows), default=0)
    if columns == 0:
        raise ValueError("plot_panels needs at least one row of pictures")
    fig = Figure(figsize=(inches * columns, inches * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), columns, squeeze=False)
    for row_axes, panels in zip(axes, rows, strict=True):
        for ax, (picture, title) in zip(row_axes, panels, strict=False):
            ax.imshow(np.asarray(picture), interpolation="nearest")
            ax.set_title(title, fontsize=9)
        for ax in row_axes:
            ax.set_xticks([])
            ax.set_yticks([])
    return fig


def plot_pr_curves(
    precision: ArrayLike,
    class_names: Sequence[str],
    recall: ArrayLike | None = None,
    iou: float = 0.5,
    palette: ArrayLike | None = None,
) -> Figure:
    """Precision against recall per class, and their mean over the classes with ground truth.

    ``precision`` is (R, K): COCOeval's interpolated precision at the recall points ``recall``
    (default its 101 points 0, 0.01, ..., 1), e.g. ``CocoEvaluation.pr_curves(0.5)``; an all-NaN
    column (no ground truth) is left out. Each legend entry gives the area under the curve,
    COCO's AP at that IoU; the mean curve's area is the overall AP. Past ``LEGEND_CLASSES``
    classes only the mean is named.
    """
    curves = to_numpy(precision).astype(np.float64)
    if curves.ndim != 2 or curves.shape[1] != len(class_names):
        raise ValueError(
            f"precision must be (R, K) with K = {len(class_names)} classes, got shape "
            f"{curves.shape}"
        )
    points = np.linspace(0.0, 1.0, len(curves)) if recall is None else to_numpy(recall)
    if len(points) != len(curves):
        raise ValueError(f"{len(points)} recall points for {len(curves)} precision rows")
    colours = default_palette(len(class_names)) if palette is None else as_palette(palette)
    measured = [k for k in range(curves.shape[1]) if not np.isnan(curves[:, k]).all()]
    fig = Figure(figsize=(7, 5.5), layout="constrained")
    ax = fig.subplots()
    named = len(measured) <= LEGEND_CLASSES
    for k in measured:
        area = float(np.mean(curves[:, k]))
        label = f"{class_names[k]} ({area:.3f})" if named else "_nolegend_"
        ax.plot(points, curves[:, k], color=colours[k] / 255, linewidth=1.2, label=label)
    if measured:
        mean = curves[:, measured].mean(axis=1)
        ax.plot(points, mean, color="black", linewidth=2.5, label=f"mean ({np.mean(mean):.3f})")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(f"precision-recall at IoU {iou:g} (area under the curve: AP{round(100 * iou)})")
    ax.grid(alpha=0.3)
    if measured:
        ax.legend(loc="best", fontsize=7, ncols=1 if len(measured) <= 10 else 2)
    return fig
