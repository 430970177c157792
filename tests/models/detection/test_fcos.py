"""FCOS: any encoder and input size, the paper's defaults, decoding with NMS, the loss."""

from __future__ import annotations

import math

import pytest
import torch

from fcnlab.models import build_model
from fcnlab.models.detection.targets import IGNORE, fcos_locations

STRIDES = (8, 16, 32, 64, 128)
TINY = {
    "encoder": "vgg16",
    "encoder_options": {"width": 0.0625},
    "fpn_channels": 16,
    "head_depth": 1,
}


def test_any_encoder_any_input_size_and_paper_defaults() -> None:
    model = build_model("fcos", 3, encoder="darknet53", encoder_options={"width": 0.0625},
                        fpn_channels=16, head_depth=1)  # fmt: skip
    outputs = model(torch.rand(2, 3, 100, 70))
    # Levels 13x9, 7x5, 4x3, 2x2, 1x1.
    assert outputs["cls_logits"].shape == (2, 117 + 35 + 12 + 4 + 1, 3)
    assert outputs["ltrb"].shape == (2, 169, 4) and outputs["centerness"].shape == (2, 169)
    assert model.strides == (8, 16, 32, 64, 128)
    assert model.head.cls_logits.bias[0].item() == pytest.approx(-math.log(99))
    assert isinstance(model.head.cls_tower[1], torch.nn.GroupNorm)
    assert {"encoder", "decoder", "head"} <= {name for name, _ in model.named_children()}
    # VGG with fc6/fc7: the last feature at reduction 32 (fc7) is C5.
    vgg = build_model("fcos", 2, **(TINY | {"encoder_options": {"width": 0.0625, "fc": True}}))
    assert vgg.decoder.feature_index[-1] == len(vgg.encoder.reductions) - 1


def test_encoder_without_stride_32_is_refused() -> None:
    with pytest.raises(ValueError, match=r"reductions are \[2, 4, 8, 16, 16\]"):
        build_model("fcos", 2, encoder="resnet18", encoder_options={"output_stride": 16})


def test_paper_configuration_builds() -> None:
    model = build_model("fcos", num_classes=80, encoder="darknet53")
    assert model.head.cls_logits.out_channels == 80 and model.decoder.lateral[0].out_channels == 256


def test_decode_threshold_per_level_top_k_and_classwise_nms() -> None:
    model = build_model("fcos", 3, **TINY)
    points, level = fcos_locations([(8, 8), (4, 4), (2, 2), (1, 1), (1, 1)], STRIDES)
    n = len(points)
    logits = torch.full((1, n, 3), -20.0)
    ltrb = torch.full((1, n, 4), 4.0)
    a, b = 27, 28  # P3 neighbours at (28, 28) and (36, 28)
    ltrb[0, a] = torch.tensor([10.0, 10.0, 10.0, 10.0])  # (18, 18, 38, 38)
    ltrb[0, b] = torch.tensor([17.0, 10.0, 3.0, 10.0])  # (19, 18, 39, 38): IoU 0.9 with a
    logits[0, a, 1], logits[0, b, 1] = 4.0, 3.0
    logits[0, b, 2] = 2.0  # the same box in another class survives class-wise NMS
    logits[0, 0, 0] = 2.0  # p = 0.88, but centre-ness sigmoid(-3) brings the score to 0.2
    centerness = torch.full((1, n), 20.0)
    centerness[0, 0] = -3.0
    outputs = {
        "cls_logits": logits,
        "ltrb": ltrb,
        "centerness": centerness,
        "points": points,
        "level": level,
    }
    (found,) = model.decode(outputs, (64, 64), score_threshold=0.5)
    torch.testing.assert_close(found["scores"], torch.tensor([4.0, 2.0]).sigmoid().sqrt())
    assert found["labels"].tolist() == [1, 2]
    torch.testing.assert_close(
        found["boxes"], torch.tensor([[18.0, 18.0, 38.0, 38.0], [19.0, 18.0, 39.0, 38.0]])
    )
    # Each detection names its location: the class-1 box at a, the class-2 box at b.
    assert found["locations"].dtype == torch.int64 and found["locations"].tolist() == [a, b]
    (one,) = model.decode(outputs, (64, 64), score_threshold=0.5, top_k=1)
    assert one["labels"].tolist() == [1]
    # One candidate per level: the lower-scoring class-2 duplicate is gone before NMS.
    (per_level,) = model.decode(outputs, (64, 64), score_threshold=0.5, pre_nms_top_k=1)
    assert per_level["labels"].tolist() == [1]
    (clipped,) = model.decode(outputs | {"ltrb": ltrb * 10}, (64, 48), score_threshold=0.5)
    torch.testing.assert_close(clipped["boxes"][0], torch.tensor([0.0, 0.0, 48.0, 64.0]))


def test_loss_ignores_crowd_locations_and_trains() -> None:
    torch.manual_seed(0)
    model = build_model("fcos", 2, **TINY)
    images = torch.rand(1, 3, 64, 64) * 0.3
    images[0, :, 16:48, 8:40] = 1.0
    targets = [
        {
            "boxes": torch.tensor([[8.0, 16.0, 40.0, 48.0], [44.0, 0.0, 64.0, 64.0]]),
            "labels": torch.tensor([1, 0]),
            "iscrowd": torch.tensor([0, 1]),
        }
    ]
    outputs = model(images)
    losses = model.loss(outputs, targets)
    labels, _ = model.targets(outputs, targets)
    ignored = (labels[0] == IGNORE).nonzero()[:, 0]
    assert len(ignored) > 0
    changed = outputs["cls_logits"].detach().clone()
    changed[0, ignored] = 5.0
    again = model.loss(outputs | {"cls_logits": changed}, targets)
    assert again["cls"].item() == pytest.approx(losses["cls"].item())
    assert set(losses) == {"loss", "cls", "box", "centerness"}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = losses["loss"].item()
    for _ in range(30):
        losses = model.loss(model(images), targets)
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
    assert losses["loss"].item() < first / 2
