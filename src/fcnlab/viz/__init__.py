"""Pictures: mask colours (``fcnlab.viz.colours``), training-run plots (``viz.plots``), boxes
and precision-recall curves (``viz.boxes``), instance masks (``viz.instances``) and lesson
figures (``viz.lesson``)."""

from __future__ import annotations

from fcnlab.viz.boxes import draw_detections, plot_detections, plot_pr_curves
from fcnlab.viz.colours import colorize, overlay, to_rgb
from fcnlab.viz.instances import draw_instances, instance_id_map, plot_instances
from fcnlab.viz.plots import plot_confusion, plot_curves, plot_overlays, save_figure

__all__ = [
    "colorize",
    "draw_detections",
    "draw_instances",
    "instance_id_map",
    "overlay",
    "plot_confusion",
    "plot_curves",
    "plot_detections",
    "plot_instances",
    "plot_overlays",
    "plot_pr_curves",
    "save_figure",
    "to_rgb",
]
