from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from fcnlab.config import TransformConfig
from fcnlab.data import build_dataset, detection_collate, eval_transforms
from fcnlab.models import build_model
from fcnlab.tasks.detection.evaluate import DetectionEvalResult, evaluate_detection
from fcnlab.tasks.detection.report import write_detection_pictures, write_pr_curves


def tiny_centernet() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(
        "centernet", 6, encoder="vgg16", encoder_options={"width": 0.0625},
        decoder_channels=[8, 8, 8], head_channels=8,
    )  # fmt: skip


def test_run_pictures_of_a_real_detector_on_shapes(tmp_path: Path) -> None:
    transforms = TransformConfig()
    dataset = build_dataset(
        "shapes", root=None, split="val", task="detection", num_images=3, size=32,
        transforms=eval_transforms(None, mean=transforms.mean, std=transforms.std),
    )  # fmt: skip
    model = tiny_centernet().train()
    path = write_detection_pictures(model, dataset, 2, transforms, tmp_path / "detections.png")
    assert path == tmp_path / "detections.png" and model.training
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size == (800, 800)  # two rows of 4-inch panels
    assert write_detection_pictures(model, [], 4, transforms, tmp_path / "none.png") is None

    loader = torch.utils.data.DataLoader(dataset, batch_size=2, collate_fn=detection_collate)
    result = evaluate_detection(model, loader, 6, score_threshold=0.0)
    assert result.num_images == 3 and 0.0 <= result.stats["AP50"] <= 1.0
    names = list(dataset.classes)
    assert write_pr_curves(result.coco, names, tmp_path / "pr_curve.png").is_file()
    with pytest.raises(ValueError, match="no COCOeval precision array"):
        write_pr_curves(
            DetectionEvalResult.from_record(result.record()).coco, names, tmp_path / "x.png"
        )
