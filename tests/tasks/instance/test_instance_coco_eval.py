"""COCO mask AP and box AP: checked against pycocotools run by hand and against hand-worked
numbers, and each way pycocotools goes wrong silently (mask sizes, "bbox" on mask results,
empty result sets, crowd regions)."""

from __future__ import annotations

import contextlib
import io
import math
from typing import Any

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from fcnlab.ops.masks import masks_to_boxes
from fcnlab.tasks.detection.coco_eval import COCO_METRICS, coco_evaluate, detections_to_coco
from fcnlab.tasks.instance.coco_eval import coco_evaluate_instances, encode_masks, rle_areas


def rect(size: tuple[int, int], rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    """A bool (H, W) mask, True on rows [r0, r1) and columns [c0, c1)."""
    mask = np.zeros(size, dtype=bool)
    mask[rows[0] : rows[1], cols[0] : cols[1]] = True
    return mask


def record(
    image_id: int, size: tuple[int, int], masks: list[np.ndarray], labels: list[int],
    iscrowd: list[int] | None = None,
) -> dict[str, Any]:  # fmt: skip
    stack = torch.from_numpy(np.stack(masks)) if masks else torch.zeros(0, *size, dtype=torch.bool)
    rles = encode_masks(stack)
    return {
        "boxes": masks_to_boxes(stack),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "iscrowd": torch.tensor(iscrowd or [0] * len(labels), dtype=torch.int64),
        "image_id": image_id,
        "height": size[0],
        "width": size[1],
        "segmentation": rles,
        "area": rle_areas(rles),
    }


def found(size: tuple[int, int], masks: list[np.ndarray], scores: list[float], labels: list[int]
          ) -> dict[str, Any]:  # fmt: skip
    stack = torch.from_numpy(np.stack(masks)) if masks else torch.zeros(0, *size, dtype=torch.bool)
    return {
        "boxes": masks_to_boxes(stack),
        "scores": torch.tensor(scores, dtype=torch.float32),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "segmentation": encode_masks(stack),
    }


# Two images, three objects. Predictions: A exactly (IoU 1); B at IoU 440/600 = 0.73 (a hit at
# 0.50..0.70, five of the ten thresholds); C at IoU 320/480 = 0.67 (a hit at 0.50..0.65, four);
# and a false positive of class 0 in image 2, scored highest.
SIZE_1, SIZE_2 = (40, 60), (50, 50)
A, B = rect(SIZE_1, (0, 20), (0, 20)), rect(SIZE_1, (20, 40), (30, 60))
C = rect(SIZE_2, (10, 30), (10, 30))
RECORDS = [record(1, SIZE_1, [A, B], [0, 1]), record(2, SIZE_2, [C], [0])]
DETECTIONS = [
    found(SIZE_1, [A, rect(SIZE_1, (20, 40), (30, 52))], [0.9, 0.8], [0, 1]),
    found(SIZE_2, [rect(SIZE_2, (10, 30), (14, 34)), rect(SIZE_2, (35, 45), (35, 45))],
          [0.7, 0.95], [0, 0]),
]  # fmt: skip


def by_hand(
    gt_masks: list[tuple[int, tuple[int, int], np.ndarray, int, int]],
    results: list[tuple[int, np.ndarray, int, float]],
    iou_type: str,
    categories: int = 2,
) -> np.ndarray:
    """pycocotools as its README uses it: ground truth from pycocotools' own RLEs, results through
    ``COCO.loadRes`` (mask results with a segmentation and no bbox, box results with a bbox)."""
    images, annotations = {}, []
    for image_id, size, mask, label, crowd in gt_masks:
        images[image_id] = {"id": image_id, "height": size[0], "width": size[1]}
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        annotations.append({
            "id": len(annotations) + 1, "image_id": image_id, "category_id": label + 1,
            "segmentation": rle, "area": float(mask_utils.area(rle)),
            "bbox": mask_utils.toBbox(rle).tolist(), "iscrowd": crowd,
        })  # fmt: skip
    entries = []
    for image_id, mask, label, score in results:
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        region = {"segmentation": rle} if iou_type == "segm" else {
            "bbox": mask_utils.toBbox(rle).tolist()}  # fmt: skip
        entries.append({"image_id": image_id, "category_id": label + 1, "score": score, **region})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {
            "images": list(images.values()),
            "annotations": annotations,
            "categories": [{"id": k + 1, "name": str(k)} for k in range(categories)],
        }
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(entries), iouType=iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


HAND_GT = [(1, SIZE_1, A, 0, 0), (1, SIZE_1, B, 1, 0), (2, SIZE_2, C, 0, 0)]
HAND_RESULTS = [
    (1, A, 0, 0.9),
    (1, rect(SIZE_1, (20, 40), (30, 52)), 1, 0.8),
    (2, rect(SIZE_2, (10, 30), (14, 34)), 0, 0.7),
    (2, rect(SIZE_2, (35, 45), (35, 45)), 0, 0.95),
]


def same_stats(ours: dict[str, float], theirs: np.ndarray) -> None:
    expected = {
        k: (math.nan if v < 0 else float(v)) for k, v in zip(COCO_METRICS, theirs, strict=True)
    }
    for key in COCO_METRICS:
        if math.isnan(expected[key]):
            assert math.isnan(ours[key]), key
        else:
            assert ours[key] == pytest.approx(expected[key]), key


def test_encode_masks_round_trips_through_pycocotools_decode() -> None:
    masks = torch.rand(3, 7, 5, generator=torch.Generator().manual_seed(0)) > 0.5
    rles = encode_masks(masks)
    assert [rle["size"] for rle in rles] == [[7, 5]] * 3
    assert all(isinstance(rle["counts"], str) for rle in rles)  # JSON-ready
    decoded = mask_utils.decode(rles)  # (H, W, K)
    assert torch.equal(torch.from_numpy(decoded).permute(2, 0, 1).bool(), masks)
    assert rle_areas(rles).tolist() == masks.sum(dim=(1, 2)).double().tolist()
    assert encode_masks(torch.zeros(0, 7, 5, dtype=torch.bool)) == []


def test_mask_and_box_ap_match_pycocotools_by_hand_and_the_hand_worked_numbers() -> None:
    masks, boxes = coco_evaluate_instances(RECORDS, DETECTIONS, 2)
    same_stats(masks.stats, by_hand(HAND_GT, HAND_RESULTS, "segm"))
    same_stats(boxes.stats, by_hand(HAND_GT, HAND_RESULTS, "bbox"))
    # Class 0: the false positive, A, then C. At the 4 thresholds where C is a hit the
    # interpolated precision is 2/3 at every recall; at the other 6 it is 1/2 up to recall
    # 0.5 (51 of COCO's 101 recall points), then 0. Class 1: a hit at 5 thresholds of 10.
    class_0 = (4 * 2 / 3 + 6 * 0.5 * 51 / 101) / 10
    assert masks.class_ap() == pytest.approx([class_0, 0.5])
    assert masks.class_ap(0.5) == pytest.approx([2 / 3, 1.0])
    assert masks.stats["AP"] == pytest.approx((class_0 + 0.5) / 2)
    # Rectangles: a box's IoU is its mask's, so box AP is mask AP here.
    assert boxes.class_ap() == pytest.approx(masks.class_ap())
    assert len(masks.summary.splitlines()) == 12 and "segm" not in masks.summary


def test_a_mask_of_another_size_than_its_image_is_an_error_not_a_silent_zero() -> None:
    wrong = found(
        (SIZE_1[0], SIZE_1[1] + 1),
        [np.pad(A, ((0, 0), (0, 1))), np.pad(rect(SIZE_1, (20, 40), (30, 52)), ((0, 0), (0, 1)))],
        [0.9, 0.8],
        [0, 1],
    )
    # What pycocotools does with it: the perfect mask A scores IoU -1, so AP 0, without a word.
    gt = [entry for entry in HAND_GT if entry[0] == 1]
    silent = by_hand(gt, [(1, np.pad(A, ((0, 0), (0, 1))), 0, 0.9)], "segm")
    assert silent[1] == 0.0
    with pytest.raises(ValueError, match=r"predicted mask of image 1 .* 40x61 mask, but its "
                                         r"image is 40x60"):  # fmt: skip
        coco_evaluate_instances(RECORDS, [wrong, DETECTIONS[1]], 2)
    bad_truth = [dict(RECORDS[0], height=41), RECORDS[1]]
    with pytest.raises(ValueError, match=r"ground-truth mask of image 1 .* 40x60 mask, but its "
                                         r"image is 41x60"):  # fmt: skip
        coco_evaluate_instances(bad_truth, DETECTIONS, 2)


def test_mask_results_carry_no_bbox_and_areas_are_the_masks() -> None:
    # An L of 399 pixels along the top and left edges of a 200 x 200 image: a small mask
    # (< 32^2) in a large box (200^2). A higher-scored false positive, the L along the bottom
    # and right edges, is as small. With the masks' areas both count in APs: FP then TP, AP 1/2.
    size = (200, 200)
    truth = rect(size, (0, 1), (0, 200)) | rect(size, (0, 200), (0, 1))
    other = rect(size, (199, 200), (0, 200)) | rect(size, (0, 200), (199, 200))
    records = [record(0, size, [truth], [0])]
    detections = [found(size, [truth, other], [0.5, 0.9], [0, 0])]
    entries = detections_to_coco(detections, [0], iou_type="segm")
    assert all("bbox" not in entry for entry in entries)
    masks = coco_evaluate(records, detections, 1, iou_type="segm")
    assert masks.stats["APs"] == pytest.approx(0.5) and masks.stats["AP"] == pytest.approx(0.5)
    assert math.isnan(masks.stats["APl"]) and math.isnan(masks.stats["APm"])
    # By hand, results with a "bbox" get their box's area from loadRes: the false positive is
    # then large, outside the small range, and APs reads 1.
    hand = by_hand([(0, size, truth, 0, 0)], [(0, truth, 0, 0.5), (0, other, 0, 0.9)], "segm", 1)
    assert hand[3] == pytest.approx(0.5)
    with_boxes = [
        {"image_id": 0, "category_id": 1, "score": s, "bbox": mask_utils.toBbox(r).tolist(),
         "segmentation": r}
        for s, r in zip((0.5, 0.9), mask_utils.encode(np.asfortranarray(
            np.stack([truth, other], axis=-1).astype(np.uint8))), strict=True)
    ]  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": [{"id": 0, "height": 200, "width": 200}],
                      "annotations": [{"id": 1, "image_id": 0, "category_id": 1, "iscrowd": 0,
                                       "segmentation": records[0]["segmentation"][0],
                                       "area": 399.0, "bbox": [0, 0, 200, 200]}],
                      "categories": [{"id": 1, "name": "l"}]}  # fmt: skip
        gt.createIndex()
        boxed = COCOeval(gt, gt.loadRes(with_boxes), iouType="segm")
        boxed.evaluate()
        boxed.accumulate()
        boxed.summarize()
    assert boxed.stats[3] == pytest.approx(1.0)  # the gotcha: the false positive went unseen
    # Ground truth's area is the mask's: 399 pixels, not its box's 40000.
    assert records[0]["area"].tolist() == [399.0]


