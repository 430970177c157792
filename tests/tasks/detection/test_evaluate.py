from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers.devices import DEVICES, to_device
from helpers.gloo import run_two_processes
from torch import nn

from fcnlab.tasks.detection.coco_eval import COCO_METRICS, CocoEvaluation, coco_map
from fcnlab.tasks.detection.evaluate import (
    DetectionEvalResult,
    DetectionEvaluator,
    evaluate_detection,
    to_original_frame,
)


class FakeDetector(nn.Module):
    """Returns given detections: image ``i`` of a batch is filled with its key ``i``."""

    def __init__(self, detections: dict[int, dict[str, torch.Tensor]]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))
        self.detections = detections
        self.calls: list[tuple[tuple[int, int], bool]] = []

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"key": images[:, 0, 0, 0] + self.weight}

    def decode(
        self,
        outputs: dict[str, torch.Tensor],
        image_size: tuple[int, int],
        score_threshold: float = 0.05,
        top_k: int = 100,
    ) -> list[dict[str, torch.Tensor]]:
        self.calls.append((tuple(image_size), self.training))
        results = []
        for key in outputs["key"].round().long().tolist():
            d = self.detections[key]
            keep = (d["scores"] >= score_threshold).nonzero()[:, 0][:top_k]
            results.append({name: value[keep] for name, value in d.items()})
        return results


def found(boxes: list[list[float]], scores: list[float], labels: list[int]) -> dict:
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "scores": torch.tensor(scores),
        "labels": torch.tensor(labels, dtype=torch.int64),
    }


def target(
    image_id: int,
    boxes: list[list[float]],
    labels: list[int],
    image_size: tuple[int, int],
    orig_size: tuple[int, int] | None = None,
    iscrowd: list[int] | None = None,
) -> dict[str, Any]:
    m = len(labels)
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "iscrowd": torch.tensor(iscrowd or [0] * m, dtype=torch.int64),
        "difficult": torch.zeros(m, dtype=torch.int64),
        "image_id": image_id,
        "orig_size": orig_size or image_size,
        "image_size": image_size,
    }


def batch(keys: list[int], targets: list[dict[str, Any]]) -> tuple[torch.Tensor, list[dict]]:
    """Images padded at the bottom/right to the largest, each filled with its key."""
    h = max(t["image_size"][0] for t in targets)
    w = max(t["image_size"][1] for t in targets)
    images = torch.zeros(len(keys), 3, h, w)
    for i, (key, t) in enumerate(zip(keys, targets, strict=True)):
        images[i, :, : t["image_size"][0], : t["image_size"][1]] = key
    return images, targets


def test_perfect_detections_score_one_and_mode_is_restored() -> None:
    targets = [
        target(3, [[4, 4, 20, 24], [30, 2, 60, 40]], [0, 2], (48, 64)),
        target(8, [[0, 0, 40, 30]], [1], (40, 56)),
    ]
    model = FakeDetector(
        {
            1: found(targets[0]["boxes"].tolist(), [0.9, 0.8], [0, 2]),
            2: found([*targets[1]["boxes"].tolist(), [0, 0, 5, 5]], [0.7, 0.01], [1, 0]),
        }
    )
    model.train()
    result = evaluate_detection(model, [batch([1, 2], targets)], num_classes=4)
    assert model.training  # restored
    assert model.calls == [((48, 64), False)]  # the padded batch's size, decoded in eval mode
    assert result.stats["AP"] == pytest.approx(1.0) and result.stats["AP50"] == pytest.approx(1.0)
    assert result.per_class_ap[:3] == pytest.approx([1.0, 1.0, 1.0])
    assert math.isnan(result.per_class_ap[3]) and math.isnan(result.per_class_ap50[3])
    assert result.num_images == 2 and result.score == result.stats["AP"]
    assert result.metric_name == "AP"
    # The 0.01 detection fell under the default score threshold; with threshold 0 it is a
    # false positive of class 0 ranked below its true positive: still AP 1.
    low = evaluate_detection(model, [batch([1, 2], targets)], 4, score_threshold=0.0)
    assert low.stats["AP"] == pytest.approx(1.0)
    assert result.coco is not None
    summary = result.coco.summary.splitlines()
    assert len(summary) == 12
    assert summary[0].startswith(" Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all")


