"""Box operations in plain PyTorch: format conversions, IoU, GIoU and class-wise NMS.

Boxes are ``(N, 4)`` float tensors. ``xyxy`` is (x1, y1, x2, y2) with the corners in pixels,
``xywh`` is COCO's (x1, y1, width, height) and ``cxcywh`` is (centre x, centre y, width, height).
A box with ``x2 <= x1`` or ``y2 <= y1`` is empty: its area is 0, never negative.

Degenerate cases follow one rule: a ratio whose denominator is 0 counts as 0. Two empty boxes
therefore have IoU 0 (torchvision returns NaN), and GIoU adds no enclosure penalty when the
enclosing box is empty too (two identical points have GIoU 0).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

BOX_FORMATS = ("xyxy", "xywh", "cxcywh")
# Most candidate pairs whose IoU one NMS chunk computes at once (a few tens of MiB).
NMS_BLOCK_PAIRS = 1 << 20
# Boxes that NMS settles first, before they prune the rest (see ``batched_nms``).
NMS_HEAD = 256


def _check_boxes(boxes: torch.Tensor, what: str = "boxes") -> None:
    if boxes.ndim < 1 or boxes.shape[-1] != 4:
        raise ValueError(f"{what} must have shape (..., 4), got {tuple(boxes.shape)}")


def box_convert(boxes: torch.Tensor, in_fmt: str, out_fmt: str) -> torch.Tensor:
    """Convert ``(..., 4)`` boxes between ``"xyxy"``, ``"xywh"`` and ``"cxcywh"``."""
    _check_boxes(boxes)
    for fmt in (in_fmt, out_fmt):
        if fmt not in BOX_FORMATS:
            raise ValueError(f"box format must be one of {BOX_FORMATS}, got {fmt!r}")
    a, b, c, d = boxes.unbind(-1)
    if in_fmt == "xywh":
        a, b, c, d = a, b, a + c, b + d
    elif in_fmt == "cxcywh":
        a, b, c, d = a - c / 2, b - d / 2, a + c / 2, b + d / 2
    if out_fmt == "xywh":
        a, b, c, d = a, b, c - a, d - b
    elif out_fmt == "cxcywh":
        a, b, c, d = (a + c) / 2, (b + d) / 2, c - a, d - b
    return torch.stack((a, b, c, d), dim=-1)


def xyxy_to_xywh(boxes: torch.Tensor) -> torch.Tensor:
    """(x1, y1, x2, y2) -> (x1, y1, w, h), COCO's format."""
    return box_convert(boxes, "xyxy", "xywh")


def xywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """(x1, y1, w, h) -> (x1, y1, x2, y2)."""
    return box_convert(boxes, "xywh", "xyxy")


def xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    """(x1, y1, x2, y2) -> (cx, cy, w, h)."""
    return box_convert(boxes, "xyxy", "cxcywh")


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """(cx, cy, w, h) -> (x1, y1, x2, y2)."""
    return box_convert(boxes, "cxcywh", "xyxy")


def clip_boxes(boxes: torch.Tensor, image_size: Sequence[int]) -> torch.Tensor:
    """xyxy ``boxes`` (..., 4) clipped to an image of ``image_size`` (H, W) pixels."""
    height, width = image_size
    limit = torch.tensor([width, height, width, height]).to(boxes)
    return boxes.clamp(min=0).minimum(limit)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Areas of ``(..., 4)`` xyxy boxes; empty boxes have area 0."""
    _check_boxes(boxes)
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(
        min=0
    )


def _safe_div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` where ``den > 0``, else 0: the degenerate-case rule of this module."""
    positive = den > 0
    return torch.where(positive, num / torch.where(positive, den, torch.ones_like(den)), 0.0)


