from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers.devices import needs_cuda

from fcnlab.ops import interpolation_kernel, upsample, zero_insert

MODES = ["nearest", "bilinear", "bicubic"]
FACTORS = [2, 3, 4, 8]
METHODS = ["fast", "zero_insert"]
# Nearest has no align_corners variant (a ValueError, tested below).
MODE_CORNERS = [
    ("nearest", False),
    ("bilinear", False),
    ("bilinear", True),
    ("bicubic", False),
    ("bicubic", True),
]


def reference(x: torch.Tensor, factor: int, mode: str, align_corners: bool) -> torch.Tensor:
    if mode == "nearest":
        return F.interpolate(x, scale_factor=factor, mode="nearest")
    if align_corners:
        size = (factor * (x.shape[-2] - 1) + 1, factor * (x.shape[-1] - 1) + 1)
        return F.interpolate(x, size=size, mode=mode, align_corners=True)
    return F.interpolate(x, scale_factor=factor, mode=mode, align_corners=False)


def random_image(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("factor", FACTORS)
@pytest.mark.parametrize(("mode", "align_corners"), MODE_CORNERS)
def test_upsample_equals_interpolate(
    mode: str, factor: int, align_corners: bool, method: str
) -> None:
    x = random_image(2, 3, 5, 7)
    expected = reference(x, factor, mode, align_corners)
    result = upsample(x, factor, mode, align_corners=align_corners, method=method)
    assert result.shape == expected.shape
    torch.testing.assert_close(result, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("factor", FACTORS)
@pytest.mark.parametrize(("mode", "align_corners"), MODE_CORNERS)
def test_user_kernel_through_transpose_conv_equals_interpolate(
    mode: str, factor: int, align_corners: bool
) -> None:
    x = random_image(1, 2, 6, 4, seed=1)
    kernel = interpolation_kernel(mode, factor, align_corners)
    fast = upsample(x, factor, mode, align_corners, method="fast", kernel=kernel)
    expected = reference(x, factor, mode, align_corners)
    torch.testing.assert_close(fast, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("size", [(1, 1), (1, 5), (2, 2), (9, 3)])
@pytest.mark.parametrize("mode", MODES)
def test_tiny_and_thin_images(size: tuple[int, int], mode: str) -> None:
    x = random_image(1, 1, *size, seed=2)
    for method in METHODS:
        torch.testing.assert_close(
            upsample(x, 3, mode, method=method), reference(x, 3, mode, False), atol=1e-6, rtol=0
        )


def test_asymmetric_user_kernel_same_on_both_paths() -> None:
    x = random_image(2, 3, 5, 6, seed=3)
    kernel = random_image(5, 3, seed=4)
    fast = upsample(x, 2, method="fast", kernel=kernel)
    textbook = upsample(x, 2, method="zero_insert", kernel=kernel)
    assert fast.shape == (2, 3, 10, 12)
    torch.testing.assert_close(fast, textbook, atol=1e-12, rtol=0)


def test_zero_insert_layout() -> None:
    x = random_image(2, 3, 4, 5)
    z = zero_insert(x, 3)
    assert z.shape == (2, 3, 12, 15)
    assert torch.equal(z[..., ::3, ::3], x)
    mask = torch.ones_like(z, dtype=torch.bool)
    mask[..., ::3, ::3] = False
    assert torch.count_nonzero(z[mask]) == 0


def test_lecture_example_worked_by_hand() -> None:
    # The 4x4 grid 1..16, zeros inserted, convolved with [[.25,.5,.25],[.5,1,.5],[.25,.5,.25]]:
    # original samples stay, a sample between two is their mean, a centre is the mean of four.
    grid = torch.arange(1.0, 17.0, dtype=torch.float64).view(1, 1, 4, 4)
    result = upsample(grid, 2, "bilinear", align_corners=True, method="zero_insert")[0, 0]
    assert result.shape == (7, 7)
    assert result[0].tolist() == [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]
    assert result[1].tolist() == [3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0]
    assert result[1, 1].item() == (1 + 2 + 5 + 6) / 4
    assert result[6].tolist() == [13.0, 13.5, 14.0, 14.5, 15.0, 15.5, 16.0]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mode", MODES)
def test_gradcheck(mode: str, method: str) -> None:
    x = random_image(1, 2, 3, 4).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: upsample(t, 2, mode, method=method), (x,))


def test_gradcheck_user_kernel_wrt_kernel() -> None:
    x = random_image(1, 1, 3, 3).requires_grad_(True)
    kernel = random_image(4, 4, seed=5).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, k: upsample(a, 2, kernel=k), (x, kernel))
    assert torch.autograd.gradcheck(lambda a: zero_insert(a, 3), (x,))


@pytest.mark.parametrize("method", METHODS)
def test_float32_within_float_tolerance(method: str) -> None:
    x = random_image(1, 3, 8, 8).float()
    result = upsample(x, 4, "bicubic", method=method)
    assert result.dtype == torch.float32
    torch.testing.assert_close(result, reference(x, 4, "bicubic", False), atol=1e-5, rtol=0)


@needs_cuda
@pytest.mark.parametrize("method", METHODS)
def test_cuda_matches_cpu(method: str) -> None:
    x = random_image(1, 3, 8, 8)
    cpu = upsample(x, 2, "bilinear", method=method)
    torch.testing.assert_close(upsample(x.cuda(), 2, "bilinear", method=method).cpu(), cpu)


def test_errors_name_the_problem() -> None:
    x = random_image(1, 1, 4, 4)
    with pytest.raises(ValueError, match="only valid for 'bilinear' and 'bicubic'"):
        upsample(x, 2, "nearest", align_corners=True)
    with pytest.raises(ValueError, match="method must be one of"):
        upsample(x, 2, method="slow")
    with pytest.raises(ValueError, match=r"\(N, C, H, W\).*\(4, 4\)"):
        upsample(x[0, 0], 2)
    with pytest.raises(ValueError, match="2-D"):
        upsample(x, 2, kernel=torch.ones(1, 3, 3))
