"""Instance evaluation through the one evaluation loop: predictions in the contract's format
(float masks at stride 4) pasted to each image's stored size, ground truth likewise, scored
by COCOeval; only RLEs kept, the full-size masks made a chunk at a time."""

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
from pycocotools import mask as mask_utils
from torch import nn

from fcnlab.ops.masks import masks_to_boxes, paste_masks
from fcnlab.tasks.base import run_evaluation
from fcnlab.tasks.detection.coco_eval import COCO_METRICS, CocoEvaluation
from fcnlab.tasks.instance import evaluate
from fcnlab.tasks.instance.evaluate import (
    InstanceEvalResult,
    InstanceEvaluator,
    evaluation_peak_memory,
    segment_instances,
    to_stored_frame,
)

STRIDE = 4


class FakeInstances(nn.Module):
    """Returns given predictions: image ``i`` of a batch is filled with its key ``i``; each
    prediction's masks are given at the image's size and turned into probabilities 1 / 0 at
    stride 4 over the padded batch (cells of 4 x 4 pixels, so masks on that grid paste back
    exactly)."""

    task = "instance"
    mask_stride = STRIDE

    def __init__(self, predictions: dict[int, dict[str, torch.Tensor]]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))
        self.predictions = predictions
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
        height, width = (math.ceil(v / STRIDE) for v in image_size)
        results = []
        for key in outputs["key"].round().long().tolist():
            p = self.predictions[key]
            keep = (p["scores"] >= score_threshold).nonzero()[:, 0][:top_k]
            cells = p["masks"][keep, ::STRIDE, ::STRIDE].float()
            masks = torch.zeros(len(keep), height, width)
            masks[:, : cells.shape[1], : cells.shape[2]] = cells
            results.append({
                "boxes": p["boxes"][keep], "scores": p["scores"][keep],
                "labels": p["labels"][keep], "masks": masks,
            })  # fmt: skip
        return results


def rect(size: tuple[int, int], rows: tuple[int, int], cols: tuple[int, int]) -> torch.Tensor:
    mask = torch.zeros(size, dtype=torch.bool)
    mask[rows[0] : rows[1], cols[0] : cols[1]] = True
    return mask


