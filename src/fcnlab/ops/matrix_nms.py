"""Matrix NMS (Wang et al., *SOLOv2: Dynamic and Fast Instance Segmentation*, NeurIPS 2020,
https://arxiv.org/abs/2003.10152, Sec. 3.3.2): every mask's score decays at once, in parallel,
instead of greedy NMS's one-mask-at-a-time loop.

Sort the masks by score. Mask j's decay is

    decay_j = min over same-class masks i scored above j of  f(iou_ij) / f(compensation_i)

(1 where no same-class mask is above it), where ``compensation_i`` is the largest IoU of mask i
with any same-class mask above *it*: the more i has been suppressed itself, the less it suppresses
j (its paper's Eq. 4, f(iou_{.,i}) = min_k f(iou_ki) for a decreasing f). Only same-class pairs
count, in both the decay and the compensation, as in the authors' released code
(WXinlong/SOLO, ``mmdet/core/post_processing/matrix_nms.py``). The kernels:

- ``"gaussian"``: f(x) = exp(-sigma x^2). ``sigma`` multiplies, as in the authors' code, whose
  default 2.0 is the pseudo-code's exp(-x^2 / 0.5) with sigma = 0.5 as a divisor;
- ``"linear"``: f(x) = 1 - x.

The minimum over every row of the upper-triangular matrix equals the minimum over the higher
same-class masks alone: a row that is not such a pair has IoU 0 and a ratio 1 / f(compensation)
of at least 1, and the first row (the top mask, compensation 0) is at most 1, so no score ever
rises.
"""

from __future__ import annotations

import math

import torch

from fcnlab.ops.masks import mask_iou

MATRIX_NMS_KERNELS = ("gaussian", "linear")


def matrix_nms(
    masks: torch.Tensor,
    labels: torch.Tensor,
    scores: torch.Tensor,
    kernel: str = "gaussian",
    sigma: float = 2.0,
) -> torch.Tensor:
    """Scores (K,) after Matrix NMS of masks (K, H, W) with class ``labels`` (K,) and ``scores``
    (K,), returned in the INPUT order (entry k is mask k's decayed score, ``scores[k] * decay_k``).

    ``masks`` are bool, or float in [0, 1]. Float masks go through the same matrix product as
    bool ones (:func:`fcnlab.ops.masks.mask_iou`): 0/1 floats give exactly the bool result;
    probabilities give the soft IoU sum(p q) / (sum(p) + sum(q) - sum(p q)), under which a
    mask's IoU with itself is below 1. The paper's Matrix NMS is on binary masks (SOLOv2
    thresholds the probabilities at 0.5 first), so pass those to reproduce it.

    Masks are ranked by score, ties by input position (the earlier counts as higher). Under the
    linear kernel a mask that exactly duplicates a higher same-class mask has compensation 1 and
    f(compensation) = 0: it has decayed to 0 itself, and its ratios count as +inf (it suppresses
    nothing further), which loses nothing, as the copy above it holds the same IoUs and decays
    every later mask as much; so the result has no NaN.
    """
    _check_inputs(masks, labels, scores, kernel, sigma)
    if len(scores) == 0:
        return scores.clone()
    order = torch.sort(scores, descending=True, stable=True).indices
    ranked_labels = labels[order]
    same_class = ranked_labels[:, None] == ranked_labels[None, :]
    ranked = masks[order]
    # iou[i, j]: mask i (scored above j) against mask j, same-class pairs only.
    iou = (mask_iou(ranked, ranked) * same_class).triu(diagonal=1)
    compensation = iou.max(dim=0).values[:, None]  # (K, 1): row i's own largest IoU above it
    if kernel == "gaussian":
        # exp(-s x^2) / exp(-s c^2) as one exponential: no 0 / 0 however large sigma is.
        ratio = torch.exp(-sigma * (iou.square() - compensation.square()))
    else:
        denominator = 1 - compensation
        suppressed = denominator <= 0
        ratio = torch.where(
            suppressed,
            torch.full_like(iou, math.inf),
            (1 - iou) / denominator.masked_fill(suppressed, 1.0),
        )
    ranked_decay = ratio.min(dim=0).values
    decay = torch.empty_like(ranked_decay).scatter_(0, order, ranked_decay)
    return scores * decay.to(scores.dtype)


def _check_inputs(
    masks: torch.Tensor, labels: torch.Tensor, scores: torch.Tensor, kernel: str, sigma: float
) -> None:
    if kernel not in MATRIX_NMS_KERNELS:
        raise ValueError(f"matrix_nms kernel must be one of {MATRIX_NMS_KERNELS}, got {kernel!r}")
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"matrix_nms sigma must be a finite number >= 0, got {sigma}")
    if masks.dim() != 3:
        raise ValueError(f"matrix_nms needs (K, H, W) masks, got shape {tuple(masks.shape)}")
    if scores.dim() != 1 or labels.shape != scores.shape or len(masks) != len(scores):
        raise ValueError(
            f"matrix_nms needs one label and one score per mask: {len(masks)} masks, labels of "
            f"shape {tuple(labels.shape)}, scores of shape {tuple(scores.shape)}"
        )
    if masks.is_floating_point() and masks.numel() and (masks.min() < 0 or masks.max() > 1):
        raise ValueError(
            f"matrix_nms needs float masks in [0, 1], got values from {float(masks.min())} to "
            f"{float(masks.max())}"
        )
