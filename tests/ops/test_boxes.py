from __future__ import annotations

import pytest
import torch
from helpers.devices import DEVICES

from fcnlab.ops import (
    batched_nms,
    box_area,
    box_convert,
    box_iou,
    clip_boxes,
    cxcywh_to_xyxy,
    generalized_box_iou,
    nms,
    xywh_to_xyxy,
    xyxy_to_cxcywh,
    xyxy_to_xywh,
)


def random_boxes(n: int, seed: int, grid: int | None = None) -> torch.Tensor:
    """xyxy boxes; on a coarse integer ``grid`` identical, zero-area and touching boxes abound."""
    g = torch.Generator().manual_seed(seed)
    if grid is None:
        corners = torch.rand(n, 2, 2, generator=g, dtype=torch.float64) * 100
    else:
        corners = torch.randint(0, grid, (n, 2, 2), generator=g).double()
    low, high = corners.min(dim=1).values, corners.max(dim=1).values
    return torch.cat((low, high), dim=1)


def degenerate_boxes() -> torch.Tensor:
    return torch.tensor(
        [
            [0.0, 0.0, 10.0, 10.0],
            [0.0, 0.0, 10.0, 10.0],  # identical to the first
            [5.0, 5.0, 5.0, 5.0],  # a point inside the first
            [5.0, 5.0, 5.0, 5.0],  # the same point
            [0.0, 0.0, 10.0, 0.0],  # a segment on the first's edge
            [10.0, 0.0, 20.0, 10.0],  # touches the first
            [30.0, 30.0, 20.0, 20.0],  # inverted corners: empty
            [2.0, 3.0, 7.0, 9.0],
        ],
        dtype=torch.float64,
    )


def ref_area(b: list[float]) -> float:
    return max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0)


def ref_iou(a: list[float], b: list[float]) -> float:
    iw = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    ih = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    inter = iw * ih
    union = ref_area(a) + ref_area(b) - inter
    return inter / union if union > 0 else 0.0


def ref_giou(a: list[float], b: list[float]) -> float:
    iw = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    ih = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    union = ref_area(a) + ref_area(b) - iw * ih
    cw = max(max(a[2], b[2]) - min(a[0], b[0]), 0.0)
    ch = max(max(a[3], b[3]) - min(a[1], b[1]), 0.0)
    enclosing = cw * ch
    penalty = (enclosing - union) / enclosing if enclosing > 0 else 0.0
    return ref_iou(a, b) - penalty


def ref_nms(boxes: list[list[float]], scores: list[float], labels: list[int], thr: float):
    """Greedy NMS as written in the papers: a Python loop over boxes by decreasing score."""
    order = sorted(range(len(boxes)), key=lambda i: -scores[i])  # stable: ties by index
    kept: list[int] = []
    for i in order:
        if all(labels[k] != labels[i] or ref_iou(boxes[k], boxes[i]) <= thr for k in kept):
            kept.append(i)
    return kept


def test_conversions_hand_worked() -> None:
    xyxy = torch.tensor([[1.0, 2.0, 5.0, 10.0]])
    torch.testing.assert_close(xyxy_to_xywh(xyxy), torch.tensor([[1.0, 2.0, 4.0, 8.0]]))
    torch.testing.assert_close(xyxy_to_cxcywh(xyxy), torch.tensor([[3.0, 6.0, 4.0, 8.0]]))
    torch.testing.assert_close(xywh_to_xyxy(torch.tensor([[1.0, 2.0, 4.0, 8.0]])), xyxy)
    torch.testing.assert_close(cxcywh_to_xyxy(torch.tensor([[3.0, 6.0, 4.0, 8.0]])), xyxy)


@pytest.mark.parametrize("fmt", ["xywh", "cxcywh"])
def test_conversions_round_trip_any_batch_shape(fmt: str) -> None:
    boxes = random_boxes(12, seed=3).reshape(3, 4, 4)
    there = box_convert(boxes, "xyxy", fmt)
    assert there.shape == boxes.shape
    torch.testing.assert_close(box_convert(there, fmt, "xyxy"), boxes)
    torch.testing.assert_close(box_convert(boxes, "xyxy", "xyxy"), boxes)


def test_conversion_rejects_unknown_format_and_bad_shape() -> None:
    with pytest.raises(ValueError, match="'xyzw'"):
        box_convert(torch.zeros(1, 4), "xyzw", "xyxy")
    with pytest.raises(ValueError, match=r"\(3, 5\)"):
        box_area(torch.zeros(3, 5))


