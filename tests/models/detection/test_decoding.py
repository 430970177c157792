"""Box decoding shared by the detectors: boxes from distances to the sides."""

from __future__ import annotations

import torch

from fcnlab.models.detection.decoding import ltrb_to_boxes


def test_ltrb_to_boxes_hand_worked() -> None:
    points = torch.tensor([[10.0, 20.0], [0.0, 0.0]])
    ltrb = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 5.0, 5.0]])
    expected = torch.tensor([[9.0, 18.0, 13.0, 24.0], [-5.0, -5.0, 5.0, 5.0]])
    torch.testing.assert_close(ltrb_to_boxes(points, ltrb), expected)
