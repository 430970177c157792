"""Pictures: training-run plots (``fcnlab.viz.plots``) and lesson figures (``viz.lesson``)."""

from __future__ import annotations

from fcnlab.viz.plots import (
    colorize,
    overlay,
    plot_confusion,
    plot_curves,
    plot_overlays,
    save_figure,
    to_rgb,
)

__all__ = [
    "colorize",
    "overlay",
    "plot_confusion",
    "plot_curves",
    "plot_overlays",
    "save_figure",
    "to_rgb",
]