@pytest.mark.parametrize("grid", [None, 6])
def test_area_iou_giou_match_brute_force(grid: int | None) -> None:
    a = torch.cat((random_boxes(30, seed=1, grid=grid), degenerate_boxes()))
    b = torch.cat((random_boxes(25, seed=2, grid=grid), degenerate_boxes()))
    la, lb = a.tolist(), b.tolist()
    torch.testing.assert_close(box_area(a), torch.tensor([ref_area(x) for x in la]).double())
    iou = torch.tensor([[ref_iou(x, y) for y in lb] for x in la], dtype=torch.float64)
    giou = torch.tensor([[ref_giou(x, y) for y in lb] for x in la], dtype=torch.float64)
    torch.testing.assert_close(box_iou(a, b), iou)
    torch.testing.assert_close(generalized_box_iou(a, b), giou)
    assert not box_iou(a, b).isnan().any() and not generalized_box_iou(a, b).isnan().any()
    m = min(len(a), len(b))
    torch.testing.assert_close(box_iou(a[:m], b[:m], aligned=True), iou.diagonal()[:m])
    torch.testing.assert_close(generalized_box_iou(a[:m], b[:m], aligned=True), giou.diagonal()[:m])


def test_iou_and_giou_of_degenerate_pairs_hand_worked() -> None:
    d = degenerate_boxes()
    iou, giou = box_iou(d, d), generalized_box_iou(d, d)
    assert iou[0, 1] == 1.0 and giou[0, 1] == 1.0  # identical boxes
    assert iou[2, 3] == 0.0 and giou[2, 3] == 0.0  # identical points: no union, no enclosure
    assert iou[0, 2] == 0.0 and giou[0, 2] == 0.0  # a point inside: enclosure = union
    assert iou[0, 5] == 0.0 and giou[0, 5] == 0.0  # touching: enclosure = union
    # (2,3,7,9) in (0,0,10,10): IoU 30/100, enclosure is the big box, so GIoU = IoU.
    assert iou[0, 7] == pytest.approx(0.3) and giou[0, 7] == pytest.approx(0.3)
    # A point at (5,5) and the box (10,0,20,10): IoU 0, enclosure 15x10 = 150, union 100.
    assert giou[2, 5] == pytest.approx(-50 / 150)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("grid", [None, 8])
@pytest.mark.parametrize("thr", [0.0, 0.3, 0.5])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("device", DEVICES)
def test_batched_nms_matches_greedy_loop(
    seed: int, grid: int | None, thr: float, dtype: torch.dtype, device: str
) -> None:
    g = torch.Generator().manual_seed(100 + seed)
    boxes = torch.cat((random_boxes(60, seed=seed, grid=grid), degenerate_boxes())).to(dtype)
    n = len(boxes)
    # Scores on a coarse grid so that ties happen.
    scores = (torch.randint(0, 10, (n,), generator=g).double() / 10).to(dtype)
    labels = torch.randint(0, 3, (n,), generator=g)
    expected = ref_nms(boxes.tolist(), scores.tolist(), labels.tolist(), thr)
    boxes, scores, labels = boxes.to(device), scores.to(device), labels.to(device)
    kept = batched_nms(boxes, scores, labels, thr)
    assert kept.device == boxes.device and kept.tolist() == expected
    single = ref_nms(boxes.tolist(), scores.tolist(), [0] * n, thr)
    assert nms(boxes, scores, thr).tolist() == single


def test_nms_resolves_a_long_suppression_chain() -> None:
    # Box k overlaps only boxes k-1 and k+1 (IoU 1/3): greedy keeps every other box, and each
    # box's fate depends on all boxes before it.
    n = 40
    x = torch.arange(n, dtype=torch.float64) * 5
    boxes = torch.stack((x, torch.zeros(n), x + 10, torch.ones(n)), dim=1)
    scores = torch.linspace(1, 0.1, n, dtype=torch.float64)
    assert nms(boxes, scores, 0.3).tolist() == list(range(0, n, 2))
    assert nms(boxes, scores, 0.4).tolist() == list(range(n))


