from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from helpers.devices import DEVICES

from fcnlab.tasks.segmentation.metrics import (
    ConfusionMatrix,
    confusion_matrix,
    json_safe,
    segmentation_scores,
)

# Hand-worked: 3 classes, one ignored pixel (whose prediction must not count).
TARGET = torch.tensor([[[0, 0, 1], [1, 2, 255]]])
PRED = torch.tensor([[[0, 1, 1], [1, 1, 0]]])
# n = [[1, 1, 0], [0, 2, 0], [0, 1, 0]], t = [2, 2, 1], column sums [1, 4, 0]
HAND_MATRIX = [[1, 1, 0], [0, 2, 0], [0, 1, 0]]


def test_hand_worked_example() -> None:
    cm = ConfusionMatrix(3)
    cm.update(PRED, TARGET)
    assert cm.matrix.tolist() == HAND_MATRIX
    assert cm.matrix.dtype == torch.int64
    scores = cm.compute()
    assert scores["pixel_accuracy"] == pytest.approx(3 / 5)
    assert scores["accuracy"] == pytest.approx([1 / 2, 1, 0])
    assert scores["mean_accuracy"] == pytest.approx(1 / 2)
    # unions: 2 + 1 - 1 = 2, 2 + 4 - 2 = 4, 1 + 0 - 0 = 1
    assert scores["iou"] == pytest.approx([1 / 2, 2 / 4, 0])
    assert scores["mean_iou"] == pytest.approx(1 / 3)
    assert scores["fw_iou"] == pytest.approx((2 * 0.5 + 2 * 0.5 + 1 * 0) / 5)


def test_absent_classes_are_nan_and_left_out_of_means() -> None:
    # class 3 is nowhere; class 2 is only predicted (false positive): IU 0 but no accuracy.
    scores = segmentation_scores(torch.tensor([[1, 0, 1, 0], [0, 1, 0, 0], [0] * 4, [0] * 4]))
    assert scores["iou"][:3] == pytest.approx([1 / 2, 1, 0])
    assert math.isnan(scores["iou"][3])
    assert scores["accuracy"][:2] == pytest.approx([1 / 2, 1])
    assert math.isnan(scores["accuracy"][2]) and math.isnan(scores["accuracy"][3])
    assert scores["mean_iou"] == pytest.approx(1 / 2)
    assert scores["mean_accuracy"] == pytest.approx(3 / 4)
    assert scores["fw_iou"] == pytest.approx((2 * 0.5 + 1 * 1) / 3)
    empty = ConfusionMatrix(2).compute()
    assert all(math.isnan(empty[key]) for key in ("pixel_accuracy", "mean_iou", "fw_iou"))


def brute_force_scores(pred: np.ndarray, target: np.ndarray, k: int) -> dict:
    n = np.zeros((k, k), dtype=np.int64)
    for p, t in zip(pred.ravel().tolist(), target.ravel().tolist(), strict=True):
        if t != 255:
            n[t, p] += 1
    t_ = [sum(n[i, j] for j in range(k)) for i in range(k)]
    iou, acc = [], []
    for i in range(k):
        union = t_[i] + sum(n[j, i] for j in range(k)) - n[i, i]
        iou.append(n[i, i] / union if union else math.nan)
        acc.append(n[i, i] / t_[i] if t_[i] else math.nan)
    total = sum(t_)
    return {
        "matrix": n,
        "pixel_accuracy": sum(n[i, i] for i in range(k)) / total,
        "mean_accuracy": np.nanmean(acc),
        "mean_iou": np.nanmean(iou),
        "fw_iou": sum(t_[i] * iou[i] for i in range(k) if t_[i]) / total,
        "iou": iou,
        "accuracy": acc,
    }


def assert_scores_match(scores: dict, expected: dict) -> None:
    for key in ("pixel_accuracy", "mean_accuracy", "mean_iou", "fw_iou"):
        assert scores[key] == pytest.approx(expected[key], rel=1e-12), key
    for key in ("iou", "accuracy"):
        np.testing.assert_allclose(scores[key], expected[key], rtol=1e-12)


def test_matches_brute_force_on_random_batches_and_logits() -> None:
    gen = torch.Generator().manual_seed(0)
    k = 6
    target = torch.randint(0, k - 1, (3, 17, 13), generator=gen)  # class k-1 absent from truth
    target[torch.rand(target.shape, generator=gen) < 0.1] = 255
    logits = torch.randn(3, k, 17, 13, generator=gen)
    pred = logits.numpy().argmax(axis=1)
    expected = brute_force_scores(pred, target.numpy(), k)

    cm = ConfusionMatrix(k)
    for i in range(3):  # accumulating batches equals one pass over all of them
        cm.update(logits[i : i + 1], target[i : i + 1])
    np.testing.assert_array_equal(cm.matrix.numpy(), expected["matrix"])
    assert_scores_match(cm.compute(), expected)
    np.testing.assert_array_equal(
        confusion_matrix(torch.from_numpy(pred), target, k).numpy(), expected["matrix"]
    )


