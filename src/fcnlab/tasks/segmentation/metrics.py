"""Segmentation metrics from a confusion matrix, as Long et al. define them (FCN, CVPR 2015, §5).

With ``n[i, j]`` the number of pixels of class ``i`` predicted as class ``j`` and
``t[i] = sum_j n[i, j]`` the pixels of class ``i``:

- pixel accuracy  ``sum_i n[i, i] / sum_i t[i]``
- mean accuracy   ``mean_i n[i, i] / t[i]``
- mean IU         ``mean_i n[i, i] / (t[i] + sum_j n[j, i] - n[i, i])``
- f.w. IU         ``(sum_k t[k])^-1 sum_i t[i] n[i, i] / (t[i] + sum_j n[j, i] - n[i, i])``

A class absent from both ground truth and prediction has no IU (NaN) and a class absent from the
ground truth has no accuracy (NaN); both are left out of the means. Pixels labelled
``ignore_index`` never count.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.distributed as dist

from fcnlab.runtime.records import json_safe

MEANS = ("pixel_accuracy", "mean_accuracy", "mean_iou", "fw_iou")
PER_CLASS = ("iou", "accuracy")


def check_labels(
    labels: torch.Tensor, num_classes: int, ignore_index: int | None, what: str = "target"
) -> None:
    """Raise ValueError unless ``labels`` holds only ``0..num_classes-1`` and ``ignore_index``.

    ``labels`` must be an integer tensor; ``what`` names it in the message.
    """
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"{what} must hold integer class indices, got dtype {labels.dtype}")
    bad = (labels < 0) | (labels >= num_classes)
    if ignore_index is not None:
        bad &= labels != ignore_index
    if bool(bad.any()):
        found = torch.unique(labels[bad]).tolist()
        shown = ", ".join(str(v) for v in found[:10]) + (", ..." if len(found) > 10 else "")
        allowed = f"0..{num_classes - 1}" + (
            f" or {ignore_index}" if ignore_index is not None else ""
        )
        raise ValueError(f"{what} has values {shown} outside the classes; expected {allowed}")


def valid_mask(target: torch.Tensor, ignore_index: int | None) -> torch.Tensor:
    """Boolean mask of the pixels that count: those whose target is not ``ignore_index``."""
    if ignore_index is None:
        return torch.ones_like(target, dtype=torch.bool)
    return target != ignore_index


def as_labels(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Predicted labels with ``target``'s shape from labels (N, H, W) or logits (N, K, H, W).

    Logits are recognised by having one more dimension than ``target``; they are reduced by argmax
    over dim 1, which must have ``num_classes`` entries.
    """
    if pred.dim() == target.dim() + 1:
        expected = (target.shape[0], num_classes, *target.shape[1:])
        if tuple(pred.shape) != expected:
            raise ValueError(
                f"logits have shape {tuple(pred.shape)} but target {tuple(target.shape)} "
                f"with {num_classes} classes needs {expected}"
            )
        return pred.argmax(dim=1)
    if pred.shape != target.shape:
        raise ValueError(
            f"prediction has shape {tuple(pred.shape)} but target has {tuple(target.shape)}; "
            f"expected labels of the same shape or logits (N, {num_classes}, ...)"
        )
    return pred


