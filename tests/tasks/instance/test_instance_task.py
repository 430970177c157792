"""The instance task as the engine and the command line use it: collate, loss, the evaluation
loop with the task's own inference and evaluator, what ``fcnlab eval`` prints and draws, the
record the trainer logs and plots, statistics, pictures and predictions."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers.instance_models import FixedInstances, expected_masks
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from rich.console import Console, Group
from rich.text import Text
from torch.utils.data import DataLoader

from fcnlab.config import Config
from fcnlab.inference import ModelMetadata
from fcnlab.inference.options import PredictOptions
from fcnlab.models import build_model
from fcnlab.ops.masks import masks_to_boxes
from fcnlab.runtime.console import Bars
from fcnlab.tasks import EvalSettings, get_task, run_evaluation
from fcnlab.tasks.detection.coco_eval import COCO_METRICS
from fcnlab.tasks.instance.evaluate import InstanceEvalResult, segment_instances
from fcnlab.viz.plots import plot_curves

CLASSES = ["disk", "square"]


def sample(size: tuple[int, int], image_id: int, found: bool) -> tuple[torch.Tensor, dict]:
    """A bright image (FixedInstances finds its three instances) whose ground truth is exactly
    what it finds, or a dark one (it finds nothing) with one object of class 1."""
    height, width = size
    if found:
        found_masks, kept = expected_masks(height, width, 0.05)
        masks = torch.from_numpy(found_masks)
        labels = [label for label, _, _ in kept]
    else:
        masks = torch.zeros(1, height, width, dtype=torch.bool)
        masks[0, 2:10, 3:12] = True
        labels = [1]
    image = torch.full((3, height, width), 0.8 if found else 0.0)
    target = {
        "boxes": masks_to_boxes(masks),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "iscrowd": torch.zeros(len(labels), dtype=torch.int64),
        "difficult": torch.zeros(len(labels), dtype=torch.int64),
        "masks": masks,
        "image_id": image_id,
        "orig_size": size,
        "image_size": size,
    }
    return image, target


SAMPLES = [sample((40, 52), 0, True), sample((32, 44), 1, False), sample((36, 36), 2, True)]


def evaluate(samples: list = SAMPLES, batch_size: int = 2) -> InstanceEvalResult:
    task = get_task("instance")
    model = FixedInstances()
    loader = DataLoader(samples, batch_size=batch_size, collate_fn=task.collate())
    evaluator = task.evaluator(2, Config(), CLASSES)
    result = run_evaluation(model, loader, evaluator, task.inference(model, EvalSettings()))
    assert isinstance(result, InstanceEvalResult)
    return result


def test_what_the_task_says_of_itself() -> None:
    task = get_task("instance")
    assert (task.name, task.noun, task.annotations) == (
        "instance", "instance segmentation model", "instance masks")  # fmt: skip
    assert task.metric == "mask AP" and not task.dense_inference
    assert task.export_formats == ("onnx", "safetensors") and task.statistics_plot is None
    assert task.curve_metrics[0] == "mask_AP"  # the score's curve first
    task.validate_config(Config())


def test_collate_pads_images_and_masks_and_keeps_the_targets_as_a_list() -> None:
    images, targets = get_task("instance").collate(7)(SAMPLES[:2])
    assert images.shape == (2, 3, 40, 52)
    small = targets[1]
    assert small["masks"].shape == (1, 40, 52) and small["image_size"] == (32, 44)
    assert torch.equal(small["masks"][:, :32, :44], SAMPLES[1][1]["masks"])
    assert not small["masks"][:, 32:].any() and not small["masks"][:, :, 44:].any()
    assert images[1, :, 32:].abs().sum() == 0
    assert get_task("instance").targets_to(targets, torch.device("cpu")) is targets


def test_the_loss_is_the_models_own() -> None:
    task = get_task("instance")

    class Lossy(FixedInstances):
        def loss(self, outputs: dict, targets: list) -> dict[str, torch.Tensor]:
            total = outputs["brightness"].sum() * len(targets)
            return {"loss": total, "dice": total / 2}

    model = Lossy()
    loss_fn = task.build_loss(Config(), model, None)
    outputs = model(torch.ones(2, 3, 4, 4))
    assert loss_fn(outputs, [{}, {}]).item() == pytest.approx(4.0)
    with pytest.raises(ValueError, match="a model of the instance task computes its own loss"):
        task.build_loss(Config(), model, torch.nn.L1Loss())


def test_evaluation_through_the_tasks_inference_and_evaluator_any_batch_size() -> None:
    result = evaluate()
    # Images 0 and 2: everything found exactly. Image 1: its class-1 object missed.
    # Class 0: found twice in images 0 and 2, AP 1. Class 1: 2 of 3 objects found, with
    # precision 1, so AP = 67 / 101 (COCO's recall points 0 .. 0.66).
    assert result.per_class_mask_ap == pytest.approx([1.0, 67 / 101])
    assert result.per_class_mask_ap50 == pytest.approx([1.0, 67 / 101])
    assert result.mask_stats["AP"] == pytest.approx((1 + 67 / 101) / 2)
    assert result.num_images == 3 and result.score == result.mask_stats["AP"]
    one_at_a_time = evaluate(batch_size=1)
    assert one_at_a_time == result


def test_the_record_feeds_the_trainers_table_curves_and_best_checkpoint() -> None:
    task = get_task("instance")
    result = evaluate()
    result.step = 12
    record = result.record()
    json.dumps(record, allow_nan=False)
    back = task.result_from_record(record)
    assert back == result and back.score == result.score
    assert all(key in record for key in task.curve_metrics)
    figure = plot_curves([{"step": 4, "loss": 1.0, "lr": 0.1}, record], task.curve_metrics)
    evaluation_axis = figure.axes[2]
    labels = [line.get_label() for line in evaluation_axis.get_lines()]
    assert [label for label in labels if not label.startswith("_")] == list(task.curve_metrics)
    table = task.epoch_table(result, "evaluation at step 12")
    assert [column.header for column in table.columns] == [
        "mask AP", "mask AP50", "mask AP75", "box AP"]  # fmt: skip
    cells = [next(iter(column.cells)) for column in table.columns]
    assert cells[0] == f"{100 * result.mask_stats['AP']:.2f}"
    assert cells[3] == f"{100 * result.box_stats['AP']:.2f}"


def test_report_prints_both_summaries_the_class_table_and_draws_mask_pr_curves(
    tmp_path: Path,
) -> None:
    task = get_task("instance")
    result = evaluate()
    shown, pictures = task.report(result, CLASSES, SAMPLES, tmp_path)
    assert pictures == [tmp_path / "pr_curve.png"] and pictures[0].is_file()
    console = Console(file=io.StringIO(), width=120)
    for renderable in shown:
        console.print(renderable)
    printed = console.file.getvalue()
    assert printed.index("mask (segm)") < printed.index("box (bbox)")
    assert result.mask_coco is not None and result.box_coco is not None
    for summary in (result.mask_coco.summary, result.box_coco.summary):
        assert summary.splitlines()[0] in printed and len(summary.splitlines()) == 12
    assert all(isinstance(item, Group) for item in shown[:2])
    assert isinstance(shown[0].renderables[1], Text)
    table = shown[2]
    assert [column.header for column in table.columns] == [
        "class", "mask AP", "mask AP50", "box AP"]  # fmt: skip
    assert list(table.columns[0].cells)[:2] == CLASSES
    assert list(table.columns[1].cells)[1] == f"{100 * 67 / 101:.2f}"


def test_statistics_count_instances_crowd_and_empty_images() -> None:
    task = get_task("instance")

    class Classes(list):
        classes = ("disk", "square")

    counter = task.statistics_counter(Classes())
    for _, target in SAMPLES:
        counter.update(target)
    counter.update({**SAMPLES[1][1], "iscrowd": torch.tensor([1])})
    empty = {"labels": torch.zeros(0, dtype=torch.int64), "iscrowd": torch.zeros(0)}
    counter.update(empty)
    table = task.statistics_table("val", counter.result())
    assert table.title == "Instances per class: val"
    assert [column.header for column in table.columns] == [
        "class", "instances", "share %", "images", "crowd"]  # fmt: skip
    # Two bright images of three instances (two disks, one square) and two of one square.
    assert list(table.columns[1].cells) == ["4", "4"]
    assert list(table.columns[3].cells) == ["2", "4"]
    assert list(table.columns[4].cells) == ["0", "1"]
    assert table.caption == "images without instances: 1 of 5"
    assert task.plot_statistics([("val", counter.result())], None) is None


def test_write_pictures_draws_instances_and_mask_pr_curves(tmp_path: Path) -> None:
    task = get_task("instance")
    config = Config()
    config.model.num_classes = 2
    config.eval.num_overlays = 2
    last = evaluate()
    model = FixedInstances().train()
    written = task.write_pictures(model, SAMPLES, last, tmp_path, config)
    assert written == [tmp_path / "pr_curve.png", tmp_path / "instances.png"]
    assert all(path.is_file() for path in written) and model.training
    # A result read back from metrics.jsonl keeps no COCOeval: the picture only.
    read_back = task.result_from_record(last.record())
    assert task.write_pictures(model, SAMPLES, read_back, tmp_path / "again", config) == [
        tmp_path / "again" / "instances.png"
    ]


def test_write_predictions_writes_pictures_id_maps_and_coco_json(tmp_path: Path) -> None:
    task = get_task("instance")
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.full((24, 32, 3), 200, dtype=np.uint8)).save(folder / "a.png")
    metadata = ModelMetadata(name="fixed", num_classes=2, classes=CLASSES,
                             palette=[[230, 25, 75], [60, 180, 75]])  # fmt: skip
    console = Console(file=io.StringIO(), width=300)
    out = tmp_path / "out"
    with Bars(console, enabled=False) as bars:
        result = task.write_predictions(
            FixedInstances(), metadata, [folder / "a.png"], out, PredictOptions(device="cpu"),
            console, bars,
        )  # fmt: skip
    assert result.written == [out / "a_instances.png", out / "a_instance_ids.png",
                              out / "instances.json"]  # fmt: skip
    printed = " ".join(console.file.getvalue().split())
    assert "wrote 1 pictures of instances with their instance-id maps and" in printed
    # An .onnx path runs with onnxruntime (tests/tasks/instance/test_instance_deploy.py).
    with (
        pytest.raises(FileNotFoundError, match=r"model\.onnx' does not exist"),
        Bars(console) as bars,
    ):
        task.write_predictions(
            tmp_path / "model.onnx", metadata, [], out, PredictOptions(), console, bars
        )


def test_a_target_without_masks_is_named() -> None:
    image, target = SAMPLES[0]
    bare: dict[str, Any] = {k: v for k, v in target.items() if k != "masks"}
    with pytest.raises(ValueError, match="image 0: instance evaluation needs targets with 'masks'"):
        evaluate([(image, bare)])


def test_condinst_scores_as_pycocotools_run_by_hand_on_its_own_masks() -> None:
    # A random CondInst's 100 instances per image through the task, against the same instances
    # brought to the stored size with PyTorch's ops and scored by pycocotools by hand. Image 1 is
    # smaller than the batch (padding cut) and stored at twice its size (masks resized).
    torch.manual_seed(0)
    model = build_model(
        "condinst", 2, encoder="vgg16", encoder_options={"width": 0.0625}, fpn_channels=16,
        head_depth=1, mask_branch_channels=16, mask_branch_depth=1,
    ).train()  # fmt: skip
    task = get_task("instance")
    samples = []
    for image_id, (size, stored) in enumerate([((48, 64), (48, 64)), ((40, 56), (80, 112))]):
        masks = torch.zeros(2, *size, dtype=torch.bool)
        masks[0, 2:, :], masks[1, :, 6:] = True, True  # large: a random model's masks cover most
        image = torch.rand(3, *size, generator=torch.Generator().manual_seed(image_id))
        samples.append((image, {
            "boxes": masks_to_boxes(masks), "labels": torch.tensor([0, 1]),
            "iscrowd": torch.zeros(2, dtype=torch.int64), "masks": masks,
            "image_id": image_id, "orig_size": stored, "image_size": size,
        }))  # fmt: skip
    images, targets = task.collate()(samples)
    result = run_evaluation(
        model, [(images, targets)], task.evaluator(2, Config(), CLASSES),
        task.inference(model, EvalSettings()),
    )  # fmt: skip
    assert model.training
    model.eval()
    found = segment_instances(model, images)
    gt, segm, bbox = [], [], []
    for (_, target), d in zip(samples, found, strict=True):
        (height, width), stored = target["image_size"], target["orig_size"]
        truth = F.interpolate(target["masks"][None].float(), size=stored, mode="nearest-exact")
        for mask, label in zip(truth[0].bool().numpy(), target["labels"].tolist(), strict=True):
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            gt.append({"id": len(gt) + 1, "image_id": target["image_id"], "iscrowd": 0,
                       "category_id": label + 1, "segmentation": rle,
                       "area": float(mask_utils.area(rle)),
                       "bbox": mask_utils.toBbox(rle).tolist()})  # fmt: skip
        upsampled = F.interpolate(d["masks"][:, None], scale_factor=4, mode="bilinear")
        cropped = upsampled[:, :, :height, :width]
        pasted = F.interpolate(cropped, size=stored, mode="bilinear")[:, 0] >= 0.5
        scale = torch.tensor([stored[1] / width, stored[0] / height] * 2)
        boxes = torch.stack([d["boxes"][:, 0].clamp(0, width), d["boxes"][:, 1].clamp(0, height),
                             d["boxes"][:, 2].clamp(0, width), d["boxes"][:, 3].clamp(0, height)],
                            dim=1) * scale  # fmt: skip
        for mask, box, score, label in zip(pasted.numpy(), boxes.tolist(), d["scores"].tolist(),
                                           d["labels"].tolist(), strict=True):  # fmt: skip
            entry = {"image_id": target["image_id"], "category_id": label + 1, "score": score}
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            segm.append({**entry, "segmentation": rle})
            bbox.append({**entry, "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]})
    images_info = [{"id": t["image_id"], "height": t["orig_size"][0], "width": t["orig_size"][1]}
                   for _, t in samples]  # fmt: skip
    for entries, iou_type, ours in ((segm, "segm", result.mask_stats),
                                    (bbox, "bbox", result.box_stats)):  # fmt: skip
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO()
            coco.dataset = {
                "images": images_info,
                "annotations": gt,
                "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
            }
            coco.createIndex()
            evaluator = COCOeval(coco, coco.loadRes(entries), iouType=iou_type)
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        expected = [math.nan if v < 0 else float(v) for v in evaluator.stats]
        assert [ours[k] for k in COCO_METRICS] == pytest.approx(expected, nan_ok=True, abs=1e-9)
    assert result.mask_stats["AR100"] > 0 and result.box_stats["AR100"] > 0  # not all zeros
