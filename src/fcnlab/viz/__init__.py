"""Pictures: training-run plots (``fcnlab.viz.plots``), boxes and precision-recall curves
(``viz.detection``) and lesson figures (``viz.lesson``)."""

from __future__ import annotations

from fcnlab.viz.boxes import draw_detections, plot_detections, plot_pr_curves
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
    "draw_detections",
    "overlay",
    "plot_confusion",
    "plot_curves",
    "plot_detections",
    "plot_overlays",
    "plot_pr_curves",
    "save_figure",
    "to_rgb",
]
