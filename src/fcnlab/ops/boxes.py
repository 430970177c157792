"""Box operations in plain PyTorch: format conversions, IoU, GIoU and class-wise NMS.

Boxes are ``(N, 4)`` float tensors. ``xyxy`` is (x1, y1, x2, y2) with the corners in pixels,
``xywh`` is COCO's (x1, y1, width, height) and ``cxcywh`` is (centre x, centre y, width, height).
A box with ``x2 <= x1`` or ``y2 <= y1`` is empty: its area is 0, never negative.

Degenerate cases follow one rule: a ratio whose denominator is 0 counts as 0. Two empty boxes
therefore have IoU 0 (torchvision returns NaN), and GIoU adds no enclosure penalty when the
enclosing box is empty too (two identical points have GIoU 0).
"""

from __future__ import annotations

import bisect
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
    more box of the longest suppression chain per step, each step one scatter over the pairs and
    one read to the host (whether it changed anything).
    """
    keep = torch.ones(num_boxes, dtype=torch.bool, device=suppressor.device)
    while True:
        hits = torch.zeros(num_boxes, dtype=torch.int32, device=suppressor.device)
        settled = hits.index_add_(0, suppressed, keep[suppressor].int()) == 0
        if torch.equal(settled, keep):
            return keep
        keep = settled


def _run_pairs(
    first: torch.Tensor, count: torch.Tensor, max_pairs: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Pairs (k, first[k] + i) for every k and i < count[k], in chunks of about ``max_pairs``.

    A chunk holds whole runs, so one k with more pairs than ``max_pairs`` is a chunk alone. The
    host reads the number of pairs and, only when they make more than one chunk, where each run
    ends.
    """
    cumulative = count.cumsum(0)
    total = int(cumulative[-1]) if len(count) else 0
    chunks = [(0, len(count), 0, total)] if total else []
    if total > max_pairs:
        ends = cumulative.tolist()
        chunks, begin, done = [], 0, 0
        while begin < len(ends):
            end = max(bisect.bisect_right(ends, done + max_pairs), begin + 1)
            chunks.append((begin, end, done, ends[end - 1]))
            begin, done = end, ends[end - 1]
    position = torch.arange(len(count), device=count.device)
    for begin, end, done, reach in chunks:
        if reach > done:
            runs = count[begin:end]
            source = position[begin:end].repeat_interleave(runs, output_size=reach - done)
            # Pair p of the chunk is step p - (first pair of its run) of that run.
            shift = (first[begin:end] - cumulative[begin:end] + runs).repeat_interleave(
                runs, output_size=reach - done
            )
            yield source, shift + torch.arange(done, reach, device=count.device)


