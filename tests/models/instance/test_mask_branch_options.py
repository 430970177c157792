"""MaskBranch's SOLOv2 options: upsampling stacks per level, coordinate channels on the coarsest
level, a normalised output, against the authors' construction written out with PyTorch's ops."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fcnlab.models.blocks import group_norm
from fcnlab.models.instance.mask_branch import MaskBranch, coordinate_channels

STRIDES = (4, 8, 16, 32)


def solov2_branch(in_channels: int = 8, channels: int = 8, out_channels: int = 6) -> MaskBranch:
    torch.manual_seed(0)
    return MaskBranch(
        in_channels, STRIDES, channels, out_channels, depth=0, norm=group_norm,
        upsample_stacks=True, coordinates=True, output_norm=True,
    ).eval()  # fmt: skip


def test_coordinate_channels_by_hand() -> None:
    x = torch.zeros(2, 5, 2, 3)
    coordinates = coordinate_channels(x)
    assert coordinates.shape == (2, 2, 2, 3)
    assert coordinates[1, 0].tolist() == [[-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0]]
    assert coordinates[1, 1].tolist() == [[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]
    assert coordinate_channels(torch.zeros(1, 1, 1, 1)).tolist() == [[[[-1.0]], [[-1.0]]]]


class WithCoordinates(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((x, coordinate_channels(x)), dim=1)


def test_coordinate_channels_follow_the_size_in_an_exported_graph() -> None:
    # torch.export would fix a traced linspace's length to the sample's.
    dynamic = ({0: torch.export.Dim.AUTO, 2: torch.export.Dim.AUTO, 3: torch.export.Dim.AUTO},)
    sample = torch.zeros(2, 1, 5, 7)
    program = torch.export.export(WithCoordinates(), (sample,), dynamic_shapes=dynamic)
    for size in ((5, 7), (9, 4), (1, 3)):
        x = torch.rand(3, 1, *size)
        y, x_range = torch.meshgrid(
            torch.linspace(-1, 1, size[0]), torch.linspace(-1, 1, size[1]), indexing="ij"
        )
        torch.testing.assert_close(
            program.module()(x)[:, 1:], torch.stack((x_range, y)).expand(3, -1, -1, -1)
        )


def test_layers_of_the_solov2_branch() -> None:
    branch = solov2_branch()
    # P2 and P3 one convolution each, P4 two, P5 three: each x2 step has its own convolution.
    assert [len(stack) for stack in branch.refine] == [1, 1, 2, 3]
    firsts = [stack[0][0] for stack in branch.refine]
    assert [c.in_channels for c in firsts] == [8, 8, 8, 8 + 2]  # coordinates on P5 only
    convs = [m for m in branch.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 7 + 1 and all(c.bias is None for c in convs)
    assert convs[-1].kernel_size == (1, 1) and convs[-1].out_channels == 6
    assert isinstance(branch.tower[-2], nn.GroupNorm) and isinstance(branch.tower[-1], nn.ReLU)
    assert sum(isinstance(m, nn.GroupNorm) for m in branch.modules()) == 8


def authors_branch(branch: MaskBranch, levels: list[torch.Tensor]) -> torch.Tensor:
    """The authors' MaskFeatHead on exact-double sizes: P5 with torch.meshgrid(linspace) x, y
    channels; each conv unit of a level followed by nn.Upsample(2, bilinear, align_corners=False)
    except P2's; the sum; the 1x1 conv-GN-ReLU."""
    n, _, h, w = levels[-1].shape
    y, x = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    coordinates = torch.stack((x, y))[None].expand(n, -1, -1, -1)
    levels = [*levels[:-1], torch.cat((levels[-1], coordinates), dim=1)]
    upsample = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
    total = branch.refine[0](levels[0])
    for k in range(1, 4):
        out = levels[k]
        for unit in branch.refine[k]:
            out = upsample(unit(out))
        total = total + out
    return branch.tower(total)


def test_matches_the_authors_construction_on_padded_sizes() -> None:
    branch = solov2_branch()
    torch.manual_seed(1)
    levels = [torch.randn(2, 8, 8 * 2 ** (3 - k), 12 * 2 ** (3 - k)) for k in range(4)]
    out = branch(levels)
    assert out.shape == (2, 6, 64, 96)
    torch.testing.assert_close(out, authors_branch(branch, levels))


def test_odd_sizes_climb_each_finer_levels_grid() -> None:
    branch = solov2_branch()
    # 67 x 93: ResNet rounds up (17x24, 9x12, 5x6, 3x3), VGG down (16x23, 8x11, 4x5, 2x2).
    for sizes in ([(17, 24), (9, 12), (5, 6), (3, 3)], [(16, 23), (8, 11), (4, 5), (2, 2)]):
        levels = [torch.randn(1, 8, h, w) for h, w in sizes]
        assert branch([*levels, torch.randn(1, 8, 1, 1)]).shape == (1, 6, *sizes[0])


def test_each_stack_step_lands_on_the_next_finer_grid() -> None:
    # Without coordinates, a P4 whose conv unit outputs a constant reaches P2 unchanged through
    # two x2 steps, whatever the rounding: the upsampled cells repeat the edge where a grid is
    # a row longer than twice the coarser one.
    branch = MaskBranch(4, STRIDES, 4, 4, depth=0, norm=group_norm, upsample_stacks=True).eval()
    sizes = [(17, 24), (9, 12), (5, 6), (3, 3)]
    seen: list[tuple[int, int]] = []
    for unit in branch.refine[2]:
        unit.register_forward_hook(lambda module, args, out: seen.append(tuple(out.shape[-2:])))
    branch([torch.randn(1, 4, h, w) for h, w in sizes])
    assert seen == [(5, 6), (9, 12)]


def test_bad_stacks_are_refused() -> None:
    with pytest.raises(
        ValueError, match=r"upsample_stacks needs strides that double .*\[4, 8, 32\]"
    ):
        MaskBranch(8, (4, 8, 32), upsample_stacks=True)


def test_condinst_defaults_are_unchanged() -> None:
    # The options are off by default: one refining conv per level, a plain 1x1 output with bias.
    branch = MaskBranch(8)
    assert [len(r) for r in branch.refine] == [3, 3, 3]  # conv, batch norm, ReLU
    assert branch.refine[2][0].in_channels == 8
    assert isinstance(branch.tower[-1], nn.Conv2d) and branch.tower[-1].bias is not None
    levels = [torch.randn(1, 8, 8, 8), torch.randn(1, 8, 4, 4), torch.randn(1, 8, 2, 2)]
    branch.eval()
    expected = branch.refine[0](levels[0])
    for k, factor in ((1, 2), (2, 4)):
        up = F.interpolate(branch.refine[k](levels[k]), scale_factor=factor, mode="bilinear")
        expected = expected + up
    torch.testing.assert_close(branch(levels), branch.tower(expected))
