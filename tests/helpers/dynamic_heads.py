"""CondInst's dynamic mask heads written out by hand, as references for the batched version."""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F


def heads_by_hand(
    params: torch.Tensor, in_channels: int, channels: int = 8, layers: int = 3
) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    """Each instance's (weight (out, in, 1, 1), bias (out,)) per layer, cut from its vector in
    AdelaiDet's order (``parse_dynamic_params``): all weights layer after layer, then all
    biases."""
    widths = [in_channels] + [channels] * (layers - 1) + [1]
    heads = []
    for vector in params:
        offset, weights, biases = 0, [], []
        for inp, out in pairwise(widths):
            weights.append(vector[offset : offset + out * inp].reshape(out, inp, 1, 1))
            offset += out * inp
        for out in widths[1:]:
            biases.append(vector[offset : offset + out])
            offset += out
        assert offset == len(vector)
        heads.append(list(zip(weights, biases, strict=True)))
    return heads


def run_head(x: torch.Tensor, head: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """One instance's head on its inputs (1, C, h, w): F.conv2d per layer, ReLU between."""
    for k, (weight, bias) in enumerate(head):
        x = F.conv2d(x, weight, bias)
        x = F.relu(x) if k < len(head) - 1 else x
    return x
