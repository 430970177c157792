"""Detection losses against hand-worked values."""

from __future__ import annotations

import math

import pytest
import torch

from fcnlab.models.detection.losses import (
    giou_loss,
    penalty_reduced_focal_loss,
    sigmoid_focal_loss,
)


def test_penalty_reduced_focal_loss_hand_worked() -> None:
    # p = sigmoid(0) = 0.5 at a centre (y = 1): (1 - 0.5)^2 * -log 0.5 = 0.25 log 2.
    # p = sigmoid(log 3) = 0.75 at y = 0.5: (1 - 0.5)^4 * 0.75^2 * -log 0.25 = 0.0625*0.5625*log 4.
    # p = 0.25 at y = 0: 0.25^2 * -log 0.75.
    logits = torch.tensor([0.0, math.log(3), -math.log(3)], dtype=torch.float64)
    heatmap = torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64)
    expected = 0.25 * math.log(2) + 0.0625 * 0.5625 * math.log(4) + 0.0625 * -math.log(0.75)
    assert float(penalty_reduced_focal_loss(logits, heatmap)) == pytest.approx(expected)
    huge = penalty_reduced_focal_loss(torch.tensor([-200.0, 200.0]), torch.tensor([1.0, 0.0]))
    assert torch.isfinite(huge) and float(huge) == pytest.approx(400.0)


def test_sigmoid_focal_loss_hand_worked() -> None:
    # p = 0.5 everywhere: a positive costs 0.25 * 0.5^2 * log 2, a negative 0.75 * 0.5^2 * log 2;
    # p = 0.9 on a positive: 0.25 * 0.1^2 * -log 0.9.
    logits = torch.tensor([0.0, 0.0, math.log(9)], dtype=torch.float64)
    targets = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
    expected = 0.25 * 0.25 * math.log(2) + 0.75 * 0.25 * math.log(2) + 0.25 * 0.01 * -math.log(0.9)
    assert float(sigmoid_focal_loss(logits, targets)) == pytest.approx(expected)


def test_giou_loss_hand_worked() -> None:
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 0.0, 3.0, 2.0], [3.0, 0.0, 4.0, 2.0]])
    # Identical: 0. Half overlap: IoU 2/6, enclosure = union: 1 - 1/3. Disjoint 2x2 and 1x2
    # boxes in a 4x2 enclosure: IoU 0, empty share (8 - 6)/8: 1 + 1/4.
    torch.testing.assert_close(giou_loss(a, b), torch.tensor([0.0, 2 / 3, 1.25]))
