"""What ``fcnlab datasets check`` reports of a segmentation data set: class pixel frequencies
with SegNet's median-frequency weights, as a table and a bar chart."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import NullFormatter, ScalarFormatter
from rich.table import Table

from fcnlab.data import FrequencyCounter
from fcnlab.data.stats import ClassFrequencies, median_frequency_weights


def frequency_counter(dataset: object) -> FrequencyCounter:
    """A pixel counter over ``dataset``'s classes that skips its ``ignore_index``."""
    return FrequencyCounter(tuple(dataset.classes), dataset.ignore_index)  # type: ignore[attr-defined]


def frequency_table(split: str, freqs: ClassFrequencies) -> Table:
    """Class pixels, share, images and SegNet's median-frequency weight for one split."""
    table = Table(title=f"Class pixel frequencies: {split}")
    for column in ("class", "pixels", "share %", "images", "freq", "median-freq weight"):
        table.add_column(column, justify="left" if column == "class" else "right")
    present = bool(freqs.pixels.any())
    weights = median_frequency_weights(freqs).tolist() if present else [0.0] * len(freqs.classes)
    for c, name in enumerate(freqs.classes):
        table.add_row(
            name,
            str(int(freqs.pixels[c])),
            f"{100 * float(freqs.share[c]):.2f}",
            str(int(freqs.images[c])),
            f"{float(freqs.frequency[c]):.4f}",
            f"{weights[c]:.3f}",
        )
    table.caption = f"ignored pixels: {freqs.ignored} of {freqs.total}"
    return table


def plot_class_frequencies(
    splits: Sequence[tuple[str, ClassFrequencies]], palette: np.ndarray | None = None
) -> Figure:
    """Bar chart of each class's share of labelled pixels (log scale), one bar group per class
    and one bar per split (hatched differently), coloured by the data set's ``palette``."""
    checked = list(splits)
    # splits of a folder data set may imply different class counts: draw the longest list
    widest = max((freqs for _, freqs in checked), key=lambda f: len(f.classes), default=None)
    classes = widest.classes if widest else ()
    fig = Figure(figsize=(max(6.0, 0.45 * len(classes) + 2), 4.0))
    ax = fig.add_subplot()
    width = 0.8 / max(len(checked), 1)
    x = np.arange(len(classes))
    hatches = ("", "//", "..", "xx")
    for k, (_, freqs) in enumerate(checked):
        share = np.zeros(len(classes))
        share[: len(freqs.classes)] = 100 * freqs.share.numpy()
        colours = None if palette is None else np.asarray(palette)[: len(classes)] / 255.0
        ax.bar(
            x + (k - (len(checked) - 1) / 2) * width,
            share,
            width,
            color=colours,
            edgecolor="black",
            hatch=hatches[k % len(hatches)],
        )
    ax.set_xticks(x, classes, rotation=60, ha="right")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel("share of labelled pixels (%)")
    ax.set_title("Class pixel frequencies")
    if len(checked) > 1:
        handles = [
            Patch(
                facecolor="white", edgecolor="black", hatch=hatches[k % len(hatches)], label=split
            )
            for k, (split, _) in enumerate(checked)
        ]
        ax.legend(handles=handles)
    fig.tight_layout()
    return fig
