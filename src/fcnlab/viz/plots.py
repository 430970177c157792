"""Pictures of a training run: curves, confusion matrix and prediction overlays.

Every ``plot_*`` function returns a :class:`matplotlib.figure.Figure` built without pyplot (no
global figure state, nothing to close, rendered by Agg when saved); :func:`save_figure` writes it
atomically. Masks are coloured by :mod:`fcnlab.viz.colours`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from fcnlab.runtime.checkpoint import atomic_write
from fcnlab.viz.colours import IGNORE_COLOR, ArrayLike, as_palette, colorize, to_numpy, to_rgb

Boundaries = Sequence[int] | Sequence[tuple[int, str]] | None


def stage_label(stage: Any) -> str:
    """A stage's label in plots and facts: ``"stage 1"`` for index 0, a name as it is."""
    # The engine logs 0-based stage indices and prints them 1-based; names are kept as they are.
    return f"stage {stage + 1}" if isinstance(stage, int) else str(stage)


def _stage_boundaries(records: Sequence[Mapping[str, Any]]) -> list[tuple[int, str]]:
    """(first step, label) of each stage in the step-ordered records: a ``"kind": "stage"``
    record says where its stage starts; without one (logs written before the engine wrote them)
    a stage starts the step after the previous stage's last record, which the engine always
    logs, and the first stage at its first record."""
    found: list[tuple[int, str]] = []
    last_step = 0
    for record in records:
        if "stage" not in record:
            continue
        label, step = stage_label(record["stage"]), int(record["step"])
        if not found or found[-1][1] != label:
            found.append((last_step + 1 if found else step, label))
        if record.get("kind") == "stage":
            found[-1] = (step, label)
        last_step = step
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
    ``stage_boundaries`` are steps, or (step, label) pairs, where a stage starts (its first
    step); by default they are read from the records: ``"kind": "stage"`` records, else where the
    ``"stage"`` value (a name, or a 0-based index labelled "stage 1", "stage 2", ...) changes.
    Each is a dashed vertical line.
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
    """Write ``fig`` to ``path`` atomically (:func:`fcnlab.runtime.atomic_write`: temporary
    file, fsync, rename; the umask's mode); the format follows the suffix. Parent folders are
    created. Returns the path."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or None
    return atomic_write(path, lambda stream: fig.savefig(stream, format=fmt, dpi=dpi))
