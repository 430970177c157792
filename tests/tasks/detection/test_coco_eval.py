from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from fcnlab.tasks.detection.coco_eval import (
    COCO_METRICS,
    RECALL_POINTS,
    average_precision,
    coco_evaluate,
    coco_map,
    detections_to_coco,
    to_coco,
    voc_ap50,
)


def found(boxes: list[list[float]], scores: list[float], labels: list[int]) -> dict:
    return {
        "boxes": torch.tensor(boxes).reshape(-1, 4),
        "scores": torch.tensor(scores),
        "labels": torch.tensor(labels, dtype=torch.int64),
    }


RECORDS = [
    {
        "image_id": 7,
        "height": 200,
        "width": 300,
        "boxes": torch.tensor([[10.0, 20.0, 110.0, 120.0], [150.0, 20.0, 170.0, 30.0]]),
        "labels": torch.tensor([0, 2]),
    },
    {
        "image_id": 9,
        "boxes": torch.tensor([[0.0, 0.0, 60.0, 40.0], [5.0, 5.0, 50.0, 50.0]]),
        "labels": torch.tensor([1, 0]),
        "iscrowd": torch.tensor([0, 1]),
    },
]


def test_to_coco_writes_cocos_format() -> None:
    gt = to_coco(RECORDS, ["cat", "dog", "bird"])
    json.dumps(gt)  # plain JSON types only
    assert gt["images"] == [{"id": 7, "height": 200, "width": 300}, {"id": 9}]
    assert gt["categories"][1] == {"id": 2, "name": "dog"}
    first, *_, crowd = gt["annotations"]
    assert first == {
        "id": 1,
        "image_id": 7,
        "category_id": 1,
        "bbox": [10.0, 20.0, 100.0, 100.0],
        "area": 10000.0,
        "iscrowd": 0,
    }
    assert crowd["iscrowd"] == 1 and crowd["category_id"] == 1 and crowd["area"] == 45.0 * 45
    with pytest.raises(ValueError, match=r"image 0 has label 3; expected \[0, 3\)"):
        to_coco([{"boxes": torch.zeros(1, 4), "labels": torch.tensor([3])}], 3)


def test_detections_to_coco() -> None:
    results = detections_to_coco([found([[1.0, 2.0, 4.0, 8.0]], [0.5], [2])], [11])
    assert results == [
        {"image_id": 11, "category_id": 3, "bbox": [1.0, 2.0, 3.0, 6.0], "score": 0.5}
    ]


def test_perfect_detections_give_ap_one() -> None:
    detections = [
        found(RECORDS[0]["boxes"].tolist(), [0.9, 0.8], [0, 2]),
        found([[0.0, 0.0, 60.0, 40.0]], [0.7], [1]),
    ]
    stats = coco_map(RECORDS, detections, 3)
    assert list(stats) == list(COCO_METRICS)
    # One small (20 x 10), one medium (60 x 40) and one large (100 x 100) object.
    assert stats == pytest.approx(dict.fromkeys(COCO_METRICS, 1.0))
    alone = coco_map(RECORDS[:1], detections[:1], 3)
    assert math.isnan(alone["APm"]) and math.isnan(alone["ARm"])  # no medium object left
    assert alone["AP"] == pytest.approx(1.0)


def test_coco_partial_case_hand_worked() -> None:
    records = [
        {
            "boxes": torch.tensor([[0.0, 0.0, 100.0, 100.0], [200.0, 0.0, 300.0, 100.0]]),
            "labels": torch.tensor([0, 0]),
        }
    ]
    # One exact hit (0.9), one false positive (0.8), the second object missed: precision 1 up
    # to recall 0.5, so 51 of COCO's 101 recall points (0, 0.01, ..., 0.5) score 1: AP 51/101.
    detections = [found([[0.0, 0.0, 100.0, 100.0], [400.0, 0.0, 450.0, 50.0]], [0.9, 0.8], [0, 0])]
    stats = coco_map(records, detections, 1)
    assert stats["AP"] == pytest.approx(51 / 101) and stats["AP50"] == pytest.approx(51 / 101)
    assert stats["AR100"] == pytest.approx(0.5) and stats["AR1"] == pytest.approx(0.5)
    # A single box at IoU 0.62 is a hit at thresholds 0.50, 0.55 and 0.60 out of ten: AP 0.3.
    loose = [found([[0.0, 0.0, 100.0, 62.0]], [0.9], [0])]
    stats = coco_map([{"boxes": records[0]["boxes"][:1], "labels": torch.tensor([0])}], loose, 1)
    assert stats["AP"] == pytest.approx(0.3) and stats["AP50"] == pytest.approx(1.0)
    assert stats["AP75"] == 0.0
    assert stats["APl"] == pytest.approx(0.3)  # 100 x 100 > 96^2: a large object


