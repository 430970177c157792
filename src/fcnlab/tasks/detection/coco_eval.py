"""Detection evaluation: COCO mAP through pycocotools' ``COCOeval``, and VOC AP50.

Ground truth comes as one record per image, the detectors' target dicts with optional extras::

    {"boxes": (M, 4) xyxy pixel edges, "labels": (M,) in [0, C), "iscrowd": (M,) optional,
     "difficult": (M,) optional (VOC), "area": (M,) optional, "image_id": int optional,
     "height": int optional, "width": int optional,
     "segmentation": M COCO RLEs {"size": [height, width], "counts"} optional (instance masks)}

and detections as the detectors' ``decode`` output, one dict per image in the same order:
``{"boxes": (K, 4) xyxy, "scores": (K,), "labels": (K,)}`` (and ``"segmentation"``, K RLEs, to
score masks). ``to_coco`` converts any data set's records (COCO's own, VOC, Shapes) to COCO's
annotation format on the fly, so one evaluator serves them all: ``coco_evaluate`` keeps what
``COCOeval`` measured (its precision array, for AP per class and precision-recall curves, and
pycocotools' printed summary) for boxes (``iou_type="bbox"``) or masks (``"segm"``), ``coco_map``
its 12 numbers.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fcnlab.ops.boxes import box_area, box_iou, xyxy_to_xywh

# COCOeval's ``stats``, in order.
COCO_METRICS = (
    "AP",
    "AP50",
    "AP75",
    "APs",
    "APm",
    "APl",
    "AR1",
    "AR10",
    "AR100",
    "ARs",
    "ARm",
    "ARl",
)
# What COCOeval can score: boxes and masks (its third, keypoints, is no fcnlab task).
IOU_TYPES = ("bbox", "segm")
# COCOeval's default bounding-box parameters: the IoU thresholds and recall points it averages.
IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def _field(record: Mapping[str, Any], key: str, count: int) -> torch.Tensor:
    value = record.get(key)
    return torch.zeros(count) if value is None else torch.as_tensor(value).reshape(count)


def _image_id(record: Mapping[str, Any], index: int) -> int:
    return int(record.get("image_id", index))


def to_coco(
    records: Iterable[Mapping[str, Any]], categories: int | Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """COCO ground-truth dict ("images", "annotations", "categories") from per-image records.

    ``categories`` is the class count or the class names; label ``k`` becomes category id
    ``k + 1``. Images without "image_id" are numbered by position. "area" defaults to the box
    area (COCO's own files give the mask area). Difficult (VOC) objects become crowd regions,
    which COCOeval ignores: a detection on one is neither right nor wrong, as in VOC. A record's
    "segmentation" (one per object) is copied into its annotations, for scoring masks.
    """
    names = [str(k) for k in range(categories)] if isinstance(categories, int) else categories
    images, annotations = [], []
    seen: dict[int, int] = {}
    for index, record in enumerate(records):
        image_id = _image_id(record, index)
        if image_id in seen:
            raise ValueError(
                f"image id {image_id} appears twice (records {seen[image_id]} and {index}); "
                "COCOeval needs one record per image"
            )
        seen[image_id] = index
        image = {"id": image_id}
        image.update({k: int(record[k]) for k in ("height", "width") if k in record})
        images.append(image)
        boxes = torch.as_tensor(record["boxes"], dtype=torch.float64).reshape(-1, 4)
        labels = torch.as_tensor(record["labels"]).reshape(-1)
        crowd = (
            _field(record, "iscrowd", len(boxes)).bool()
            | _field(record, "difficult", len(boxes)).bool()
        )
        area = record.get("area")
        areas = box_area(boxes) if area is None else torch.as_tensor(area).reshape(-1)
        segmentations = record.get("segmentation", [None] * len(boxes))
        for box, label, is_crowd, a, segmentation in zip(
            xyxy_to_xywh(boxes).tolist(),
            labels.tolist(),
            crowd.tolist(),
            areas.tolist(),
            segmentations,
            strict=True,
        ):
            if not 0 <= label < len(names):
                raise ValueError(f"image {image_id} has label {label}; expected [0, {len(names)})")
            annotation = {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": label + 1,
                "bbox": box,
                "area": float(a),
                "iscrowd": int(is_crowd),
            }
            if segmentation is not None:
                annotation["segmentation"] = segmentation
            annotations.append(annotation)
    return {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": k + 1, "name": name} for k, name in enumerate(names)],
    }


def detections_to_coco(
    detections: Sequence[Mapping[str, Any]], image_ids: Sequence[int], iou_type: str = "bbox"
) -> list[dict[str, Any]]:
    """COCO result entries {"image_id", "category_id", "bbox" xywh, "score"}, one per box; with
    ``iou_type="segm"`` {"image_id", "category_id", "segmentation", "score"}, one per mask of
    ``detections[i]["segmentation"]`` (RLEs), and no "bbox": pycocotools' ``loadRes`` would take
    a result's area from its box, so that a thin mask with a large box would count as large."""
    if iou_type not in IOU_TYPES:
        raise ValueError(f"iou_type {iou_type!r} is not one of {IOU_TYPES}")
    if len(detections) != len(image_ids):
        raise ValueError(f"got detections for {len(detections)} images, expected {len(image_ids)}")
    results = []
    for image_id, found in zip(image_ids, detections, strict=True):
        scores = torch.as_tensor(found["scores"]).reshape(-1).tolist()
        labels = torch.as_tensor(found["labels"]).reshape(-1).tolist()
        if iou_type == "bbox":
            boxes = torch.as_tensor(found["boxes"], dtype=torch.float64).reshape(-1, 4)
            regions = [("bbox", box) for box in xyxy_to_xywh(boxes).tolist()]
        else:
            regions = [("segmentation", rle) for rle in found["segmentation"]]
        for (key, region), score, label in zip(regions, scores, labels, strict=True):
            results.append(
                {"image_id": image_id, "category_id": int(label) + 1, key: region, "score": score}
            )
    return results


def check_mask_sizes(
    images: Sequence[Mapping[str, Any]], entries: Sequence[Mapping[str, Any]], what: str
) -> None:
    """Raise unless every RLE of ``entries`` (annotations or results) has the size of its image
    record: pycocotools gives masks of different sizes IoU -1, which scores 0 without a word."""
    sizes = {image["id"]: [image.get("height"), image.get("width")] for image in images}
    for entry in entries:
        size = [int(v) for v in entry["segmentation"]["size"]]
        expected = sizes[entry["image_id"]]
        if size != expected:
            raise ValueError(
                f"{what} of image {entry['image_id']} (category {entry['category_id']}) is a "
                f"{size[0]}x{size[1]} mask, but its image is {expected[0]}x{expected[1]} "
                "(height x width); masks must be encoded at the image's stored size"
            )


@dataclass
class CocoEvaluation:
    """What ``COCOeval`` measured on one set of detections.

    ``precision`` is COCOeval's (T, R, K, A, M) array -- IoU thresholds 0.50:0.05:0.95, the 101
    recall points ``RECALL_POINTS``, classes, areas (all, small, medium, large), max detections
    (1, 10, 100) -- with NaN where COCOeval writes -1 (nothing to measure). ``summary`` is
    pycocotools' own 12-line text.
    """

    stats: dict[str, float]
    precision: np.ndarray
    summary: str

    def class_ap(self, iou: float | None = None) -> list[float]:
        """AP per class (area "all", 100 detections): averaged over the ten IoU thresholds, or
        at the one ``iou`` (e.g. 0.5); NaN for a class without ground truth. The mean over the
        measured classes is ``stats["AP"]`` (``stats["AP50"]`` at 0.5), as COCOeval averages."""
        scores = self.precision[..., 0, -1] if iou is None else self.pr_curves(iou)[None]
        counted = ~np.isnan(scores)
        sums = np.where(counted, scores, 0.0).sum(axis=(0, 1))
        with np.errstate(invalid="ignore"):
            return (sums / counted.sum(axis=(0, 1))).tolist()

    def pr_curves(self, iou: float = 0.5) -> np.ndarray:
        """(R, K) interpolated precision at the recall points ``RECALL_POINTS``, per class, at
        IoU threshold ``iou`` (area "all", 100 detections); NaN columns: no ground truth."""
        index = np.flatnonzero(np.isclose(IOU_THRESHOLDS, iou))
        if len(index) != 1:
            raise ValueError(f"IoU threshold {iou} is not one of COCO's {IOU_THRESHOLDS.tolist()}")
        return self.precision[index[0], :, :, 0, -1]


def coco_evaluate(
    records: Sequence[Mapping[str, Any]],
    detections: Sequence[Mapping[str, Any]],
    categories: int | Sequence[str],
    iou_type: str = "bbox",
) -> CocoEvaluation:
    """Run pycocotools' ``COCOeval`` on ``detections`` against ``records``: bounding boxes
    (``iou_type="bbox"``) or masks (``"segm"``: the records' and detections' "segmentation"
    RLEs, each at its image's "height" x "width", else ValueError).

    Crowd (and VOC difficult) ground truth is ignored the way COCOeval ignores crowd regions.
    The results are indexed by hand, as ``loadRes`` would (area: the box's, or the mask's for
    "segm"), since ``loadRes`` fails on an empty list: no detections score 0, not an error.
    """
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = to_coco(records, categories)
    results = detections_to_coco(detections, [image["id"] for image in gt["images"]], iou_type)
    if iou_type == "segm":
        masked = [a for a in gt["annotations"] if "segmentation" in a]
        if len(masked) != len(gt["annotations"]):
            raise ValueError(
                f"{len(gt['annotations']) - len(masked)} ground-truth objects have no "
                "'segmentation' to score masks against"
            )
        check_mask_sizes(gt["images"], gt["annotations"], "ground-truth mask")
        check_mask_sizes(gt["images"], results, "predicted mask")
    for k, result in enumerate(results):
        if iou_type == "bbox":
            area = result["bbox"][2] * result["bbox"][3]
        else:
            area = float(mask_utils.area(result["segmentation"]))
        result.update(id=k + 1, area=area, iscrowd=0)
    summary = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth, found = COCO(), COCO()
        ground_truth.dataset = gt
        found.dataset = {"images": gt["images"], "categories": gt["categories"]}
        found.dataset["annotations"] = results
        ground_truth.createIndex()
        found.createIndex()
        evaluator = COCOeval(ground_truth, found, iouType=iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
    with contextlib.redirect_stdout(summary):
        evaluator.summarize()
    precision = np.asarray(evaluator.eval["precision"], dtype=np.float64)
    return CocoEvaluation(
        stats={
            name: (math.nan if value < 0 else float(value))
            for name, value in zip(COCO_METRICS, evaluator.stats, strict=True)
        },
        precision=np.where(precision < 0, np.nan, precision),
        summary=summary.getvalue().rstrip("\n"),
    )


def coco_map(
    records: Sequence[Mapping[str, Any]],
    detections: Sequence[Mapping[str, torch.Tensor]],
    categories: int | Sequence[str],
) -> dict[str, float]:
    """COCOeval's 12-number bounding-box summary: AP, AP50, AP75, APs/m/l, AR1/10/100, ARs/m/l.

    AP averages over IoU 0.50:0.95 and 101 recall points; a number without ground truth to
    measure (say APs when no object is small) is NaN, where COCOeval prints -1.
    """
    return coco_evaluate(records, detections, categories).stats


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the interpolated precision-recall curve (VOC 2010+): precision made monotone
    from the right, summed over every recall step."""
    r = np.concatenate(([0.0], recall, [1.0]))
    p = np.concatenate(([0.0], precision, [0.0]))
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.nonzero(r[1:] != r[:-1])[0]
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def voc_ap50(
    records: Sequence[Mapping[str, Any]],
    detections: Sequence[Mapping[str, torch.Tensor]],
    num_classes: int,
    iou_threshold: float = 0.5,
) -> dict[str, Any]:
    """PASCAL VOC detection AP per class (the devkit's ``VOCevaldet``) and its mean.

    Detections of a class, by decreasing score over all images, each match the ground-truth box
    of its image it overlaps most; IoU >= ``iou_threshold`` on a box not matched before is a
    true positive, on a difficult box neither true nor false, otherwise a false positive.
    Boxes are pixel edges, so IoUs take no "+1" (the devkit's inclusive pixel indices need it).
    Returns {"mAP": mean over classes with ground truth, "AP": per-class list, NaN without}.
    """
    if len(detections) != len(records):
        raise ValueError(f"got detections for {len(detections)} images, expected {len(records)}")
    per_class = []
    for c in range(num_classes):
        gt_boxes, gt_difficult, det_boxes, det_scores, det_image = [], [], [], [], []
        for i, (record, found) in enumerate(zip(records, detections, strict=True)):
            labels = torch.as_tensor(record["labels"]).reshape(-1)
            boxes = torch.as_tensor(record["boxes"], dtype=torch.float64).reshape(-1, 4)
            gt_boxes.append(boxes[labels == c])
            gt_difficult.append(_field(record, "difficult", len(labels)).bool()[labels == c])
            mine = torch.as_tensor(found["labels"]).reshape(-1) == c
            det_boxes.append(
                torch.as_tensor(found["boxes"], dtype=torch.float64).reshape(-1, 4)[mine]
            )
            det_scores.append(torch.as_tensor(found["scores"], dtype=torch.float64)[mine])
            det_image += [i] * int(mine.sum())
        num_positive = int(sum((~d).sum() for d in gt_difficult))
        if num_positive == 0:
            per_class.append(math.nan)
            continue
        detection_boxes = torch.cat(det_boxes)
        order = torch.cat(det_scores).argsort(descending=True, stable=True)
        matched = [torch.zeros(len(b), dtype=torch.bool) for b in gt_boxes]
        tp, fp = np.zeros(len(order)), np.zeros(len(order))
        for rank, d in enumerate(order.tolist()):
            image = det_image[d]
            if len(gt_boxes[image]) == 0:
                fp[rank] = 1
                continue
            overlaps = box_iou(detection_boxes[d : d + 1], gt_boxes[image])[0]
            best = int(overlaps.argmax())
            if overlaps[best] < iou_threshold:
                fp[rank] = 1
            elif gt_difficult[image][best]:
                continue
            elif matched[image][best]:
                fp[rank] = 1
            else:
                tp[rank] = matched[image][best] = 1
        tp, fp = np.cumsum(tp), np.cumsum(fp)
        precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        per_class.append(average_precision(tp / num_positive, precision))
    measured = [ap for ap in per_class if not math.isnan(ap)]
    return {"mAP": sum(measured) / len(measured) if measured else math.nan, "AP": per_class}