@pytest.mark.parametrize("clustered", [False, True])
def test_nms_in_small_steps_gives_the_same_answer(
    monkeypatch: pytest.MonkeyPatch, clustered: bool
) -> None:
    import fcnlab.ops.boxes as box_ops

    g = torch.Generator().manual_seed(9)
    if clustered:  # jittered copies of 10 boxes: the first settled boxes prune most others
        centres = random_boxes(10, seed=7).repeat(20, 1)
        boxes = centres + torch.randn(200, 4, generator=g, dtype=torch.float64)
    else:
        boxes = random_boxes(200, seed=7)
    scores = torch.rand(200, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 3, (200,), generator=g)
    whole = batched_nms(boxes, scores, labels, 0.2)
    assert whole.tolist() == ref_nms(boxes.tolist(), scores.tolist(), labels.tolist(), 0.2)
    monkeypatch.setattr(box_ops, "NMS_BLOCK_PAIRS", 50)
    monkeypatch.setattr(box_ops, "NMS_HEAD", 7)
    assert torch.equal(batched_nms(boxes, scores, labels, 0.2), whole)


@pytest.mark.parametrize("thr", [0.0, 0.3, 0.7, 1.0])
@pytest.mark.parametrize("grid", [None, 8])
def test_nms_in_small_steps_with_many_labels_matches_greedy_loop(
    monkeypatch: pytest.MonkeyPatch, thr: float, grid: int | None
) -> None:
    import fcnlab.ops.boxes as box_ops

    # Boxes of widths from 0 to 100 and 0 to 10: a settled box's partners run from its own
    # width and the widest box's. Labels as a batched detector gives them, image * C + class.
    g = torch.Generator().manual_seed(11)
    small = random_boxes(60, seed=3, grid=grid) / 10 + 40
    boxes = torch.cat((random_boxes(140, seed=5, grid=grid), small, degenerate_boxes()))
    n = len(boxes)
    scores = torch.rand(n, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 2, (n,), generator=g) * 80 + torch.randint(0, 2, (n,), generator=g)
    monkeypatch.setattr(box_ops, "NMS_BLOCK_PAIRS", 50)
    monkeypatch.setattr(box_ops, "NMS_HEAD", 25)
    for dtype in (torch.float64, torch.float32):
        boxes, scores = boxes.to(dtype), scores.to(dtype)
        expected = ref_nms(boxes.tolist(), scores.tolist(), labels.tolist(), thr)
        assert batched_nms(boxes, scores, labels, thr).tolist() == expected


def test_a_settled_box_removes_later_boxes_up_to_its_reach(monkeypatch: pytest.MonkeyPatch) -> None:
    import fcnlab.ops.boxes as box_ops

    # The first box, settled alone, against boxes of its label starting d before it and ending
    # with it (IoU 10 / (10 + d): above 0.5 while d < 10) or starting d after it (IoU
    # (10 - d) / 10: above 0.5 while d < 5). A wide box of another label makes the widest box
    # no limit.
    boxes = torch.tensor(
        [
            [100.0, 0.0, 110.0, 10.0],
            [90.1, 0.0, 110.0, 10.0],  # d = 9.9 before: removed
            [89.9, 0.0, 110.0, 10.0],  # d = 10.1 before: stays
            [104.9, 0.0, 110.0, 10.0],  # d = 4.9 after: removed
            [105.1, 0.0, 110.0, 10.0],  # d = 5.1 after: stays
            [0.0, 50.0, 400.0, 60.0],
        ]
    )
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    labels = torch.tensor([0, 0, 0, 0, 0, 1])
    monkeypatch.setattr(box_ops, "NMS_HEAD", 1)
    assert batched_nms(boxes, scores, labels, 0.5).tolist() == [0, 2, 4, 5]
    assert ref_nms(boxes.tolist(), scores.tolist(), labels.tolist(), 0.5) == [0, 2, 4, 5]


def test_nms_of_nothing_and_shape_errors() -> None:
    empty = nms(torch.zeros(0, 4), torch.zeros(0), 0.5)
    assert empty.dtype == torch.int64 and empty.numel() == 0
    with pytest.raises(ValueError, match=r"\(3,\)"):
        batched_nms(torch.zeros(3, 4), torch.zeros(2), torch.zeros(3, dtype=torch.int64), 0.5)


def test_clip_boxes_to_height_and_width() -> None:
    boxes = torch.tensor([[[-5.0, -5.0, 50.0, 50.0], [10.0, 12.0, 20.0, 22.0]]])
    clipped = clip_boxes(boxes, (30, 40))  # H 30, W 40: x up to 40, y up to 30
    expected = torch.tensor([[[0.0, 0.0, 40.0, 30.0], [10.0, 12.0, 20.0, 22.0]]])
    torch.testing.assert_close(clipped, expected)
