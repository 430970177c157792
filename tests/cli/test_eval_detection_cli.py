from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from helpers.detectors import with_fixed_boxes
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from fcnlab.cli.main import main
from fcnlab.config import config_to_dict, load_config
from fcnlab.data import build_dataset
from fcnlab.data.transforms import normalize
from fcnlab.models.from_config import build_model_from_config
from fcnlab.runtime.checkpoint import save_checkpoint
from fcnlab.tasks.detection.coco_eval import COCO_METRICS

# A tiny CenterNet on 48 px Shapes, evaluated at 32 px: boxes go back to 48 px for COCOeval.
CONFIG = {
    "model": {
        "name": "centernet",
        "num_classes": 2,
        "encoder": "vgg16",
        "options": {
            "encoder_options": {"width": 0.0625},
            "decoder_channels": [8, 8, 8],
            "head_channels": 8,
        },
    },
    "data": {
        "name": "shapes",
        "options": {"size": 48, "num_images": 8, "num_classes": 2},
        "val_options": {"num_images": 4, "shapes_per_image": [2, 3]},
        "transforms": {"eval_size": 32},
    },
    "eval": {"batch_size": 3},
}


def detection_checkpoint(root: Path) -> tuple[Path, Path]:
    """A config file and a checkpoint of the engine's format, weights untrained."""
    config_path = root / "centernet_tiny.yaml"
    config_path.write_text(yaml.safe_dump({**CONFIG, "output": {"root": str(root)}}))
    config = load_config(config_path)
    torch.manual_seed(0)
    model = with_fixed_boxes(build_model_from_config(config.model))  # untrained, boxes to score
    checkpoint = save_checkpoint(
        root / "last.pt", {"model": model.state_dict(), "config": config_to_dict(config)}
    )
    return config_path, checkpoint


def cocoeval_by_hand(config_path: Path, checkpoint: Path) -> list[float]:
    """COCOeval's stats, computed here without fcnlab's evaluation: the model run on each image
    resized to 32 px, boxes scaled to the stored 48 px, ground truth read untransformed."""
    config = load_config(config_path)
    model = build_model_from_config(config.model)
    model.load_state_dict(torch.load(checkpoint, weights_only=True)["model"])
    model.eval()
    options = {**config.data.options, **config.data.val_options}
    stored = build_dataset("shapes", split="val", task="detection", **options)
    mean, std = config.data.transforms.mean, config.data.transforms.std
    images, annotations, results = [], [], []
    for index in range(len(stored)):
        image, target = stored[index]
        images.append({"id": index, "height": 48, "width": 48})
        for box, label in zip(target["boxes"].tolist(), target["labels"].tolist(), strict=True):
            x1, y1, x2, y2 = box
            annotations.append(
                {"id": len(annotations) + 1, "image_id": index, "category_id": label + 1,
                 "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                 "iscrowd": 0}
            )  # fmt: skip
        small = torch.nn.functional.interpolate(
            image[None], size=(32, 32), mode="bilinear", align_corners=False, antialias=True
        )
        with torch.no_grad():
            found = model.decode(model(normalize(small, mean, std)), image_size=(32, 32))[0]
        for box, score, label in zip(
            (found["boxes"] * 1.5).tolist(), found["scores"].tolist(), found["labels"].tolist(),
            strict=True,
        ):  # fmt: skip
            x1, y1, x2, y2 = box
            results.append(
                {"image_id": index, "category_id": label + 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
                 "score": score}
            )  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": k + 1, "name": str(k)} for k in range(2)],
        }
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(results), iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return [float(v) for v in evaluator.stats]


def test_eval_of_a_detector_prints_cocos_summary_and_writes_metrics_and_pr_curve(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path, checkpoint = detection_checkpoint(tmp_path)
    out = tmp_path / "eval"
    argv = ["eval", "-c", str(config_path), "--checkpoint", str(checkpoint), "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    summary = [line for line in printed.splitlines() if line.startswith(" Average ")]
    assert len(summary) == 12
    assert summary[0].startswith(
        " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = "
    )
    for name in ("disk", "square", "AP50", "mean"):
        assert name in printed

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "detection" and metrics["split"] == "val"
    assert metrics["classes"] == ["disk", "square"]
    assert metrics["num_images"] == 4 and len(metrics["per_class_ap"]) == 2
    expected = cocoeval_by_hand(config_path, checkpoint)
    assert any(value > 0 for value in expected)  # some measured number to compare
    for key, value in zip(COCO_METRICS, expected, strict=True):
        got = metrics[key]
        assert (got is None) if value < 0 else got == pytest.approx(value, abs=1e-6), key
    # the summary's three decimals are COCOeval's own numbers
    assert summary[1].endswith(f"= {expected[1]:0.3f}")
    measured = [ap for ap in metrics["per_class_ap"] if ap is not None]
    assert sum(measured) / len(measured) == pytest.approx(metrics["AP"])
    with Image.open(out / "pr_curve.png") as png:
        assert png.format == "PNG"
    assert not math.isnan(metrics["AP50"])


def test_detection_eval_rejects_segmentation_only_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path, checkpoint = detection_checkpoint(tmp_path)
    argv = ["eval", "-c", str(config_path), "--checkpoint", str(checkpoint), "--tta", "flip"]
    assert main(argv) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "--tta and --window apply to segmentation models; 'centernet' is a detector" in err
