"""fcnlab.ops.masks against hand-worked examples and PyTorch's own interpolation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers.devices import DEVICES

from fcnlab.ops.masks import dice_loss, mask_iou, masks_to_boxes, paste_masks, paste_masks_chunks


def test_masks_to_boxes_are_pixel_edges() -> None:
    masks = torch.zeros(3, 6, 8, dtype=torch.bool)
    masks[0, 1:3, 2:5] = True  # rows 1..2, columns 2..4
    masks[1, 5, 7] = True  # the bottom-right pixel alone
    expected = torch.tensor([[2.0, 1.0, 5.0, 3.0], [7.0, 5.0, 8.0, 6.0], [0.0, 0.0, 0.0, 0.0]])
    assert torch.equal(masks_to_boxes(masks), expected)


def test_masks_to_boxes_of_a_ring_spans_its_hole() -> None:
    masks = torch.zeros(1, 7, 7, dtype=torch.bool)
    masks[0, 1:6, 1:6] = True
    masks[0, 2:5, 2:5] = False
    assert masks_to_boxes(masks).tolist() == [[1.0, 1.0, 6.0, 6.0]]


def test_masks_to_boxes_of_no_masks() -> None:
    assert masks_to_boxes(torch.zeros(0, 4, 4, dtype=torch.bool)).shape == (0, 4)
    with pytest.raises(ValueError, match=r"\(K, H, W\)"):
        masks_to_boxes(torch.zeros(4, 4, dtype=torch.bool))


def test_mask_iou_by_hand() -> None:
    a = torch.zeros(2, 4, 4, dtype=torch.bool)
    a[0, :2, :2] = True  # 4 pixels
    b = torch.zeros(3, 4, 4, dtype=torch.bool)
    b[0, :2, :] = True  # 8 pixels, 4 shared with a[0]
    b[1, 2:, 2:] = True  # disjoint from a[0]
    b[2, :2, :2] = True  # the same as a[0]
    iou = mask_iou(a, b)
    assert torch.allclose(iou, torch.tensor([[0.5, 0.0, 1.0], [0.0, 0.0, 0.0]]))


def test_mask_iou_matches_a_loop() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.rand(5, 9, 7, generator=g) > 0.6
    b = torch.rand(4, 9, 7, generator=g) > 0.4
    loop = torch.tensor([[float((x & y).sum()) / float((x | y).sum()) for y in b] for x in a])
    assert torch.allclose(mask_iou(a, b), loop)


def test_mask_iou_needs_one_size() -> None:
    with pytest.raises(ValueError, match="one size"):
        mask_iou(torch.zeros(1, 3, 3, dtype=torch.bool), torch.zeros(1, 3, 4, dtype=torch.bool))


def test_dice_loss_by_hand() -> None:
    predicted = torch.tensor([[0.5, 0.5, 0.0, 0.0], [1.0, 0.0, 1.0, 0.0]])
    target = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 1.0, 0.0]])
    # first: 2 * 0.5 / (0.25 + 0.25 + 1) = 2/3; second: a perfect match
    assert torch.allclose(dice_loss(predicted, target), torch.tensor([1 / 3, 0.0]), atol=1e-5)


def test_dice_loss_of_empty_masks_is_zero_not_nan() -> None:
    loss = dice_loss(torch.zeros(2, 3, 3), torch.zeros(2, 3, 3))
    assert torch.equal(loss, torch.zeros(2))


def test_dice_loss_gradient_flows() -> None:
    predicted = torch.rand(3, 5, 5, requires_grad=True)
    dice_loss(predicted, torch.rand(3, 5, 5) > 0.5).sum().backward()
    assert predicted.grad is not None and predicted.grad.abs().sum() > 0


@pytest.mark.parametrize("device", DEVICES)
def test_paste_masks_equals_interpolate_crop_resize(device: str) -> None:
    g = torch.Generator().manual_seed(1)
    # stride 4: covers 24x28 input pixels
    probabilities = torch.rand(5, 6, 7, generator=g).to(device)

    def pasted_by_hand(p: torch.Tensor) -> torch.Tensor:
        large = F.interpolate(p[:, None], scale_factor=4, mode="bilinear")
        return F.interpolate(large[..., :21, :26], size=(40, 50), mode="bilinear")[:, 0]

    expected = pasted_by_hand(probabilities) >= 0.5
    pasted = paste_masks(probabilities, 4, (21, 26), (40, 50))
    assert pasted.dtype == torch.bool and pasted.device.type == device
    assert torch.equal(pasted, expected)
    chunks = list(paste_masks_chunks(probabilities, 4, (21, 26), (40, 50), chunk=2))
    assert [len(c) for c in chunks] == [2, 2, 1]
    assert torch.equal(torch.cat(chunks), expected)
    # The CPU's masks, but where a device's own interpolation may land across 0.5.
    on_cpu = pasted_by_hand(probabilities.cpu())
    clear = (on_cpu - 0.5).abs() > 1e-5
    assert torch.equal(pasted.cpu()[clear], (on_cpu >= 0.5)[clear])


def test_paste_masks_cell_covers_its_stride_pixels() -> None:
    probabilities = torch.zeros(1, 3, 3)
    probabilities[0, 1, 1] = 1.0
    pasted = paste_masks(probabilities, 4, (12, 12))
    # cell (1, 1) covers pixels 4..7: pixel centres 4.5..7.5 sit at cell coordinates
    # 0.625..1.375, whose bilinear weight on the cell is >= 0.625 in each direction; so nothing
    # outside the cell is set, and its centre 2x2 (weights 0.875^2) is.
    assert not pasted[0, :4].any() and not pasted[0, 8:].any()
    assert not pasted[0, :, :4].any() and not pasted[0, :, 8:].any()
    assert pasted[0, 5:7, 5:7].all()


def test_paste_masks_of_none_and_too_small() -> None:
    assert paste_masks(torch.zeros(0, 3, 3), 4, (10, 11), (20, 22)).shape == (0, 20, 22)
    with pytest.raises(ValueError, match="less than the image"):
        paste_masks(torch.zeros(1, 2, 2), 4, (10, 10))