def test_no_predictions_anywhere_score_zero_and_images_without_any_are_counted() -> None:
    empty = [found(SIZE_1, [], [], []), found(SIZE_2, [], [], [])]
    masks, boxes = coco_evaluate_instances(RECORDS, empty, 2)
    assert masks.stats["AP"] == 0.0 and boxes.stats["AP"] == 0.0
    assert masks.class_ap() == [0.0, 0.0]
    # Image 2 without predictions: its object C is missed, class 0 recall stops at 1/2.
    partial = [DETECTIONS[0], found(SIZE_2, [], [], [])]
    masks, _ = coco_evaluate_instances(RECORDS, partial, 2)
    hand = by_hand(HAND_GT, HAND_RESULTS[:2], "segm")
    same_stats(masks.stats, hand)
    assert masks.class_ap()[0] == pytest.approx(51 / 101)
    # An image with neither objects nor predictions changes nothing.
    blank = record(3, (20, 20), [], [])
    masks_blank, _ = coco_evaluate_instances(
        [*RECORDS, blank], [*partial, found((20, 20), [], [], [])], 2
    )
    assert masks_blank.stats["AP"] == pytest.approx(masks.stats["AP"])


def test_a_detection_on_a_crowd_region_is_neither_right_nor_wrong() -> None:
    size = (60, 60)
    person, crowd = rect(size, (0, 20), (0, 20)), rect(size, (30, 60), (30, 60))
    inside = rect(size, (35, 55), (35, 55))  # all of it in the crowd region, IoU 400/900 with it
    detections = [found(size, [person, inside], [0.8, 0.9], [0, 0])]
    masks, boxes = coco_evaluate_instances(
        [record(0, size, [person, crowd], [0, 0], iscrowd=[0, 1])], detections, 1
    )
    assert masks.stats["AP"] == pytest.approx(1.0) and boxes.stats["AP"] == pytest.approx(1.0)
    same_stats(
        masks.stats,
        by_hand([(0, size, person, 0, 0), (0, size, crowd, 0, 1)],
                [(0, person, 0, 0.8), (0, inside, 0, 0.9)], "segm", 1),
    )  # fmt: skip
    # The same region as an ordinary object: the detection in it is a false positive ranked
    # first (IoU 0.44) and the object is missed.
    plain, _ = coco_evaluate_instances([record(0, size, [person, crowd], [0, 0])], detections, 1)
    assert plain.stats["AP"] == pytest.approx(0.5 * 51 / 101)