def confusion_matrix(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int | None = 255
) -> torch.Tensor:
    """The (K, K) int64 confusion matrix ``n[i, j]`` (true class i, predicted j) of one batch.

    ``pred`` is labels or logits (see :func:`as_labels`); pixels whose target is ``ignore_index``
    are dropped. Computed with ``bincount`` on the tensors' device.
    """
    labels = as_labels(pred, target, num_classes)
    check_labels(target, num_classes, ignore_index, "target")
    check_labels(labels, num_classes, None, "prediction")
    keep = valid_mask(target, ignore_index)
    index = target[keep].long() * num_classes + labels[keep].long()
    counts = torch.bincount(index, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def _nanmean(values: torch.Tensor) -> float:
    kept = values[~torch.isnan(values)]
    return float(kept.mean()) if kept.numel() else math.nan


def segmentation_scores(matrix: torch.Tensor) -> dict[str, Any]:
    """The four means of Long et al. and per-class ``iou`` / ``accuracy`` from a (K, K) matrix.

    Returns ``{"pixel_accuracy", "mean_accuracy", "mean_iou", "fw_iou"}`` as Python floats and
    ``{"iou", "accuracy"}`` as lists of K floats, NaN for absent classes (see the module docstring).
    All are NaN when the matrix is empty.
    """
    if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"confusion matrix must be square (K, K), got {tuple(matrix.shape)}")
    n = matrix.detach().to(device="cpu", dtype=torch.float64)
    hits = n.diagonal()
    truth = n.sum(dim=1)
    union = truth + n.sum(dim=0) - hits
    nan = torch.full_like(hits, math.nan)
    iou = torch.where(union > 0, hits / union.clamp_min(1), nan)
    accuracy = torch.where(truth > 0, hits / truth.clamp_min(1), nan)
    total = float(truth.sum())
    # A class with t_i > 0 always has a union, so the classes without IU have t_i = 0 and no weight.
    fw_iou = float((truth * iou.nan_to_num(0.0)).sum()) / total if total else math.nan
    return {
        "pixel_accuracy": float(hits.sum()) / total if total else math.nan,
        "mean_accuracy": _nanmean(accuracy),
        "mean_iou": _nanmean(iou),
        "fw_iou": fw_iou,
        "iou": iou.tolist(),
        "accuracy": accuracy.tolist(),
    }


class ConfusionMatrix:
    """Accumulates a (K, K) int64 confusion matrix over batches and scores it.

    Rows are the true class, columns the predicted class. The matrix lives on the device of the
    tensors passed to :meth:`update`. In a distributed run, :meth:`compute` sums the matrices of
    all processes (every process must call it); :meth:`all_reduce` does the same in place.
    """

    def __init__(self, num_classes: int, ignore_index: int | None = 255) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: ``pred`` labels (N, H, W) or logits (N, K, H, W), ``target`` (N, H, W)."""
        batch = confusion_matrix(pred, target, self.num_classes, self.ignore_index)
        self.matrix = self.matrix.to(batch.device) + batch

    def reset(self) -> None:
        """Zero the counts (the matrix stays on its device)."""
        self.matrix = torch.zeros_like(self.matrix)

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add ``other``'s counts to this matrix and return self."""
        if other.num_classes != self.num_classes:
            raise ValueError(
                f"cannot merge a {other.num_classes}-class confusion matrix into a "
                f"{self.num_classes}-class one"
            )
        self.matrix = self.matrix + other.matrix.to(self.matrix.device)
        return self

    def all_reduce(self) -> ConfusionMatrix:
        """Sum the matrices of all processes in place (a no-op outside torch.distributed)."""
        self.matrix = _summed_across_processes(self.matrix)
        return self

    def compute(self, sync: bool = True) -> dict[str, Any]:
        """Scores of the accumulated matrix (see :func:`segmentation_scores`).

        With ``sync`` (the default) the matrices of all processes are summed when
        torch.distributed is initialised; the stored matrix is left unchanged, so calling
        ``compute`` twice never double counts. ``sync=False`` scores this process's counts only.
        """
        matrix = _summed_across_processes(self.matrix.clone()) if sync else self.matrix
        return segmentation_scores(matrix)

    def as_json_dict(self, sync: bool = True) -> dict[str, Any]:
        """:meth:`compute` with NaN as None, ready for ``json.dumps``."""
        return json_safe(self.compute(sync))

    def __repr__(self) -> str:
        return (
            f"ConfusionMatrix(num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
            f"pixels={int(self.matrix.sum())})"
        )


def _summed_across_processes(matrix: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(matrix, op=dist.ReduceOp.SUM)
    return matrix