def test_shifted_detection_and_per_class_ap_match_cocoeval() -> None:
    # Class 0: one hit, one false positive above the second object's miss (AP 51/101, see
    # tests/test_detection_eval.py); class 1: a box at IoU 0.62, a hit at 0.50/0.55/0.60 only.
    targets = [
        target(0, [[0, 0, 100, 100], [200, 0, 300, 100]], [0, 0], (120, 320)),
        target(1, [[0, 0, 100, 100]], [1], (120, 320)),
    ]
    detections = {
        0: found([[0, 0, 100, 100], [400, 0, 450, 50]], [0.9, 0.8], [0, 0]),
        1: found([[0, 0, 100, 62]], [0.9], [1]),
    }
    result = evaluate_detection(FakeDetector(detections), [batch([0, 1], targets)], 2)
    assert result.per_class_ap == pytest.approx([51 / 101, 0.3])
    assert result.per_class_ap50 == pytest.approx([51 / 101, 1.0])
    assert result.stats["AP"] == pytest.approx((51 / 101 + 0.3) / 2)
    assert result.stats["AP50"] == pytest.approx((51 / 101 + 1.0) / 2)
    # The same numbers from coco_map on the records and detections directly.
    direct = coco_map(targets, [detections[0], detections[1]], 2)
    assert {k: v for k, v in result.stats.items() if not math.isnan(v)} == pytest.approx(
        {k: v for k, v in direct.items() if not math.isnan(v)}
    )


def test_boxes_are_scaled_to_the_stored_size_and_clipped_to_the_image() -> None:
    # A 30 x 30 box (900 px, "small" < 32^2) in an image resized to half its stored size is a
    # 60 x 60 "medium" object of the stored image.
    half = target(5, [[10, 10, 40, 40]], [0], (50, 60), orig_size=(100, 120))
    record, mapped = to_original_frame(half, found([[10, 10, 40, 40]], [0.9], [0]))
    assert record["boxes"].tolist() == [[20.0, 20.0, 80.0, 80.0]]
    assert (record["height"], record["width"], record["image_id"]) == (100, 120, 5)
    assert mapped["boxes"].tolist() == [[20.0, 20.0, 80.0, 80.0]]
    # Anisotropic: x by 120 / 60 = 2, y by 100 / 25 = 4.
    squashed = target(6, [[10, 10, 40, 20]], [0], (25, 60), orig_size=(100, 120))
    assert to_original_frame(squashed, found([], [], []))[0]["boxes"].tolist() == [
        [20.0, 40.0, 80.0, 80.0]
    ]
    # The second image sits in a batch padded to 50 x 60: its detection running into the
    # padding is clipped to its own 40 x 40 (IoU 1 after, 400 / 900 before).
    small = target(7, [[20, 20, 40, 40]], [0], (40, 40))
    detections = {
        1: found([[10, 10, 40, 40]], [0.9], [0]),
        2: found([[20, 20, 50, 50]], [0.8], [0]),
    }
    result = evaluate_detection(FakeDetector(detections), [batch([1, 2], [half, small])], 1)
    assert result.stats["AP"] == pytest.approx(1.0)
    # One small object (the 20 x 20 box of image 7), one medium (image 5's), none large.
    assert result.stats["APs"] == pytest.approx(1.0) and result.stats["APm"] == pytest.approx(1.0)
    assert math.isnan(result.stats["APl"])


def test_crowd_ground_truth_is_ignored() -> None:
    targets = [target(0, [[0, 0, 50, 50], [60, 0, 100, 40]], [0, 0], (64, 128), iscrowd=[0, 1])]
    detections = {0: found([[0, 0, 50, 50], [60, 0, 100, 40]], [0.9, 0.95], [0, 0])}
    result = evaluate_detection(FakeDetector(detections), [batch([0], targets)], 1)
    assert result.stats["AP"] == pytest.approx(1.0)