def test_coco_evaluate_per_class_ap_and_precision_recall_curves() -> None:
    records = [
        {
            "boxes": torch.tensor([[0.0, 0.0, 100.0, 100.0], [200.0, 0.0, 300.0, 100.0]]),
            "labels": torch.tensor([0, 0]),
        },
        {"boxes": torch.tensor([[0.0, 0.0, 100.0, 100.0]]), "labels": torch.tensor([1])},
    ]
    detections = [
        found([[0.0, 0.0, 100.0, 100.0], [400.0, 0.0, 450.0, 50.0]], [0.9, 0.8], [0, 0]),
        found([[0.0, 0.0, 100.0, 62.0]], [0.9], [1]),
    ]
    evaluation = coco_evaluate(records, detections, ["disk", "square", "ring"])
    # Class 0 as in the hand-worked case above (51/101 at every IoU); class 1 at IoU 0.62 is a
    # hit at 3 of 10 thresholds; class 2 has no ground truth.
    ap, ap50 = evaluation.class_ap(), evaluation.class_ap(0.5)
    assert ap[:2] == pytest.approx([51 / 101, 0.3]) and math.isnan(ap[2])
    assert ap50[:2] == pytest.approx([51 / 101, 1.0]) and math.isnan(ap50[2])
    assert evaluation.class_ap(0.75)[:2] == pytest.approx([51 / 101, 0.0])
    assert evaluation.stats["AP"] == pytest.approx((51 / 101 + 0.3) / 2)  # COCO's class mean
    curves = evaluation.pr_curves(0.5)
    assert curves.shape == (len(RECALL_POINTS), 3)
    np.testing.assert_allclose(curves[:, 0], (RECALL_POINTS <= 0.5).astype(float), atol=1e-12)
    np.testing.assert_allclose(curves[:, 1], np.ones(101), atol=1e-12)
    assert np.isnan(curves[:, 2]).all()
    with pytest.raises(ValueError, match=r"IoU threshold 0\.52 is not one of COCO's"):
        evaluation.pr_curves(0.52)
    lines = evaluation.summary.splitlines()
    assert len(lines) == 12 and lines[-1].startswith(" Average Recall     (AR) @[ IoU=0.50:0.95")
    assert lines[3].endswith("= -1.000")  # APs: no small object, NaN in the stats
    assert math.isnan(evaluation.stats["APs"])


def test_to_coco_rejects_a_repeated_image_id() -> None:
    record = {"image_id": 4, "boxes": torch.zeros(0, 4), "labels": torch.zeros(0)}
    with pytest.raises(ValueError, match="image id 4 appears twice \\(records 0 and 1\\)"):
        to_coco([record, record], 1)


def test_coco_crowd_regions_and_no_detections() -> None:
    # A detection on the crowd region (image 9, class 0) is ignored, not a false positive.
    detections = [
        found(RECORDS[0]["boxes"].tolist(), [0.9, 0.8], [0, 2]),
        found([[0.0, 0.0, 60.0, 40.0], [5.0, 5.0, 50.0, 50.0]], [0.7, 0.95], [1, 0]),
    ]
    assert coco_map(RECORDS, detections, 3)["AP"] == pytest.approx(1.0)
    empty = [found([], [], []), found([], [], [])]
    assert coco_map(RECORDS, empty, 3)["AP"] == 0.0


def test_average_precision_interpolates() -> None:
    # Recall 0.5 at precision 1 and 0.5, then recall 1 at precision 2/3: the precision at 0.5
    # is the best to its right, 1; area 0.5 * 1 + 0.5 * 2/3.
    ap = average_precision(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3]))
    assert ap == pytest.approx(0.5 + 1 / 3)


def test_voc_ap50_hand_worked() -> None:
    records = [
        {
            "boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]]),
            "labels": torch.tensor([0, 0]),
            "difficult": torch.tensor([False, True]),
        },
        {
            "boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0], [50.0, 0.0, 60.0, 10.0]]),
            "labels": torch.tensor([0, 1]),
        },
    ]
    detections = [
        # class 0: a hit (0.9), a detection of the difficult box (0.8, ignored), a miss (0.7)
        found([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]], [0.9, 0.8, 0.7], [0, 0, 0]),
        # class 0: a hit at IoU 0.5 exactly (0.6); class 1: a hit (0.95), then a duplicate of
        # it (0.9); class 2, which has no ground truth: one box
        found(
            [[0, 0, 10, 5], [50, 0, 60, 10], [50, 0, 60, 10], [0, 0, 5, 5]],
            [0.6, 0.95, 0.9, 0.99],
            [0, 1, 1, 2],
        ),
    ]
    result = voc_ap50(records, detections, num_classes=3)
    # class 0, two non-difficult objects: TP, FP, TP -> (P, R) = (1, .5), (.5, .5), (2/3, 1).
    assert result["AP"][0] == pytest.approx(0.5 + 0.5 * 2 / 3)
    # class 1: TP then a duplicate FP: precision 1 at recall 1.
    assert result["AP"][1] == pytest.approx(1.0)
    assert math.isnan(result["AP"][2])
    assert result["mAP"] == pytest.approx((0.5 + 1 / 3 + 1.0) / 2)
    # Below IoU 0.5 the same class-0 detection is a false positive.
    shifted = [detections[0], found([[0, 0, 10, 4.9]], [0.6], [0])]
    assert voc_ap50(records, shifted, 3)["AP"][0] == pytest.approx(0.5)