def _pair(
    boxes1: torch.Tensor, boxes2: torch.Tensor, aligned: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    _check_boxes(boxes1, "boxes1")
    _check_boxes(boxes2, "boxes2")
    if aligned:
        if boxes1.shape != boxes2.shape:
            raise ValueError(
                f"aligned IoU needs boxes of the same shape, got {tuple(boxes1.shape)} and "
                f"{tuple(boxes2.shape)}"
            )
        return boxes1, boxes2
    return boxes1[:, None, :], boxes2[None, :, :]


def _iou_parts(boxes1: torch.Tensor, boxes2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(intersection, union) of broadcast xyxy boxes."""
    top_left = torch.maximum(boxes1[..., :2], boxes2[..., :2])
    bottom_right = torch.minimum(boxes1[..., 2:], boxes2[..., 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter, box_area(boxes1) + box_area(boxes2) - inter


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor, aligned: bool = False) -> torch.Tensor:
    """Intersection over union of xyxy boxes.

    ``(N, 4), (M, 4) -> (N, M)`` for every pair, or with ``aligned=True`` ``(..., 4), (..., 4)
    -> (...)`` for corresponding boxes. An empty union gives 0.
    """
    inter, union = _iou_parts(*_pair(boxes1, boxes2, aligned))
    return _safe_div(inter, union)


def generalized_box_iou(
    boxes1: torch.Tensor, boxes2: torch.Tensor, aligned: bool = False
) -> torch.Tensor:
    """GIoU (Rezatofighi et al., CVPR 2019): IoU minus the share of the enclosing box left empty.

    ``GIoU = IoU - (C - U) / C`` with ``C`` the area of the smallest box enclosing both and ``U``
    their union; in [-1, 1]. Shapes as in ``box_iou``.
    """
    boxes1, boxes2 = _pair(boxes1, boxes2, aligned)
    inter, union = _iou_parts(boxes1, boxes2)
    top_left = torch.minimum(boxes1[..., :2], boxes2[..., :2])
    bottom_right = torch.maximum(boxes1[..., 2:], boxes2[..., 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    enclosing = wh[..., 0] * wh[..., 1]
    return _safe_div(inter, union) - _safe_div(enclosing - union, enclosing)


def _resolve_suppression(
    suppressor: torch.Tensor, suppressed: torch.Tensor, num_boxes: int
) -> torch.Tensor:
    """Greedy NMS's outcome from the overlap pairs ``suppressor[k] -> suppressed[k]``.

    Boxes are in processing order and every pair has ``suppressor < suppressed``. Greedy NMS keeps
    box j exactly when no kept box overlaps it from before; that rule has one solution, the fixed
    point of ``keep = not any(keep[i] for pairs (i, j))``. Iterating from "keep all" settles one
    more box of the longest suppression chain per step, each step one scatter over the pairs.
    """
    keep = torch.ones(num_boxes, dtype=torch.bool, device=suppressor.device)
    while True:
        hit = torch.zeros_like(keep)
        hit[suppressed[keep[suppressor]]] = True
        if torch.equal(~hit, keep):
            return keep
        keep = ~hit


def _sweep_pairs(
    start: torch.Tensor, stop: torch.Tensor, max_pairs: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Position pairs (k, j), j > k, with ``start[j] < stop[k]``, in chunks of about ``max_pairs``.

    ``start`` is sorted, so each k's partners form one run after it, found by ``searchsorted``;
    the runs are expanded chunk by chunk so memory stays bounded.
    """
    n = len(start)
    position = torch.arange(n, device=start.device)
    counts = (torch.searchsorted(start, stop) - position - 1).clamp(min=0)
    cumulative = counts.cumsum(0)
    first = 0
    while first < n:
        done = int(cumulative[first - 1]) if first else 0
        last = int(torch.searchsorted(cumulative, done + max_pairs, right=True))
        last = min(max(last, first + 1), n)
        runs = counts[first:last]
        source = position[first:last].repeat_interleave(runs)
        run_start = (cumulative[first:last] - runs).repeat_interleave(runs)
        step = torch.arange(source.numel(), device=start.device) + (done + 1) - run_start
        yield source, source + step
        first = last


def _sweep_nms(boxes: torch.Tensor, labels: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Keep-mask of greedy class-wise NMS for boxes already in processing (score) order.

    Sweep and prune instead of an N x N IoU matrix: boxes are sorted by (label, x1) and only pairs
    that can pass the threshold get an IoU. The 2-D IoU is at most the 1-D IoU along x (the
    intersection's height is at most either box's), and that exceeds ``t`` only when the later
    box starts before ``x2 - t * width`` of the earlier one, so each box's partners are one run
    of the sorted order. The (label, x) key is float64 so that label offsets do not round the
    coordinates.
    """
    wide = boxes.to(torch.float64)
    span = float((wide[:, 2].max() - wide[:, 0].min()).clamp(min=0)) + 1.0
    offset = labels.to(torch.float64) * span
    start_key = offset + wide[:, 0]
    # The slack keeps pairs whose float32 IoU rounds above the threshold.
    width = (wide[:, 2] - wide[:, 0]).clamp(min=0)
    stop_key = offset + wide[:, 2] - iou_threshold * (1 - 1e-3) * width
    perm = start_key.argsort()
    sorted_boxes = boxes[perm]
    suppressor, suppressed = [], []
    for k, j in _sweep_pairs(start_key[perm], stop_key[perm], NMS_BLOCK_PAIRS):
        iou = box_iou(
            sorted_boxes.index_select(0, k), sorted_boxes.index_select(0, j), aligned=True
        )
        over = iou > iou_threshold
        pk, pj = perm[k[over]], perm[j[over]]
        suppressor.append(torch.minimum(pk, pj))
        suppressed.append(torch.maximum(pk, pj))
    return _resolve_suppression(torch.cat(suppressor), torch.cat(suppressed), len(boxes))


def _overlapped(
    kept: torch.Tensor,
    kept_labels: torch.Tensor,
    boxes: torch.Tensor,
    labels: torch.Tensor,
    iou_threshold: float,
) -> torch.Tensor:
    """(M,) mask of ``boxes`` that overlap some ``kept`` box of their label above the threshold."""
    step = max(1, NMS_BLOCK_PAIRS // max(1, len(kept)))
    hits = []
    for start in range(0, len(boxes), step):
        part = slice(start, start + step)
        same = kept_labels[:, None] == labels[None, part]
        hits.append(((box_iou(kept, boxes[part]) > iou_threshold) & same).any(dim=0))
    return torch.cat(hits) if hits else torch.zeros(0, dtype=torch.bool, device=boxes.device)


def batched_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    labels: torch.Tensor,
    iou_threshold: float,
) -> torch.Tensor:
    """Class-wise greedy non-maximum suppression.

    Within each label, boxes are taken by decreasing score and a box is dropped when its IoU with
    an already kept box of the same label is above ``iou_threshold`` (in [0, 1]); equal scores go
    to the lower index. Returns the indices (int64) of the kept boxes by decreasing score, ties
    by index.

    Exact greedy NMS computed in large vectorised steps. The ``NMS_HEAD`` best remaining boxes
    are settled among themselves (``_sweep_nms``); their kept boxes then remove every later box
    they overlap, which is what greedy NMS would do. While that prunes well (clustered detections)
    it repeats; once it stops paying, one sweep settles all remaining boxes at once.
    """
    _check_boxes(boxes)
    n = boxes.shape[0]
    if scores.shape != (n,) or labels.shape != (n,):
        raise ValueError(
            f"scores and labels must have shape ({n},) like boxes {tuple(boxes.shape)}, got "
            f"{tuple(scores.shape)} and {tuple(labels.shape)}"
        )
    if not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    order = scores.argsort(descending=True, stable=True)
    boxes, labels = boxes[order], labels[order]
    keep = torch.zeros(n, dtype=torch.bool, device=boxes.device)
    alive = torch.arange(n, device=boxes.device)
    while alive.numel():
        head, rest = alive[:NMS_HEAD], alive[NMS_HEAD:]
        head = head[_sweep_nms(boxes[head], labels[head], iou_threshold)]
        keep[head] = True
        hit = _overlapped(boxes[head], labels[head], boxes[rest], labels[rest], iou_threshold)
        alive = rest[~hit]
        if alive.numel() > 0.75 * rest.numel():
            keep[alive[_sweep_nms(boxes[alive], labels[alive], iou_threshold)]] = True
            break
    kept = order[keep].sort().values
    return kept[scores[kept].argsort(descending=True, stable=True)]


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression over all boxes as one class; see ``batched_nms``."""
    labels = torch.zeros(boxes.shape[0], dtype=torch.int64, device=boxes.device)
    return batched_nms(boxes, scores, labels, iou_threshold)
