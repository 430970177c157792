"""CondInst's dynamic mask head: a tiny fully convolutional network whose weights are predicted
per instance, applied to the shared mask features plus two relative-coordinate channels.

Pure functions (tensors in, tensors out). The 1x1 layers are batched matrix products (one
``einsum`` per layer over all instances at once), not a grouped convolution whose group count
is the number of instances: the graph's shape then never depends on the data, so it exports.

Parameter layout of one instance's vector (AdelaiDet's ``parse_dynamic_params``, so its trained
controllers map one to one): all weights, layer after layer, each (out, in) row-major, then all
biases. The paper's head, 8 + 2 inputs, 8, 8 and 1 channels: 80 + 64 + 8 weights and
8 + 8 + 1 biases, 169 parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
import torch.nn.functional as F

from fcnlab.models.detection.targets import fcos_locations

# Input channels the relative coordinates add to the mask features: (x, y).
COORDINATE_CHANNELS = 2


def dynamic_layer_shapes(
    in_channels: int, channels: int = 8, layers: int = 3
) -> list[tuple[int, int]]:
    """(out, in) of each 1x1 layer: ``in_channels`` -> ``channels`` ... -> 1 mask logit."""
    if layers < 1 or in_channels < 1 or channels < 1:
        raise ValueError(
            f"a dynamic mask head needs layers, in_channels and channels >= 1, got {layers}, "
            f"{in_channels} and {channels}"
        )
    widths = [in_channels] + [channels] * (layers - 1) + [1]
    return [(out, inp) for inp, out in pairwise(widths)]


def dynamic_params_count(in_channels: int, channels: int = 8, layers: int = 3) -> int:
    """Parameters per instance of a head on ``in_channels`` inputs (169 for 10, 8, 3)."""
    return sum(out * inp + out for out, inp in dynamic_layer_shapes(in_channels, channels, layers))


def split_dynamic_params(
    params: torch.Tensor, in_channels: int, channels: int = 8, layers: int = 3
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(N, P) parameter vectors -> weights [(N, out, in), ...] and biases [(N, out), ...]."""
    shapes = dynamic_layer_shapes(in_channels, channels, layers)
    expected = dynamic_params_count(in_channels, channels, layers)
    if params.dim() != 2 or params.shape[1] != expected:
        raise ValueError(
            f"a dynamic mask head of {layers} layers of {channels} channels on {in_channels} "
            f"inputs needs (N, {expected}) parameters, got {tuple(params.shape)}"
        )
    sizes = [out * inp for out, inp in shapes] + [out for out, _ in shapes]
    parts = params.split(sizes, dim=1)
    n = len(params)
    weights = [
        p.reshape(n, out, inp) for p, (out, inp) in zip(parts[: len(shapes)], shapes, strict=True)
    ]
    return weights, list(parts[len(shapes) :])


def dynamic_mask_head(
    features: torch.Tensor, params: torch.Tensor, channels: int = 8, layers: int = 3
) -> torch.Tensor:
    """Mask logits (N, 1, h, w) of N instances, each its own head on its own inputs.

    ``features`` (N, C_in, h, w) are each instance's inputs (relative coordinates and the
    image's mask features, see ``dynamic_head_inputs``); ``params`` (N, P) each instance's
    head. ``layers`` 1x1 layers of ``channels`` channels with ReLU between them, the last with
    one output. A 1x1 convolution is a matrix product over the channels at every pixel.
    """
    n, c, h, w = features.shape
    weights, biases = split_dynamic_params(params, c, channels, layers)
    x = features.reshape(n, c, h * w)
    for k, (weight, bias) in enumerate(zip(weights, biases, strict=True)):
        x = torch.einsum("noi,nip->nop", weight, x) + bias[:, :, None]
        if k < layers - 1:
            x = F.relu(x)
    return x.reshape(n, 1, h, w)


def relative_coordinates(
    locations: torch.Tensor, scales: torch.Tensor, size: Sequence[int], stride: int
) -> torch.Tensor:
    """(N, 2, h, w): each instance's location minus every cell's centre, over its scale.

    ``locations`` (N, 2) are the (x, y) input pixels of the locations that predicted the
    instances, ``scales`` (N,) their levels' sizes of interest; the grid of ``size`` (h, w)
    cells at ``stride`` has its cell centres where ``fcos_locations`` puts a level's locations
    (``x s + s // 2``). Channel 0 is x, channel 1 y (AdelaiDet's order and sign).
    """
    h, w = (int(v) for v in size)
    centres, _ = fcos_locations([(h, w)], [stride], locations.device)  # (h w, 2)
    offsets = locations[:, None, :].to(centres) - centres[None]  # (N, h w, 2)
    offsets = offsets / scales.to(centres)[:, None, None]
    return offsets.transpose(1, 2).reshape(len(locations), COORDINATE_CHANNELS, h, w)


def dynamic_head_inputs(
    mask_features: torch.Tensor,
    image: torch.Tensor,
    locations: torch.Tensor,
    scales: torch.Tensor,
    stride: int,
) -> torch.Tensor:
    """Inputs (N, 2 + C, h, w) of N instances' heads: relative coordinates, then the mask
    features (B, C, h, w) at ``stride`` of the image each instance is in (``image`` (N,))."""
    coordinates = relative_coordinates(locations, scales, mask_features.shape[-2:], stride)
    return torch.cat((coordinates.to(mask_features), mask_features[image]), dim=1)
