"""Detectors that deploy: the ONNX graph of a detector and the exported file run as a detector.

The graph returns the detector's raw head outputs by name (FCOS: ``cls_logits``, ``ltrb``,
``centerness``, ``points``, ``level``; CenterNet: ``heatmap``, ``size``, ``offset``; see
:data:`OUTPUT_MEANINGS`), and :class:`OnnxDetector` runs the file with onnxruntime and decodes
with the architecture's own ``decode``. Both are the machinery detectors share with instance
segmentation models (:mod:`fcnlab.tasks.deploy`); what is the detectors' own is written here.
"""

from __future__ import annotations

from torch import nn

from fcnlab.inference.export import ExportGraph
from fcnlab.tasks.deploy import OnnxArchitecture, described, raw_outputs_graph

# What each raw output holds; N images of H x W input pixels, C classes, L locations.
OUTPUT_MEANINGS = {
    "cls_logits": "(N, L, C) float32 class logits of every location, pyramid level after "
    "level, each row-major (sigmoid: probabilities)",
    "ltrb": "(N, L, 4) float32 distances in input pixels from each location to the box's "
    "left, top, right and bottom sides",
    "centerness": "(N, L) float32 centre-ness logits of every location (sigmoid)",
    "points": "(L, 2) float32 input-pixel (x, y) of every location",
    "level": "(L,) int64 pyramid level of every location (0: the finest, stride 8)",
    "heatmap": "(N, C, h, w) float32 class heatmap logits at stride 4, h = ceil(H / 4), "
    "w = ceil(W / 4) (sigmoid; an object is a 3 x 3 local maximum)",
    "size": "(N, 2, h, w) float32 box width and height in cells (x 4: input pixels)",
    "offset": "(N, 2, h, w) float32 sub-cell (dx, dy) of the box centre: centre = "
    "(x + dx, y + dy) x 4 input pixels",
}

#: A detector's export run as the detector (``forward`` by onnxruntime, the architecture's
#: ``decode``): the class that serves instance segmentation models too.
OnnxDetector = OnnxArchitecture


def detector_graph(model: nn.Module) -> ExportGraph:
    """Every output of ``model``'s forward, by name and in its order, as the graph's outputs."""
    return raw_outputs_graph(model, described(OUTPUT_MEANINGS))
