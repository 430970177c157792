from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fcnlab.ops import (
    conv2d_matrix,
    conv_transpose_output_padding,
    is_checkerboard_free,
    transpose_conv_overlap,
)


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("padding", [0, 1, 2])
@pytest.mark.parametrize("sparse", [False, True])
def test_matrix_times_vector_is_conv2d(stride: int, padding: int, sparse: bool) -> None:
    weight = rand(2, 3, 3, 3)
    x = rand(1, 3, 6, 7, seed=1)
    matrix = conv2d_matrix(weight, (6, 7), stride=stride, padding=padding, sparse=sparse)
    y = F.conv2d(x, weight, stride=stride, padding=padding)
    torch.testing.assert_close(matrix @ x.reshape(-1), y.reshape(-1))


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("padding", [0, 1])
@pytest.mark.parametrize("size", [(4, 4), (5, 6), (7, 7)])
def test_transpose_of_matrix_is_conv_transpose2d(
    stride: int, padding: int, size: tuple[int, int]
) -> None:
    weight = rand(2, 3, 3, 3, seed=2)
    matrix = conv2d_matrix(weight, size, stride=stride, padding=padding)
    y = rand(
        1,
        2,
        *F.conv2d(torch.zeros(1, 3, *size), weight.float(), stride=stride, padding=padding).shape[
            -2:
        ],
        seed=3,
    )
    output_padding = conv_transpose_output_padding(size, 3, stride, padding)
    expected = F.conv_transpose2d(
        y, weight, stride=stride, padding=padding, output_padding=output_padding
    )
    assert expected.shape[-2:] == size
    torch.testing.assert_close(matrix.T @ y.reshape(-1), expected.reshape(-1))


def test_lecture_matrix_3x3_stride2_on_4x4() -> None:
    # A 3x3 stride-2 kernel on a 4x4 input with padding 1 gives 2x2 outputs: C is 4x16 and
    # row 0 (output (0,0)) holds taps 4,5,7,8 (the kernel's lower right 2x2) at pixels 0,1,4,5.
    weight = torch.arange(1.0, 10.0, dtype=torch.float64).view(1, 1, 3, 3)
    matrix = conv2d_matrix(weight, 4, stride=2, padding=1)
    assert matrix.shape == (4, 16)
    row0 = torch.zeros(16, dtype=torch.float64)
    row0[[0, 1, 4, 5]] = torch.tensor([5.0, 6.0, 8.0, 9.0], dtype=torch.float64)
    assert torch.equal(matrix[0], row0)
    assert (matrix != 0).sum(dim=1).tolist() == [4, 6, 6, 9]


def test_overlap_counts_worked_by_hand() -> None:
    # Kernel 3, stride 2: footprints [0..2], [2..4], [4..6]: counts 1,1,2,1,2,1,1 along one axis.
    counts = transpose_conv_overlap(3, 2, (3, 3))
    row = torch.tensor([1, 1, 2, 1, 2, 1, 1])
    assert torch.equal(counts, torch.outer(row, row))
    # Kernel 4, stride 2: interior pixels all receive exactly 2 contributions per axis.
    even = transpose_conv_overlap(4, 2, (4, 4))
    assert torch.equal(even[0], torch.tensor([1, 1, 2, 2, 2, 2, 2, 2, 1, 1]))
    assert torch.all(even[2:-2, 2:-2] == 4)


def test_overlap_matches_brute_force_loop() -> None:
    k, s, n, p = 5, 3, 4, 1
    counts = torch.zeros((n - 1) * s + k, dtype=torch.int64)
    for i in range(n):
        counts[i * s : i * s + k] += 1
    expected = torch.outer(counts, counts)[p:-p, p:-p]
    assert torch.equal(transpose_conv_overlap(k, s, n, padding=p), expected)


@pytest.mark.parametrize(
    ("kernel", "stride", "free"),
    [(3, 2, False), (4, 2, True), (5, 2, False), (6, 3, True), (2, 2, True), (7, 3, False)],
)
def test_checkerboard_rule_agrees_with_overlap_map(kernel: int, stride: int, free: bool) -> None:
    assert is_checkerboard_free(kernel, stride) is free
    counts = transpose_conv_overlap(kernel, stride, 8)
    margin = kernel
    interior = counts[margin:-margin, margin:-margin]
    assert (interior.unique().numel() == 1) is free


def test_sparse_and_dense_agree() -> None:
    weight = rand(3, 2, 2, 3, seed=6)
    dense = conv2d_matrix(weight, (5, 5), stride=(2, 1), padding=(1, 0))
    sparse = conv2d_matrix(weight, (5, 5), stride=(2, 1), padding=(1, 0), sparse=True)
    assert sparse.is_sparse
    torch.testing.assert_close(sparse.to_dense(), dense)


def test_kernel_larger_than_input_is_an_error() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        conv2d_matrix(torch.ones(1, 1, 5, 5), 3)