def test_record_round_trip_is_json_safe() -> None:
    result = DetectionEvalResult(
        stats={key: (math.nan if key == "APs" else 0.5) for key in COCO_METRICS},
        per_class_ap=[0.25, math.nan],
        per_class_ap50=[0.5, math.nan],
        num_images=3,
        stage=1,
        epoch=2,
        step=40,
        coco=CocoEvaluation({}, np.zeros(0), "summary"),
    )
    record = result.record()
    text = json.dumps(record, allow_nan=False)
    assert record["kind"] == "eval" and record["task"] == "detection"
    assert record["AP"] == 0.5 and record["APs"] is None and "coco" not in record
    assert (record["stage"], record["epoch"], record["step"]) == (1, 2, 40)
    back = DetectionEvalResult.from_record(json.loads(text))
    assert back.per_class_ap[0] == 0.25 and math.isnan(back.per_class_ap[1])
    assert math.isnan(back.stats["APs"]) and back.stats["AP"] == 0.5
    assert (back.num_images, back.stage, back.epoch, back.step) == (3, 1, 2, 40)
    with pytest.raises(ValueError, match="lacks"):
        DetectionEvalResult.from_record({"kind": "eval", "mean_iou": 0.5})


def test_errors() -> None:
    model = FakeDetector({})
    with pytest.raises(ValueError, match="empty loader"):
        evaluate_detection(model, [], 2)
    with pytest.raises(ValueError, match="1 class names for 2 classes"):
        evaluate_detection(model, [], 2, class_names=["a"])


# Two ranks each evaluate half of the images; every rank must return the whole set's scores.
SHARDS = {
    0: [target(0, [[0, 0, 100, 100], [200, 0, 300, 100]], [0, 0], (120, 320))],
    1: [target(1, [[0, 0, 100, 100]], [1], (120, 320))],
}
SHARD_DETECTIONS = {
    0: found([[0, 0, 100, 100], [400, 0, 450, 50]], [0.9, 0.8], [0, 0]),
    1: found([[0, 0, 100, 62]], [0.9], [1]),
}


def shard_worker(rank: int, out: str) -> None:
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2)
    loader = [batch([rank], SHARDS[rank])]
    result = evaluate_detection(FakeDetector(SHARD_DETECTIONS), loader, 2)
    Path(out, f"{rank}.json").write_text(json.dumps(result.record()))


def test_two_gloo_processes_gather_the_whole_set(tmp_path: Path) -> None:
    run_two_processes(shard_worker, str(tmp_path))
    ranks = [json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1]
    assert ranks[0]["num_images"] == 2
    assert ranks[0]["per_class_ap"] == pytest.approx([51 / 101, 0.3])


@pytest.mark.parametrize("device", DEVICES)
def test_detections_and_targets_on_a_device_score_as_by_hand(device: str) -> None:
    # test_shifted_detection_and_per_class_ap_match_cocoeval's images, stored at twice the size
    targets = [
        target(0, [[0, 0, 100, 100], [200, 0, 300, 100]], [0, 0], (120, 320), (240, 640)),
        target(1, [[0, 0, 100, 100]], [1], (120, 320), (240, 640)),
    ]
    detections = [
        found([[0, 0, 100, 100], [400, 0, 450, 50]], [0.9, 0.8], [0, 0]),
        found([[0, 0, 100, 62]], [0.9], [1]),
    ]
    evaluator = DetectionEvaluator(2)
    evaluator.process(to_device(detections, device), to_device(targets, device))
    kept = [value for d in evaluator.records + evaluator.found for value in d.values()]
    assert {value.device.type for value in kept if isinstance(value, torch.Tensor)} == {"cpu"}
    assert evaluator.records[1]["boxes"].tolist() == [[0.0, 0.0, 200.0, 200.0]]
    result = evaluator.evaluate()
    assert result.per_class_ap == pytest.approx([51 / 101, 0.3])
    assert result.per_class_ap50 == pytest.approx([51 / 101, 1.0])