def _sort_keys(
    boxes: torch.Tensor, labels: torch.Tensor, extent: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(label, x1) as one float64 key per box, and the box widths (float64, at least 0).

    Labels are ``3 * extent + 1`` apart, ``extent`` the x range of all boxes: a search up to two
    extents left or right of a box's x1 stays within its label. float64, so that the label
    offsets do not round the coordinates.
    """
    wide = boxes.to(torch.float64)
    key = labels.to(torch.float64) * (3 * extent + 1) + wide[:, 0]
    return key, (wide[:, 2] - wide[:, 0]).clamp(min=0)


def _x_extent(*boxes: torch.Tensor) -> torch.Tensor:
    """The range of the x coordinates of all ``boxes`` (float64, on their device)."""
    x = torch.cat([b[:, 0::2].reshape(-1) for b in boxes]).to(torch.float64)
    return x.max() - x.min()


def _sweep_nms(boxes: torch.Tensor, labels: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Keep-mask of greedy class-wise NMS for boxes already in processing (score) order.

    Sweep and prune instead of an N x N IoU matrix: boxes are sorted by (label, x1) and only pairs
    that can pass the threshold get an IoU. The 2-D IoU is at most the 1-D IoU along x (the
    intersection's height is at most either box's), and that exceeds ``t`` only when the later
    box starts before ``x1 + (1 - t) * width`` of the earlier one, so each box's partners are one
    run of the sorted order.
    """
    # The slack keeps pairs whose float32 IoU rounds above the threshold.
    slack = iou_threshold * (1 - 1e-3)
    start, width = _sort_keys(boxes, labels, _x_extent(boxes))
    perm = start.argsort()
    start, width = start[perm], width[perm]
    position = torch.arange(len(boxes), device=boxes.device)
    count = torch.searchsorted(start, start + (1 - slack) * width) - position - 1
    sorted_boxes = boxes[perm]
    suppressor, suppressed = [], []
    for k, j in _run_pairs(position + 1, count.clamp(min=0), NMS_BLOCK_PAIRS):
        iou = box_iou(
            sorted_boxes.index_select(0, k), sorted_boxes.index_select(0, j), aligned=True
        )
        over = (iou > iou_threshold).nonzero()[:, 0]
        pk, pj = perm[k[over]], perm[j[over]]
        suppressor.append(torch.minimum(pk, pj))
        suppressed.append(torch.maximum(pk, pj))
    if not suppressor:
        return torch.ones(len(boxes), dtype=torch.bool, device=boxes.device)
    return _resolve_suppression(torch.cat(suppressor), torch.cat(suppressed), len(boxes))


def _overlapped(
    kept: torch.Tensor,
    kept_labels: torch.Tensor,
    boxes: torch.Tensor,
    labels: torch.Tensor,
    iou_threshold: float,
) -> torch.Tensor:
    """(M,) mask of ``boxes`` that overlap some ``kept`` box of their label above the threshold.

    ``boxes`` sorted by (label, x1) as in ``_sweep_nms``; a kept box's partners are one run of
    them. A box starting d before the kept box's x1 needs ``d < (1 - t) w`` of its own width w,
    at most the widest box's, and ``d < (1 - t) / t`` of the kept box's width (the intersection
    is at most the kept box's width, the union at least its width plus d); one starting d after
    needs ``d < (1 - t)`` of the kept box's width.
    """
    hits = torch.zeros(len(boxes), dtype=torch.int32, device=boxes.device)
    if not len(kept) or not len(boxes):
        return hits > 0
    slack = iou_threshold * (1 - 1e-3)
    extent = _x_extent(kept, boxes)
    key, width = _sort_keys(boxes, labels, extent)
    perm = key.argsort()
    key = key[perm]
    kept_key, kept_width = _sort_keys(kept, kept_labels, extent)
    widest = width.max()
    before = widest if slack == 0 else torch.minimum(widest, kept_width / slack)
    first = torch.searchsorted(key, kept_key - (1 - slack) * (1 + 1e-3) * before)
    last = torch.searchsorted(key, kept_key + (1 - slack) * kept_width)
    sorted_boxes = boxes[perm]
    for k, j in _run_pairs(first, (last - first).clamp(min=0), NMS_BLOCK_PAIRS):
        iou = box_iou(kept.index_select(0, k), sorted_boxes.index_select(0, j), aligned=True)
        hits.index_add_(0, perm[j], (iou > iou_threshold).int())
    return hits > 0


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
    it repeats; once it stops paying, one sweep settles all remaining boxes at once. Only pairs of
    one label whose x ranges allow the threshold get an IoU, so many labels (a detector's classes
    times the images of a batch) cost no more than one. Labels should be small integers: the
    float64 sort key rounds coordinates by about label x (x range of the boxes) x 2^-51.

    On CUDA the host reads a handful of values per step (pair counts, kept counts, whether
    the suppression settled), never one per box, label or image.
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
    # ``order`` is by decreasing score, ties by index: so are the kept boxes it lists.
    return order[keep]


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression over all boxes as one class; see ``batched_nms``."""
    labels = torch.zeros(boxes.shape[0], dtype=torch.int64, device=boxes.device)
    return batched_nms(boxes, scores, labels, iou_threshold)
