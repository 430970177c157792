"""Detectors that deploy: the ONNX graph of a detector and the exported file run as a detector.

The graph returns the detector's raw head outputs by name, whatever ``forward`` returns (FCOS:
``cls_logits``, ``ltrb``, ``centerness``, ``points``, ``level``; CenterNet: ``heatmap``,
``size``, ``offset``; see :data:`OUTPUT_MEANINGS`), so that thresholds, top-k and NMS stay
options of decoding rather than constants frozen into the graph. :class:`OnnxDetector` runs the
file with onnxruntime and decodes with the PyTorch architecture's own ``decode``: the
architecture is rebuilt from the recipe in the file's metadata on the meta device (no weights,
no memory), since decoding reads only its configuration (classes, strides), never a parameter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fcnlab.inference.export import ExportGraph, NamedOutputs
from fcnlab.inference.onnx_backend import OnnxModel
from fcnlab.models.from_config import build_model_from_config
from fcnlab.runtime.precision import model_device

# The exporter traces at this (H, W): every level of a stride-128 pyramid (FCOS's P7) is at
# least 2 x 2 there, and height and width differ.
SAMPLE_SIZE = (224, 256)
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


def detector_graph(model: nn.Module) -> ExportGraph:
    """Every output of ``model``'s forward, by name and in its order, as the graph's outputs."""
    sample = torch.zeros(1, 3, *SAMPLE_SIZE, device=model_device(model))
    with torch.no_grad():
        names = tuple(model(sample))
    layout = {name: OUTPUT_MEANINGS.get(name, "see the model's forward") for name in names}
    return ExportGraph(NamedOutputs(model, names), names, layout, SAMPLE_SIZE)


class OnnxDetector(nn.Module):
    """A detector exported by ``fcnlab export --format onnx``, used as its PyTorch model is:
    ``forward`` runs the file with onnxruntime on the CPU and returns its outputs by name,
    ``decode`` is the architecture's own. It has no parameters (so it stays on the CPU);
    ``threads`` are onnxruntime's intra-op threads (default: one per physical core)."""

    task = "detection"

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        super().__init__()
        self.onnx = OnnxModel(path, threads=threads)
        self.metadata = self.onnx.metadata
        with torch.device("meta"):
            architecture = build_model_from_config(self.metadata.model_config())
        self.num_classes = self.metadata.num_classes
        # The bound method, not the module: a meta-device submodule could not follow .to().
        self.architecture_decode = architecture.decode

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Normalised images (N, 3, H, W) -> the graph's outputs (CPU tensors) by name."""
        return self.onnx.outputs(images)

    def decode(
        self, outputs: Mapping[str, torch.Tensor], image_size: Sequence[int], **options: Any
    ) -> list[dict[str, torch.Tensor]]:
        """The architecture's ``decode(outputs, image_size, **options)``: per image
        {"boxes" (K, 4) xyxy input pixels, "scores" (K,), "labels" (K,)}."""
        return self.architecture_decode(outputs, image_size, **options)
