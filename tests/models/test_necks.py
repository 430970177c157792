"""The feature pyramid against its formula, its levels and strides, and the features it picks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fcnlab.models.necks import FPN, pick_features


def test_pick_features_takes_the_deepest_at_each_stride() -> None:
    # VGG with fc6/fc7: pool5 and fc7 are both at 32; fc7 (the last) is C5.
    assert pick_features([2, 4, 8, 16, 32, 32], (8, 16, 32)) == [2, 3, 5]
    with pytest.raises(ValueError, match=r"reductions \[8, 16, 32\].*are \[2, 4, 8, 16, 16\]"):
        pick_features([2, 4, 8, 16, 16], (8, 16, 32))


def identity_convs(fpn: FPN) -> None:
    """Lateral 1x1 and output 3x3 convolutions that pass their input through unchanged."""
    with torch.no_grad():
        for conv in [*fpn.lateral, *fpn.output]:
            conv.weight.zero_()
            k = conv.kernel_size[0] // 2
            for c in range(conv.out_channels):
                conv.weight[c, c, k, k] = 1.0


def test_top_down_sums_match_the_formula() -> None:
    fpn = FPN([2, 2, 2], [8, 16, 32], channels=2, extra=0)
    identity_convs(fpn)
    c3, c4, c5 = torch.randn(1, 2, 7, 9), torch.randn(1, 2, 4, 5), torch.randn(1, 2, 2, 3)
    p3, p4, p5 = fpn([c3, c4, c5])
    # P5 = C5; P4 = C4 + nearest(P5) at C4's size; P3 = C3 + nearest(P4).
    expected_p4 = c4 + F.interpolate(c5, size=(4, 5), mode="nearest")
    torch.testing.assert_close(p5, c5)
    torch.testing.assert_close(p4, expected_p4)
    torch.testing.assert_close(p3, c3 + F.interpolate(expected_p4, size=(7, 9), mode="nearest"))


def test_levels_strides_and_extra_levels() -> None:
    features = [torch.randn(1, 4, 32, 32), torch.randn(1, 8, 16, 16), torch.randn(1, 12, 8, 8),
                torch.randn(1, 16, 4, 4), torch.randn(1, 16, 2, 2)]  # fmt: skip
    fpn = FPN([4, 8, 12, 16, 16], [2, 4, 8, 16, 32], channels=6)
    assert fpn.feature_index == [2, 3, 4] and fpn.strides == (8, 16, 32, 64, 128)
    levels = fpn(features)
    assert [p.shape[-2:] for p in levels] == [(8, 8), (4, 4), (2, 2), (1, 1), (1, 1)]
    assert all(p.shape[:2] == (1, 6) for p in levels) and fpn.out_channels == 6
    # P7 is a stride-2 convolution of ReLU(P6), not of P6.
    torch.testing.assert_close(levels[4], fpn.extra[1](F.relu(levels[3])))
    assert isinstance(fpn.extra[0], nn.Conv2d) and fpn.extra[0].stride == (2, 2)
    coarse = FPN([4, 8, 12, 16, 16], [2, 4, 8, 16, 32], strides=(16, 32), channels=6, extra=1)
    assert coarse.strides == (16, 32, 64) and len(coarse(features)) == 3


def test_channels_and_reductions_must_pair_up() -> None:
    with pytest.raises(ValueError, match=r"out_channels \[4, 8\] and reductions \[8, 16, 32\]"):
        FPN([4, 8], [8, 16, 32])