def stack(size: tuple[int, int], masks: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(masks) if masks else torch.zeros(0, *size, dtype=torch.bool)


def target(
    image_id: int,
    size: tuple[int, int],
    masks: list[torch.Tensor],
    labels: list[int],
    orig_size: tuple[int, int] | None = None,
    iscrowd: list[int] | None = None,
) -> dict[str, Any]:
    m = stack(size, masks)
    return {
        "boxes": masks_to_boxes(m),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "iscrowd": torch.tensor(iscrowd or [0] * len(labels), dtype=torch.int64),
        "difficult": torch.zeros(len(labels), dtype=torch.int64),
        "masks": m,
        "image_id": image_id,
        "orig_size": orig_size or size,
        "image_size": size,
    }


def predicted(
    size: tuple[int, int], masks: list[torch.Tensor], scores: list[float], labels: list[int]
) -> dict[str, torch.Tensor]:
    m = stack(size, masks)
    return {
        "boxes": masks_to_boxes(m),
        "scores": torch.tensor(scores),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "masks": m,
    }


def batch(keys: list[int], targets: list[dict[str, Any]]) -> tuple[torch.Tensor, list[dict]]:
    """Images padded at the bottom/right to the largest, each filled with its key; the targets'
    masks padded with False, as collate_targets pads them."""
    h = max(t["image_size"][0] for t in targets)
    w = max(t["image_size"][1] for t in targets)
    images = torch.zeros(len(keys), 3, h, w)
    padded = []
    for i, (key, t) in enumerate(zip(keys, targets, strict=True)):
        images[i, :, : t["image_size"][0], : t["image_size"][1]] = key
        masks = torch.zeros(len(t["masks"]), h, w, dtype=torch.bool)
        masks[:, : t["masks"].shape[1], : t["masks"].shape[2]] = t["masks"]
        padded.append({**t, "masks": masks})
    return images, padded


def evaluate_instances(
    model: FakeInstances, loader: list, num_classes: int, chunk: int = 16, **kwargs: Any
) -> InstanceEvalResult:
    evaluator = InstanceEvaluator(num_classes, chunk=chunk)
    result = run_evaluation(
        model, loader, evaluator, lambda images: segment_instances(model, images, **kwargs)
    )
    assert isinstance(result, InstanceEvalResult)
    return result


SIZE_A, SIZE_B = (48, 64), (40, 56)
TARGETS = [
    target(3, SIZE_A, [rect(SIZE_A, (4, 24), (4, 20)), rect(SIZE_A, (0, 40), (28, 60))], [0, 2]),
    target(8, SIZE_B, [rect(SIZE_B, (0, 32), (0, 40))], [1]),
]


def test_perfect_masks_score_one_through_the_evaluation_loop() -> None:
    model = FakeInstances({
        1: predicted(SIZE_A, list(TARGETS[0]["masks"]), [0.9, 0.8], [0, 2]),
        2: predicted(SIZE_B, [TARGETS[1]["masks"][0], rect(SIZE_B, (0, 4), (0, 4))],
                     [0.7, 0.01], [1, 0]),
    }).train()  # fmt: skip
    result = evaluate_instances(model, [batch([1, 2], TARGETS)], num_classes=4)
    assert model.training and model.calls == [((48, 64), False)]
    assert result.mask_stats["AP"] == pytest.approx(1.0)
    assert result.box_stats["AP"] == pytest.approx(1.0)
    assert result.per_class_mask_ap[:3] == pytest.approx([1.0, 1.0, 1.0])
    assert math.isnan(result.per_class_mask_ap[3]) and math.isnan(result.per_class_box_ap[3])
    assert result.score == result.mask_stats["AP"] and result.metric_name == "mask AP"
    assert result.num_images == 2
    assert result.mask_coco is not None and result.box_coco is not None
    assert len(result.mask_coco.summary.splitlines()) == 12
    # The 0.01 prediction falls under COCO's 0.05; with threshold 0 it is a false positive
    # ranked below every hit: still AP 1.
    low = evaluate_instances(model, [batch([1, 2], TARGETS)], 4, score_threshold=0.0)
    assert low.mask_stats["AP"] == pytest.approx(1.0)


def test_masks_are_scored_at_the_stored_size() -> None:
    # An image shown to the model at half its stored size: its 24 x 24 object (576 px, "small"
    # < 32^2) is 48 x 48 (2304 px, "medium") as stored.
    half = target(5, (32, 48), [rect((32, 48), (4, 28), (8, 32))], [0], orig_size=(64, 96))
    guess = predicted((32, 48), [rect((32, 48), (4, 28), (8, 32))], [0.9], [0])
    record, found = to_stored_frame(half, {**guess, "mask_stride": STRIDE} | {
        "masks": guess["masks"][:, ::4, ::4].float()})  # fmt: skip
    assert (record["height"], record["width"]) == (64, 96)
    assert [rle["size"] for rle in record["segmentation"] + found["segmentation"]] == [[64, 96]] * 2
    # Ground truth by nearest neighbour: exact. The prediction as paste_masks brings it there.
    stored = rect((64, 96), (8, 56), (16, 64)).numpy()
    assert np.array_equal(mask_utils.decode(record["segmentation"][0]).astype(bool), stored)
    pasted = paste_masks(guess["masks"][:, ::4, ::4].float(), STRIDE, (32, 48), (64, 96))
    assert np.array_equal(mask_utils.decode(found["segmentation"][0]).astype(bool), pasted[0])
    assert record["area"].tolist() == [48 * 48.0]
    assert found["boxes"].tolist() == [[16.0, 8.0, 64.0, 56.0]]
    result = evaluate_instances(FakeInstances({1: guess}), [batch([1], [half])], 1)
    assert result.mask_stats["APm"] == pytest.approx(1.0)
    assert math.isnan(result.mask_stats["APs"]) and math.isnan(result.box_stats["APs"])


def test_the_padding_of_a_batch_is_cut_from_the_predicted_masks() -> None:
    # Image 7 (24 x 24) sits in a batch padded to 48 x 64; its prediction runs into the padding,
    # which is cut away: IoU 1 after (400 / 640 before).
    small = target(7, (24, 24), [rect((24, 24), (4, 24), (4, 24))], [0])
    spill = predicted(SIZE_A, [rect(SIZE_A, (4, 36), (4, 24))], [0.9], [0])
    model = FakeInstances({1: predicted(SIZE_A, [], [], []), 2: spill})
    empty_a = target(1, SIZE_A, [], [])
    result = evaluate_instances(model, [batch([1, 2], [empty_a, small])], 1)
    assert result.mask_stats["AP"] == pytest.approx(1.0)


def test_crowd_regions_and_images_without_predictions() -> None:
    size = (64, 64)
    crowd = target(0, size, [rect(size, (0, 20), (0, 20)), rect(size, (32, 64), (32, 64))], [0, 0],
                   iscrowd=[0, 1])  # fmt: skip
    guesses = predicted(size, [rect(size, (0, 20), (0, 20)), rect(size, (36, 60), (36, 60))],
                        [0.8, 0.9], [0, 0])  # fmt: skip
    result = evaluate_instances(FakeInstances({1: guesses}), [batch([1], [crowd])], 1)
    assert result.mask_stats["AP"] == pytest.approx(1.0)  # the one in the crowd is ignored
    nothing = FakeInstances({1: predicted(SIZE_A, [], [], []), 2: predicted(SIZE_B, [], [], [])})
    empty = evaluate_instances(nothing, [batch([1, 2], TARGETS)], 3)
    assert empty.mask_stats["AP"] == 0.0 and empty.box_stats["AP"] == 0.0
    assert empty.per_class_mask_ap == [0.0, 0.0, 0.0]


def test_only_rles_are_kept_and_full_size_masks_come_a_chunk_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    size = (64, 96)
    generator = torch.Generator().manual_seed(0)
    truth = [rect(size, (4 * k, 4 * k + 20), (8 * k, 8 * k + 24)) for k in range(6)]
    guesses = predicted(size, truth + [rect(size, (0, 8), (0, 8))] * 5,
                        torch.rand(11, generator=generator).tolist(), [0] * 11)  # fmt: skip
    interpolated: list[tuple[int, ...]] = []
    encoded: list[tuple[int, ...]] = []
    interpolate = torch.nn.functional.interpolate
    encode_masks = evaluate.encode_masks

    def spy_interpolate(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        out = interpolate(x, *args, **kwargs)
        interpolated.append(tuple(out.shape))
        return out

    def spy_encode(masks: torch.Tensor) -> list[dict[str, Any]]:
        encoded.append(tuple(masks.shape))
        return encode_masks(masks)

    monkeypatch.setattr(torch.nn.functional, "interpolate", spy_interpolate)
    monkeypatch.setattr(evaluate, "encode_masks", spy_encode)
    evaluator = InstanceEvaluator(1, chunk=4)
    truth_target = target(0, (32, 48), [m[::2, ::2] for m in truth], [0] * 6, orig_size=size)
    images, targets = batch([1], [truth_target])
    guesses_small = {**guesses, "masks": guesses["masks"][:, ::2, ::2]}
    evaluator.process(segment_instances(FakeInstances({1: guesses_small}), images), targets)
    # Every resized float stack holds at most 4 masks (the ground truth's are resized as
    # (1, k, H, W), the predictions' as (k, 1, H, W)); 6 + 11 masks were encoded, 4 at a time.
    assert sorted({shape[-2:] for shape in interpolated}) == [(32, 48), size]
    assert max(shape[0] * shape[1] for shape in interpolated) == 4
    assert all(shape[0] <= 4 and shape[1:] == size for shape in encoded)
    assert sum(shape[0] for shape in encoded) == 6 + 11
    # What is kept: RLE text and per-instance numbers, no (.., H, W) tensor.
    kept = [*evaluator.records[0].values(), *evaluator.found[0].values()]
    assert all(value.dim() <= 2 for value in kept if isinstance(value, torch.Tensor))
    assert all(isinstance(rle["counts"], str) for rle in evaluator.found[0]["segmentation"])


def test_peak_memory_of_a_2048x1024_image_with_100_masks_is_bounded() -> None:
    # Measured in fresh processes by the peak resident set. One float mask of 2048 x 1024 takes
    # 8 MiB: pasted 16 at a time the peak stays under 32 of them (the upsampled chunk, its
    # thresholded copy and the encoder's transposed one), where pasting all 100 at once needs
    # more than 100 (shown on a 512 x 256 image, 0.5 MiB a mask, to keep the test short).
    mask_mib = 1024 * 2048 * 4 / 2**20
    assert evaluation_peak_memory(1024, 2048, 100, chunk=16) / 2**20 < 32 * mask_mib
    small_mib = 256 * 512 * 4 / 2**20
    assert evaluation_peak_memory(256, 512, 100, chunk=100) / 2**20 > 100 * small_mib


def test_record_round_trip_is_json_safe_and_keys_do_not_collide() -> None:
    stats = {key: (math.nan if key == "APs" else 0.5) for key in COCO_METRICS}
    result = InstanceEvalResult(
        mask_stats=stats,
        box_stats={**stats, "AP": 0.25},
        per_class_mask_ap=[0.25, math.nan],
        per_class_mask_ap50=[0.5, math.nan],
        per_class_box_ap=[0.125, math.nan],
        num_images=3, stage=1, epoch=2, step=40,
        mask_coco=CocoEvaluation({}, np.zeros(0), "summary"),
    )  # fmt: skip
    record = result.record()
    text = json.dumps(record, allow_nan=False)
    assert record["kind"] == "eval" and record["task"] == "instance"
    assert record["mask_AP"] == 0.5 and record["box_AP"] == 0.25 and record["mask_APs"] is None
    assert "AP" not in record and "mask_coco" not in record and "box_coco" not in record
    assert len(record) == 6 + 2 * 12 + 3
    back = InstanceEvalResult.from_record(json.loads(text))
    assert back == result  # the COCOeval objects are left out of the comparison
    assert back.mask_coco is None and math.isnan(back.per_class_box_ap[1])
    with pytest.raises(ValueError, match="instance evaluation record lacks"):
        InstanceEvalResult.from_record({"kind": "eval", "AP": 0.5})


def test_errors_name_the_image_and_what_was_expected() -> None:
    evaluator = InstanceEvaluator(2)
    with pytest.raises(ValueError, match="empty loader"):
        evaluator.evaluate()
    with pytest.raises(ValueError, match="1 class names for 2 classes"):
        InstanceEvaluator(2, ["a"])
    good = predicted(SIZE_B, [], [], [])
    stride = {**good, "masks": torch.zeros(0, 10, 14), "mask_stride": STRIDE}
    no_masks = {k: v for k, v in TARGETS[1].items() if k != "masks"}
    with pytest.raises(ValueError, match="image 8: instance evaluation needs targets with 'masks'"):
        to_stored_frame(no_masks, stride)
    with pytest.raises(ValueError, match="image 8 has 1 labels but masks of shape"):
        to_stored_frame({**TARGETS[1], "masks": torch.zeros(2, 40, 56, dtype=torch.bool)}, stride)
    with pytest.raises(ValueError, match="image 8: the prediction lacks 'mask_stride'"):
        to_stored_frame(TARGETS[1], {**good, "masks": torch.zeros(0, 10, 14)})
    with pytest.raises(ValueError, match="image 8: 1 predicted masks for 0 scores"):
        to_stored_frame(TARGETS[1], {**stride, "masks": torch.zeros(1, 10, 14)})


# Two ranks each evaluate one image; every rank must return the whole set's scores.
SHARD_PREDICTIONS = {
    0: predicted(SIZE_A, [TARGETS[0]["masks"][0]], [0.9], [0]),
    1: predicted(SIZE_B, list(TARGETS[1]["masks"]), [0.9], [1]),
}


def shard_worker(rank: int, out: str) -> None:
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2)
    model = FakeInstances(SHARD_PREDICTIONS)
    result = evaluate_instances(model, [batch([rank], [TARGETS[rank]])], 3)
    Path(out, f"{rank}.json").write_text(json.dumps(result.record()))


def test_two_gloo_processes_gather_the_whole_set(tmp_path: Path) -> None:
    run_two_processes(shard_worker, str(tmp_path))
    ranks = [json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1] and ranks[0]["num_images"] == 2
    # Class 2's object in image 3 is missed; classes 0 and 1 are found.
    assert ranks[0]["per_class_mask_ap"] == pytest.approx([1.0, 1.0, 0.0])


@pytest.mark.parametrize("device", DEVICES)
def test_predictions_and_targets_on_a_device_score_as_on_the_cpu(device: str) -> None:
    # A mask cut short, a false positive of class 2 and a mask one row shy: AP between 0 and 1.
    model = FakeInstances({
        1: predicted(SIZE_A, [rect(SIZE_A, (4, 24), (4, 12)), rect(SIZE_A, (0, 8), (0, 8))],
                     [0.9, 0.6], [0, 2]),
        2: predicted(SIZE_B, [rect(SIZE_B, (0, 28), (0, 40))], [0.8], [1]),
    })  # fmt: skip
    images, targets = batch([1, 2], TARGETS)
    on_cpu = evaluate_instances(model, [(images, targets)], 3)
    assert 0 < on_cpu.mask_stats["AP"] < 1 and 0 < on_cpu.box_stats["AP"] < 1
    evaluator = InstanceEvaluator(3)
    found = segment_instances(model, images)
    evaluator.process(to_device(found, device), to_device(targets, device))
    assert evaluator.evaluate().record() == on_cpu.record()
