from __future__ import annotations

import pytest
import torch

from fcnlab.ops import bilinear_kernel, interpolation_kernel, interpolation_taps, kernel_origin


def test_bilinear_x2_align_corners_is_the_lecture_kernel() -> None:
    expected = torch.tensor(
        [[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]], dtype=torch.float64
    )
    assert torch.equal(interpolation_kernel("bilinear", 2, align_corners=True), expected)


def test_bilinear_x2_half_pixel_is_fcn_kernel() -> None:
    taps = torch.tensor([0.25, 0.75, 0.75, 0.25], dtype=torch.float64)
    assert torch.equal(interpolation_kernel("bilinear", 2), torch.outer(taps, taps))
    assert torch.equal(bilinear_kernel(2), torch.outer(taps, taps))


def test_bilinear_kernel_factor_three() -> None:
    taps = torch.tensor([1 / 3, 2 / 3, 1.0, 2 / 3, 1 / 3], dtype=torch.float64)
    torch.testing.assert_close(bilinear_kernel(3), torch.outer(taps, taps))


@pytest.mark.parametrize("factor", [1, 2, 3, 4, 5, 8])
def test_bilinear_kernel_matches_interpolation_kernel(factor: int) -> None:
    # FCN's initialisation is the half-pixel bilinear interpolation filter, size 2f - f % 2.
    kernel = bilinear_kernel(factor)
    assert kernel.shape == (2 * factor - factor % 2,) * 2
    torch.testing.assert_close(kernel, interpolation_kernel("bilinear", factor))


def test_nearest_is_a_box() -> None:
    assert torch.equal(interpolation_kernel("nearest", 3), torch.ones(3, 3, dtype=torch.float64))


def test_bicubic_taps_are_keys_with_a_minus_075() -> None:
    # x2 half-pixel: offsets (d - 0.5) / 2 for d = -3..4 -> |t| in {1.75, 1.25, 0.75, 0.25}.
    def keys(t: float, a: float = -0.75) -> float:
        t = abs(t)
        if t <= 1:
            return (a + 2) * t**3 - (a + 3) * t**2 + 1
        return a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a if t < 2 else 0.0

    expected = torch.tensor([keys((d - 0.5) / 2) for d in range(4, -4, -1)], dtype=torch.float64)
    torch.testing.assert_close(interpolation_taps("bicubic", 2), expected)


@pytest.mark.parametrize("mode", ["nearest", "bilinear", "bicubic"])
@pytest.mark.parametrize("factor", [2, 3, 4])
def test_each_output_phase_sums_to_one(mode: str, factor: int) -> None:
    # Every output pixel is a weighted average of inputs: the taps of each phase sum to 1.
    taps = interpolation_taps(mode, factor)
    sums = [taps[phase::factor].sum().item() for phase in range(factor)]
    assert sums == pytest.approx([1.0] * factor)


def test_kernel_origin_conventions() -> None:
    assert kernel_origin(4, 2) == 2
    assert kernel_origin(5, 3) == 3
    assert kernel_origin(3, 2, align_corners=True) == 1


def test_bad_arguments_are_value_errors() -> None:
    with pytest.raises(ValueError, match="mode must be one of"):
        interpolation_kernel("area", 2)
    with pytest.raises(ValueError, match="only valid for 'bilinear' and 'bicubic'"):
        interpolation_kernel("nearest", 2, align_corners=True)
    with pytest.raises(ValueError, match="integer >= 1"):
        interpolation_kernel("bilinear", 0)
    with pytest.raises(ValueError, match="integer >= 1"):
        bilinear_kernel(2.5)  # type: ignore[arg-type]
