"""Instance segmentation models that deploy: the ONNX graph of CondInst or SOLOv2 is its raw
forward outputs by name, and fcnlab's post-processing is the architecture's own ``decode``
applied to onnxruntime's outputs (:class:`~fcnlab.tasks.deploy.OnnxArchitecture`, as for
detectors).

CondInst's graph returns FCOS's outputs (``cls_logits``, ``ltrb``, ``centerness``, ``points``,
``level``) plus ``controller`` and ``mask_features``; SOLOv2's ``cate_logits``, ``kernels`` and
``mask_features``. :func:`output_meanings` says what each holds, with this model's numbers
(parameters per dynamic head, sizes of interest, mask-feature channels and stride, grids) from
the model and its outputs at the tracing sample's size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from fcnlab.inference.export import ExportGraph
from fcnlab.tasks.deploy import SAMPLE_SIZE, UNDOCUMENTED, raw_outputs_graph
from fcnlab.tasks.detection.deploy import OUTPUT_MEANINGS as DETECTION_MEANINGS

# The outputs CondInst shares with FCOS, described as for detectors.
FCOS_OUTPUTS = ("cls_logits", "ltrb", "centerness", "points", "level")
# What each raw output holds; N images of H x W input pixels, C classes, L locations (CondInst)
# or grid cells (SOLOv2). The fields in braces are this model's numbers (see output_fields).
OUTPUT_MEANINGS = {
    **{key: DETECTION_MEANINGS[key] for key in FCOS_OUTPUTS},
    "controller": "(N, L, P) float32 every location's dynamic mask head, P = {params}: the "
    "weights ((out, in) row-major) of its 1x1 layers, layer after layer, then their biases "
    "(fcnlab.models.instance.dynamic). The head reads 2 channels of each mask-feature cell's "
    "position relative to the location (location minus cell centre, x then y, in input pixels "
    "divided by the location's level's size of interest, {sizes} from the finest) followed by "
    "mask_features, with ReLU between layers; its output, upsampled bilinearly to stride 4 "
    "(cell centres aligned), is the instance's mask logits (sigmoid: probabilities)",
    "mask_features": "(N, E, h, w) float32 mask features shared by an image's instances, "
    "E = {channels}, {stride} input pixels per cell (cell (x, y) covers input pixels "
    "[{stride} x, {stride} x + {stride}) x [{stride} y, {stride} y + {stride})); h, w: H / "
    "{stride}, W / {stride} rounded as the network rounds (decode crops or extends the masks "
    "by edge cells to ceil(H / 4) x ceil(W / 4))",
    "cate_logits": "(N, L, C) float32 category logits of every grid cell, L = {cells}: the "
    "S x S grids S = {grids} one after another, each row-major; cell (i, j) of grid S covers "
    "input rows [i H / S, (i + 1) H / S) and columns [j W / S, (j + 1) W / S) (sigmoid: "
    "probabilities; decode keeps 2 x 2 peaks)",
    "kernels": "(N, L, E) float32 every grid cell's dynamic 1x1 kernel (no bias) on the "
    "E = {channels} channels of mask_features: the cell's mask logits are its dot product "
    "with the features of every mask cell (sigmoid: probabilities)",
}


def output_fields(model: nn.Module, outputs: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """The numbers :data:`OUTPUT_MEANINGS` quote, from ``model``'s ``outputs`` on a
    ``SAMPLE_SIZE`` image: ``params`` per dynamic mask head and the levels' ``sizes`` of interest
    (CondInst), the mask features' ``channels`` and ``stride``, grid ``cells`` and ``grids``
    (SOLOv2's ``num_grids``)."""
    fields: dict[str, Any] = {}
    if "mask_features" in outputs:
        features = outputs["mask_features"]
        fields.update(channels=features.shape[1], stride=SAMPLE_SIZE[0] // features.shape[-2])
    if "controller" in outputs:
        sizes = getattr(model, "sizes_of_interest", ())
        fields.update(
            params=outputs["controller"].shape[-1], sizes=", ".join(f"{s:g}" for s in sizes)
        )
    if "cate_logits" in outputs:
        grids = getattr(model, "num_grids", ())
        fields.update(cells=outputs["cate_logits"].shape[1], grids=", ".join(map(str, grids)))
    return fields


def output_meanings(model: nn.Module, outputs: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """What each of ``model``'s raw ``outputs`` holds (the exported metadata's ``output``)."""
    fields = output_fields(model, outputs)
    return {
        name: OUTPUT_MEANINGS[name].format_map(fields) if name in OUTPUT_MEANINGS else UNDOCUMENTED
        for name in outputs
    }


def instance_graph(model: nn.Module) -> ExportGraph:
    """Every output of ``model``'s forward, by name and in its order, as the graph's outputs,
    described with this model's numbers."""
    return raw_outputs_graph(model, lambda outputs: output_meanings(model, outputs))
