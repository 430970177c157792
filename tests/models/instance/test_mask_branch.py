"""The mask-feature branch: shapes at odd sizes, its layers, cells aligned across strides."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fcnlab.models.blocks import group_norm
from fcnlab.models.instance.mask_branch import MaskBranch, upsample_cells


def cell_centres(cells: int, stride: int) -> torch.Tensor:
    """x of each cell's centre in input pixels: cell x covers [x s, (x+1) s)."""
    return (torch.arange(cells) + 0.5) * stride


@pytest.mark.parametrize("factor", [2, 4])
def test_upsampled_cells_keep_their_input_positions(factor: int) -> None:
    # A map holding each coarse cell's centre (input pixels), stride 32: bilinear interpolation
    # reproduces a linear function exactly, so every fine cell away from the border must read
    # its own centre at stride 32 / factor.
    coarse = cell_centres(5, 32).expand(1, 1, 3, 5)
    fine = upsample_cells(coarse, factor, (3 * factor, 5 * factor))
    expected = cell_centres(5 * factor, 32 // factor)
    inner = slice(factor // 2, 5 * factor - factor // 2)
    torch.testing.assert_close(fine[0, 0, 0, inner], expected[inner])


def test_upsampled_cells_are_cropped_or_extended_to_the_finer_grid() -> None:
    coarse = torch.arange(6.0).reshape(1, 1, 2, 3)
    longer = upsample_cells(coarse, 2, (5, 7))  # floor-rounding encoders: one short, extended
    assert longer.shape == (1, 1, 5, 7)
    torch.testing.assert_close(longer[..., 4, :], longer[..., 3, :])
    torch.testing.assert_close(longer[..., :, 6], longer[..., :, 5])
    shorter = upsample_cells(coarse, 2, (3, 5))  # ceil-rounding encoders: one long, cropped
    torch.testing.assert_close(shorter, upsample_cells(coarse, 2, (4, 6))[..., :3, :5])


def test_condinst_branch_at_odd_sizes() -> None:
    # P3-P5 of a 67 x 93 input with a ceil-rounding encoder (ResNet): 9x12, 5x6, 3x3.
    branch = MaskBranch(32, channels=16, out_channels=8, depth=4)
    levels = [torch.randn(2, 32, h, w) for h, w in [(9, 12), (5, 6), (3, 3), (2, 2), (1, 1)]]
    out = branch(levels)  # P6 and P7 are ignored
    assert out.shape == (2, 8, 9, 12)
    assert branch.out_stride == 8 and branch.strides == (8, 16, 32)
    # A floor-rounding encoder (VGG): 8x11, 4x5, 2x2.
    floor = [torch.randn(1, 32, h, w) for h, w in [(8, 11), (4, 5), (2, 2)]]
    assert branch(floor).shape == (1, 8, 8, 11)
    convs = [m for m in branch.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 3 + 4 + 1
    assert all(c.bias is None for c in convs[:-1]) and convs[-1].kernel_size == (1, 1)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in branch.modules()) == 7


def test_each_level_reaches_the_output_upsampled() -> None:
    torch.manual_seed(0)
    branch = MaskBranch(4, channels=4, out_channels=2, depth=0).eval()
    levels = [torch.zeros(1, 4, 16, 16), torch.zeros(1, 4, 8, 8), torch.zeros(1, 4, 4, 4)]
    base = branch(levels)
    levels[2] = levels[2].clone()
    # P5's cell (3, 3) covers input pixels [96, 128)^2; its 3x3 refining convolution spreads it
    # over cells 2-3, input [64, 128)^2, P3 cells 8-15, and bilinear taps reach half a P5 cell
    # (2 P3 cells) further.
    levels[2][0, :, 3, 3] = 5.0
    changed = (branch(levels) - base).abs().sum(1)[0]
    assert changed[8:, 8:].min() > 0
    assert changed[:6].max() == 0 and changed[:, :6].max() == 0


def test_solov2_like_configuration_builds() -> None:
    # The unified branch of SOLOv2 starts from P2 at stride 4, with GroupNorm and no tower.
    branch = MaskBranch([16, 16, 16, 16], (4, 8, 16, 32), 32, 64, depth=0, norm=group_norm)
    levels = [torch.randn(1, 16, 17, 24), torch.randn(1, 16, 9, 12), torch.randn(1, 16, 5, 6),
              torch.randn(1, 16, 3, 3)]  # fmt: skip
    assert branch(levels).shape == (1, 64, 17, 24) and branch.out_stride == 4


def test_bad_configurations_are_refused() -> None:
    with pytest.raises(ValueError, match=r"in_channels \[8, 8\] for strides \[8, 16, 32\]"):
        MaskBranch([8, 8])
    with pytest.raises(ValueError, match=r"strides \[8, 12\] must be multiples of the first"):
        MaskBranch(8, (8, 12))
    with pytest.raises(ValueError, match=r"needs 3 levels \(strides \[8, 16, 32\]\), got 2"):
        MaskBranch(8)([torch.zeros(1, 8, 4, 4), torch.zeros(1, 8, 2, 2)])
