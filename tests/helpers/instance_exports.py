"""Narrow CondInst and SOLOv2 models whose instances are spread out, for the tests of instance
models exported to ONNX and run with onnxruntime."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fcnlab.config import ModelConfig
from fcnlab.models.from_config import build_model_from_config

# Narrow recipes on VGG-16-BN, whose floor-mode pools leave odd sizes a row and a column short
# at every stage (the sizes the graph must not freeze).
RECIPES: dict[str, dict[str, Any]] = {
    "condinst": {"encoder_options": {"width": 0.125}, "fpn_channels": 32, "head_depth": 1,
                 "mask_branch_channels": 16, "mask_branch_depth": 2},
    "solov2": {"encoder_options": {"width": 0.125}, "fpn_channels": 32, "head_channels": 32,
               "head_depth": 1, "mask_channels": 16, "mask_branch_channels": 16},
}  # fmt: skip
ENCODER = "vgg16_bn"
# (height, width) of the odd sizes, neither a multiple of the encoders' stride, at which
# onnxruntime's instances are compared with PyTorch's. SOLOv2's are at least 96 pixels: below, P5
# has at most 2 rows (or columns) and P6 (P5 every second cell) one, so the 12 x 12 grid that
# reads P6 is constant along that axis and its cells tie; points NMS compares neighbours for
# equality, so which of the tied cells are peaks is decided by the last bit, which onnxruntime
# and PyTorch round differently (their raw outputs agree there all the same).
ODD_SIZES = {"condinst": ((67, 93), (45, 77)), "solov2": ((99, 133), (113, 97))}
# How far onnxruntime's boxes may be from PyTorch's, in input pixels: CondInst's boxes are FCOS's
# regression; SOLOv2's are its pasted masks' boxes, which a pixel differing on a mask's edge
# moves by one.
BOX_TOLERANCE = {"condinst": 1e-3, "solov2": 1.0}
# SOLOv2's category bias in the spread model: a prior of 0.03 (sigmoid(-3.5)), under which a few
# dozen (cell, class) pairs per image pass the decode's 0.1 threshold, as a trained model's do.
# With every cell near 0.5, thousands would: masks thresholded at 0.5 in thousands of candidates
# and hundreds of near-equal scores ranked turn rounding differences into different instances.
SOLOV2_CATE_BIAS = -3.5


def instance_model_config(name: str, num_classes: int) -> ModelConfig:
    """The recipe of the narrow ``name`` ("condinst" or "solov2") for ``num_classes``."""
    return ModelConfig(name=name, num_classes=num_classes, encoder=ENCODER, options=RECIPES[name])


def spread_instance_model(name: str, num_classes: int, seed: int = 1) -> nn.Module:
    """The narrow ``name`` in eval mode, initialised and then every weight moved by 0.05 N(0, 1)
    from ``seed`` (the global generator is left as it was), so that its scores spread out instead
    of tying at their initial values; SOLOv2's category bias is ``SOLOV2_CATE_BIAS`` before
    that."""
    with torch.random.fork_rng():  # the initial weights too depend on ``seed`` alone
        torch.manual_seed(seed)
        model = build_model_from_config(instance_model_config(name, num_classes)).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if name == "solov2":
            model.head.cate_logits.bias.fill_(SOLOV2_CATE_BIAS)
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    return model
