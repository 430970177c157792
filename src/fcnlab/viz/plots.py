"""Pictures of a training run: curves, confusion matrix and prediction overlays.

Every ``plot_*`` function returns a :class:`matplotlib.figure.Figure` built without pyplot (no
global figure state, nothing to close, rendered by Agg when saved); :func:`save_figure` writes it
atomically. Masks are drawn in a data set's palette, a ``(K, 3)`` array of uint8 colours; pixels
labelled ``ignore_index`` are drawn in ``IGNORE_COLOR`` (white), so they never pass for a class.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch

IGNORE_COLOR = (255, 255, 255)
ArrayLike = np.ndarray | torch.Tensor | Sequence[Any]
Boundaries = Sequence[int] | Sequence[tuple[int, str]] | None


def to_numpy(value: ArrayLike) -> np.ndarray:
    """A tensor (detached, on the CPU) or array-like as a NumPy array."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def as_palette(palette: ArrayLike) -> np.ndarray:
    """``palette`` as (K, 3) uint8 RGB colours; a ValueError for any other shape."""
    colours = to_numpy(palette)
    if colours.ndim != 2 or colours.shape[1] != 3:
        raise ValueError(f"palette must be (K, 3) RGB colours, got shape {colours.shape}")
    return colours.astype(np.uint8)


def colorize(
    mask: ArrayLike,
    palette: ArrayLike,
    ignore_index: int | None = 255,
    ignore_color: tuple[int, int, int] = IGNORE_COLOR,
) -> np.ndarray:
    """(H, W) class indices -> (H, W, 3) uint8 RGB: ``palette[c]``, ``ignore_color`` if ignored."""
    labels = to_numpy(mask).astype(np.int64)
    colours = as_palette(palette)
    ignored = labels == ignore_index if ignore_index is not None else np.zeros(labels.shape, bool)
    bad = ~ignored & ((labels < 0) | (labels >= len(colours)))
    if bad.any():
        found = ", ".join(str(v) for v in np.unique(labels[bad])[:10])
        raise ValueError(
            f"mask has values {found} outside the palette's {len(colours)} colours "
            f"(ignore_index {ignore_index})"
        )
    rgb = colours[np.where(ignored, 0, labels)]
    rgb[ignored] = ignore_color
    return rgb


