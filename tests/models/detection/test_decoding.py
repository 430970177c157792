"""Box decoding shared by the detectors: distances to the sides, clipping to the image."""

from __future__ import annotations

import torch

from fcnlab.models.detection.decoding import clip_boxes, ltrb_to_boxes


def test_ltrb_to_boxes_hand_worked() -> None:
    points = torch.tensor([[10.0, 20.0], [0.0, 0.0]])
    ltrb = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 5.0, 5.0]])
    expected = torch.tensor([[9.0, 18.0, 13.0, 24.0], [-5.0, -5.0, 5.0, 5.0]])
    torch.testing.assert_close(ltrb_to_boxes(points, ltrb), expected)


def test_clip_boxes_to_height_and_width() -> None:
    boxes = torch.tensor([[[-5.0, -5.0, 50.0, 50.0], [10.0, 12.0, 20.0, 22.0]]])
    clipped = clip_boxes(boxes, (30, 40))  # H 30, W 40: x up to 40, y up to 30
    expected = torch.tensor([[[0.0, 0.0, 40.0, 30.0], [10.0, 12.0, 20.0, 22.0]]])
    torch.testing.assert_close(clipped, expected)
