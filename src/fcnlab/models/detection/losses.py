"""Detection losses: CenterNet's penalty-reduced focal loss, RetinaNet's focal loss, GIoU loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fcnlab.ops.boxes import generalized_box_iou


def penalty_reduced_focal_loss(
    logits: torch.Tensor, heatmap: torch.Tensor, alpha: float = 2.0, beta: float = 4.0
) -> torch.Tensor:
    """CenterNet's focal loss (Zhou et al. 2019, eq. 1), summed; divide by the object count.

    With ``p = sigmoid(logits)`` and ``y`` the Gaussian target heatmap: ``-(1-p)^alpha log p``
    where ``y == 1`` (the object centres) and ``-(1-y)^beta p^alpha log(1-p)`` elsewhere, so
    pixels near a centre are penalised less for a high score. Logs come from ``logsigmoid``,
    which stays finite where a clamped sigmoid would saturate.
    """
    p = logits.sigmoid()
    positive = heatmap.eq(1)
    pos = (1 - p).pow(alpha) * F.logsigmoid(logits)
    neg = (1 - heatmap).pow(beta) * p.pow(alpha) * F.logsigmoid(-logits)
    return -torch.where(positive, pos, neg).sum()


def sigmoid_focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """RetinaNet's focal loss (Lin et al. 2017) on independent sigmoids, summed.

    ``targets`` are 0/1 like ``logits``; per element ``-a_t (1 - p_t)^gamma log p_t`` with
    ``a_t = alpha`` on positives and ``1 - alpha`` on negatives.
    """
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    a_t = alpha * targets + (1 - alpha) * (1 - targets)
    return (a_t * (1 - p_t).pow(gamma) * ce).sum()


def giou_loss(boxes: torch.Tensor, target_boxes: torch.Tensor) -> torch.Tensor:
    """``1 - GIoU`` of corresponding xyxy boxes (Rezatofighi et al. 2019), per box: (M,)."""
    return 1 - generalized_box_iou(boxes, target_boxes, aligned=True)
