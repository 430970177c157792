"""Models that deploy as their raw outputs: the ONNX graph of a model that decodes its own
forward's outputs (detectors, instance segmentation models), and the exported file run as that
model.

The graph returns the model's raw forward outputs by name, whatever ``forward`` returns (a
task's ``deploy`` module says what each holds), so that thresholds, top-k and NMS stay options
of decoding rather than constants frozen into the graph. :class:`OnnxArchitecture` runs the file
with onnxruntime and decodes with the PyTorch architecture's own ``decode``: the architecture is
rebuilt from the recipe in the file's metadata on the meta device (no weights, no memory), since
decoding reads only its configuration (classes, strides, grids), never a parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
# The meaning of an output that its task's deploy module does not describe.
UNDOCUMENTED = "see the model's forward"
# What the tasks read of a model besides forward and decode, copied from the architecture
# where it has them: its task, its classes, the stride of its masks' cells.
ARCHITECTURE_ATTRIBUTES = ("task", "num_classes", "mask_stride")

Describe = Callable[[Mapping[str, torch.Tensor]], dict[str, str]]


def raw_outputs_graph(model: nn.Module, describe: Describe) -> ExportGraph:
    """Every output of ``model``'s forward, by name and in its order, as the graph's outputs,
    traced at ``SAMPLE_SIZE``; ``describe`` maps the outputs of one zero image of that size to
    each output's meaning (the metadata's ``output``)."""
    sample = torch.zeros(1, 3, *SAMPLE_SIZE, device=model_device(model))
    with torch.no_grad():
        outputs = model(sample)
    names = tuple(outputs)
    layout = describe(outputs)
    return ExportGraph(NamedOutputs(model, names), names, layout, SAMPLE_SIZE)


def described(meanings: Mapping[str, str]) -> Describe:
    """``describe`` for :func:`raw_outputs_graph` by the outputs' names alone."""
    return lambda outputs: {name: meanings.get(name, UNDOCUMENTED) for name in outputs}


class OnnxArchitecture(nn.Module):
    """A model exported by ``fcnlab export --format onnx`` (a detector, an instance segmentation
    model), used as its PyTorch model is: ``forward`` runs the file with onnxruntime on the CPU
    and returns its outputs by name, ``decode`` is the architecture's own, and ``task``,
    ``num_classes`` and ``mask_stride`` (where it has one) are the architecture's. It has no
    parameters (so it stays on the CPU); ``threads`` are onnxruntime's intra-op threads
    (default: one per physical core)."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        super().__init__()
        self.onnx = OnnxModel(path, threads=threads)
        self.metadata = self.onnx.metadata
        with torch.device("meta"):
            architecture = build_model_from_config(self.metadata.model_config())
        for name in ARCHITECTURE_ATTRIBUTES:
            if hasattr(architecture, name):
                setattr(self, name, getattr(architecture, name))
        # The bound method, not the module: a meta-device submodule could not follow .to().
        self.architecture_decode = architecture.decode

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Normalised images (N, 3, H, W) -> the graph's outputs (CPU tensors) by name."""
        return self.onnx.outputs(images)

    def decode(
        self, outputs: Mapping[str, torch.Tensor], image_size: Sequence[int], **options: Any
    ) -> list[dict[str, torch.Tensor]]:
        """The architecture's ``decode(outputs, image_size, **options)``: per image a detector's
        {"boxes" (K, 4) xyxy input pixels, "scores" (K,), "labels" (K,)}, an instance model's
        with "masks" (K, h, w) probabilities at ``mask_stride`` besides."""
        return self.architecture_decode(outputs, image_size, **options)