def test_reset_merge_and_uint8_targets() -> None:
    a, b = ConfusionMatrix(3), ConfusionMatrix(3)
    a.update(PRED, TARGET.to(torch.uint8))
    b.update(PRED, TARGET)
    assert a.merge(b) is a
    assert a.matrix.tolist() == (2 * torch.tensor(HAND_MATRIX)).tolist()
    a.reset()
    assert int(a.matrix.sum()) == 0 and a.matrix.shape == (3, 3)
    with pytest.raises(ValueError, match="cannot merge a 4-class"):
        a.merge(ConfusionMatrix(4))


def test_bad_inputs_are_clear_errors() -> None:
    cm = ConfusionMatrix(3)
    with pytest.raises(
        ValueError, match=r"target has values 3, 7 outside the classes; expected 0..2"
    ):
        cm.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.tensor([[[0, 3], [7, 255]]]))
    with pytest.raises(ValueError, match="prediction has values 5"):
        cm.update(torch.tensor([[[5, 0]]]), torch.tensor([[[0, 0]]]))
    with pytest.raises(ValueError, match=r"prediction has shape \(1, 2, 3\) but target has"):
        cm.update(torch.zeros(1, 2, 3, dtype=torch.long), torch.zeros(1, 3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"logits have shape \(1, 4, 2, 2\).*needs \(1, 3, 2, 2\)"):
        cm.update(torch.zeros(1, 4, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="integer class indices"):
        cm.update(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2))
    assert int(cm.matrix.sum()) == 0


def test_json_dict_has_null_for_absent_classes() -> None:
    cm = ConfusionMatrix(4)
    cm.update(PRED, TARGET)
    text = json.dumps(cm.as_json_dict(), allow_nan=False)
    loaded = json.loads(text)
    assert loaded["iou"][3] is None and loaded["accuracy"][3] is None
    assert loaded["mean_iou"] == pytest.approx(1 / 3)
    assert json_safe({"a": (math.nan, 1.0)}) == {"a": [None, 1.0]}


def _distributed_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        cm = ConfusionMatrix(3)
        # rank 0 sees only the first row of the hand-worked batch, rank 1 the second.
        cm.update(PRED[:, rank : rank + 1], TARGET[:, rank : rank + 1])
        local = cm.matrix.clone()
        scores = cm.compute()
        unchanged = torch.equal(cm.matrix, local)
        reduced = cm.all_reduce().matrix.tolist()
        result = {"scores": json_safe(scores), "unchanged": unchanged, "reduced": reduced}
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def test_compute_and_all_reduce_sum_across_two_gloo_processes(tmp_path: Path) -> None:
    # fork rather than spawn: the children skip re-importing torch (seconds on a busy machine).
    mp.start_processes(
        _distributed_worker,
        args=(2, str(tmp_path / "init"), str(tmp_path)),
        nprocs=2,
        join=True,
        start_method="fork",
    )
    for rank in range(2):
        result = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert result["unchanged"], "compute() must not modify the stored matrix"
        assert result["reduced"] == HAND_MATRIX
        assert result["scores"]["mean_iou"] == pytest.approx(1 / 3)
        assert result["scores"]["iou"] == pytest.approx([1 / 2, 1 / 2, 0])


@pytest.mark.parametrize("device", DEVICES)
def test_counts_on_the_tensors_device(device: str) -> None:
    cm = ConfusionMatrix(3)
    cm.update(PRED.to(device), TARGET.to(device))
    assert cm.matrix.device.type == device
    assert cm.matrix.cpu().tolist() == HAND_MATRIX
    assert cm.compute()["mean_iou"] == pytest.approx(1 / 3)
    # Logits of 2 images with an ignored row, counted by bincount on the CPU.
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 9, 7, generator=g)
    target = torch.randint(0, 4, (2, 9, 7), generator=g)
    target[0, 0] = 255
    counted = ConfusionMatrix(4)
    counted.update(logits.to(device), target.to(device))
    keep = target != 255
    pairs = 4 * target[keep] + logits.argmax(dim=1)[keep]
    assert torch.equal(counted.matrix.cpu(), torch.bincount(pairs, minlength=16).view(4, 4))