def to_rgb(
    image: ArrayLike,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> np.ndarray:
    """An image as (H, W, 3) uint8: from float (3, H, W) in [0, 1] or uint8 (H, W, 3).

    ``mean`` and ``std`` undo a normalisation (``x * std + mean``) before the conversion.
    """
    array = to_numpy(image)
    if array.dtype == np.uint8:
        if array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(f"a uint8 image must be (H, W, 3), got shape {array.shape}")
        return array
    if array.ndim != 3 or array.shape[0] != 3:
        raise ValueError(f"a float image must be (3, H, W), got shape {array.shape}")
    array = array.astype(np.float64)
    if std is not None:
        array = array * np.asarray(std, dtype=np.float64)[:, None, None]
    if mean is not None:
        array = array + np.asarray(mean, dtype=np.float64)[:, None, None]
    return np.round(np.clip(array, 0.0, 1.0) * 255).astype(np.uint8).transpose(1, 2, 0)


def overlay(
    image: ArrayLike,
    mask: ArrayLike,
    palette: ArrayLike,
    alpha: float = 0.5,
    ignore_index: int | None = 255,
) -> np.ndarray:
    """The mask's colours blended over the image: ``(1 - alpha) * image + alpha * colour``.

    ``image`` as accepted by :func:`to_rgb` (already denormalised); ignored pixels keep the image.
    Returns (H, W, 3) uint8; ``alpha=0`` is the image, ``alpha=1`` the colorized mask.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    rgb = to_rgb(image)
    colours = colorize(mask, palette, ignore_index)
    if rgb.shape != colours.shape:
        raise ValueError(f"image is {rgb.shape[:2]} but its mask is {colours.shape[:2]}")
    blended = (1 - alpha) * rgb.astype(np.float64) + alpha * colours.astype(np.float64)
    blended = np.round(blended).astype(np.uint8)
    if ignore_index is not None:
        blended[to_numpy(mask) == ignore_index] = rgb[to_numpy(mask) == ignore_index]
    return blended


def stage_label(stage: Any) -> str:
    """A stage's label in plots and facts: ``"stage 1"`` for index 0, a name as it is."""
    # The engine logs 0-based stage indices and prints them 1-based; names are kept as they are.
    return f"stage {stage + 1}" if isinstance(stage, int) else str(stage)


def _stage_boundaries(records: Sequence[Mapping[str, Any]]) -> list[tuple[int, str]]:
    """(step, label) wherever the ``"stage"`` value of the step-ordered records changes."""
    found: list[tuple[int, str]] = []
    for record in records:
        if "stage" in record and (not found or found[-1][1] != stage_label(record["stage"])):
            found.append((int(record["step"]), stage_label(record["stage"])))
    return found


def plot_curves(
    records: Sequence[Mapping[str, Any]],
    eval_keys: Sequence[str] = (),
    stage_boundaries: Boundaries = None,
) -> Figure:
    """Loss and learning rate per step and the ``eval_keys`` scores per evaluation (the task's
    ``curve_metrics``: e.g. ``"mean_iou"``, ``"pixel_accuracy"`` or ``"AP"``, ``"AP50"``).

    ``records`` are metrics.jsonl-style dicts with a ``"step"``; those with ``"loss"`` (and
    ``"lr"``) are training points, those with an ``eval_keys`` number evaluation points.
    ``stage_boundaries`` are steps, or (step, label) pairs, where a stage starts; by default
    they are read from the records' ``"stage"`` values (names, or 0-based indices labelled
    "stage 1", "stage 2", ...). Each is a dashed vertical line.
    """
    for index, record in enumerate(records):
        if "step" not in record:
            raise ValueError(f"record {index} has no 'step': {dict(record)}")
    records = sorted(records, key=lambda record: record["step"])
    if stage_boundaries is None:
        boundaries = _stage_boundaries(records)
    else:
        boundaries = [b if isinstance(b, tuple) else (int(b), "") for b in stage_boundaries]

    fig = Figure(figsize=(8, 7), layout="constrained")
    loss_ax, lr_ax, eval_ax = fig.subplots(3, 1, sharex=True)
    panels = [
        (loss_ax, ["loss"], "loss"),
        (lr_ax, ["lr"], "learning rate"),
        (eval_ax, list(eval_keys), "evaluation"),
    ]
    for ax, keys, title in panels:
        for key in keys:
            points = [(r["step"], r[key]) for r in records if _is_number(r.get(key))]
            if points:
                steps, values = zip(*points, strict=True)
                ax.plot(steps, values, marker="o" if title == "evaluation" else None, label=key)
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
        if title == "evaluation" and ax.has_data():
            ax.legend(loc="lower right")
        for step, label in boundaries:
            ax.axvline(step, color="0.4", linestyle="--", linewidth=1)
            if ax is loss_ax and label:
                ax.annotate(
                    label,
                    (step, 1.0),
                    xycoords=("data", "axes fraction"),
                    xytext=(3, -3),
                    textcoords="offset points",
                    va="top",
                    fontsize=8,
                )
    eval_ax.set_xlabel("step")
    return fig


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def plot_confusion(matrix: ArrayLike, class_names: Sequence[str] | None = None) -> Figure:
    """The (K, K) confusion matrix (rows true, columns predicted), each row divided by its sum.

    Rows of classes absent from the ground truth stay blank. Cells are annotated up to 20 classes.
    """
    counts = to_numpy(matrix).astype(np.float64)
    k = counts.shape[0]
    if counts.shape != (k, k):
        raise ValueError(f"confusion matrix must be square (K, K), got shape {counts.shape}")
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise ValueError(f"{len(names)} class names for a {k}-class confusion matrix")
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.where(totals > 0, counts / totals, np.nan)

    side = min(4 + 0.4 * k, 16)
    fig = Figure(figsize=(side + 1, side), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, label="fraction of the true class")
    ax.set_xticks(range(k), names, rotation=90 if k > 6 else 0)
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix (row-normalised)")
    if k <= 20:
        for i, j in np.ndindex(k, k):
            if not np.isnan(rates[i, j]):
                colour = "white" if rates[i, j] > 0.5 else "black"
                ax.text(
                    j, i, f"{rates[i, j]:.2f}", ha="center", va="center", color=colour, fontsize=7
                )
    return fig


def plot_overlays(
    images: Sequence[ArrayLike],
    targets: Sequence[ArrayLike],
    preds: Sequence[ArrayLike],
    palette: ArrayLike,
    class_names: Sequence[str] | None = None,
    ignore_index: int | None = 255,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> Figure:
    """One row per sample: image | ground truth | prediction, masks in ``palette``.

    Images as :func:`to_rgb` takes them (``mean``/``std`` undo a normalisation); targets and
    predictions are (H, W) class indices (tensors of a batch iterate as such). The legend lists
    the classes that appear, and "ignore" when some pixels are ignored.
    """
    if not len(images) == len(targets) == len(preds) > 0:
        raise ValueError(
            f"need as many images, targets and predictions (at least one), got "
            f"{len(images)}, {len(targets)} and {len(preds)}"
        )
    colours = as_palette(palette)
    fig = Figure(figsize=(9, 3 * len(images) + 0.6), layout="constrained")
    axes = fig.subplots(len(images), 3, squeeze=False)
    present: set[int] = set()
    ignored = False
    for row, (image, target, pred) in enumerate(zip(images, targets, preds, strict=True)):
        panels = [
            (to_rgb(image, mean, std), "image"),
            (colorize(target, colours, ignore_index), "ground truth"),
            (colorize(pred, colours, ignore_index), "prediction"),
        ]
        for ax, (picture, title) in zip(axes[row], panels, strict=True):
            ax.imshow(picture, interpolation="nearest")
            ax.set_xticks([])  # the frame stays, so white ignored borders remain visible
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title)
        for mask in (to_numpy(target), to_numpy(pred)):
            ignored |= bool((mask == ignore_index).any())
            present.update(int(v) for v in np.unique(mask) if v != ignore_index)
    names = list(class_names) if class_names is not None else [str(i) for i in range(len(colours))]
    handles = [Patch(color=colours[c] / 255, label=names[c]) for c in sorted(present)]
    if ignored:
        handles.append(
            Patch(facecolor=np.array(IGNORE_COLOR) / 255, edgecolor="0.5", label="ignore")
        )
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6), fontsize=8)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 100) -> Path:
    """Write ``fig`` to ``path`` atomically (temporary file, fsync, rename); the format follows
    the suffix. Parent folders are created. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = path.suffix.lstrip(".").lower() or None
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            fig.savefig(stream, format=fmt, dpi=dpi)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
