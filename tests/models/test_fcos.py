from __future__ import annotations

import math

import pytest
import torch

from fcnlab.models import build_model
from fcnlab.models.detection import (
    BACKGROUND,
    IGNORE,
    centerness_target,
    fcos_locations,
    fcos_targets,
    giou_loss,
    sigmoid_focal_loss,
)
from fcnlab.models.fcos import SIZE_RANGES

STRIDES = (8, 16, 32, 64, 128)
TINY = {
    "encoder": "vgg16",
    "encoder_options": {"width": 0.0625},
    "fpn_channels": 16,
    "head_depth": 1,
}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run faster on one thread, and far faster on a busy machine (no spinning)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def assign(boxes: list[list[float]], labels: list[int], crowd: list[int] | None = None, **kw):
    """FCOS targets on a 128 x 128 input: P3 16x16, P4 8x8, P5 4x4, P6 2x2, P7 1x1."""
    sizes = [(128 // s or 1, 128 // s or 1) for s in STRIDES]
    points, level = fcos_locations(sizes, STRIDES)
    target = {"boxes": torch.tensor(boxes), "labels": torch.tensor(labels)}
    if crowd is not None:
        target["iscrowd"] = torch.tensor(crowd)
    made = fcos_targets(target, 3, points, level, STRIDES, SIZE_RANGES, **kw)
    return points, level, made


def positives_at(points, level, made, label: int) -> list[tuple[int, int, int]]:
    """(level, x, y) of the locations assigned class ``label``."""
    where = (made["labels"] == label).nonzero()[:, 0]
    return sorted((int(level[i]), int(points[i, 0]), int(points[i, 1])) for i in where)


def test_locations_sit_at_stride_centres() -> None:
    points, level = fcos_locations([(2, 3), (1, 2)], (8, 16))
    assert points.tolist() == [[4, 4], [12, 4], [20, 4], [4, 12], [12, 12], [20, 12], [8, 8],
                               [24, 8]]  # fmt: skip
    assert level.tolist() == [0] * 6 + [1] * 2


def test_small_box_on_p3_with_and_without_centre_sampling() -> None:
    # Box 40x40 centred at (52, 52). P3 locations x*8+4 inside (32, 72): 36..68, five per axis,
    # all with max(l, t, r, b) <= 36 < 64, so P3; on P4 the largest distance is < 64: none.
    points, level, made = assign([[32.0, 32.0, 72.0, 72.0]], [1], center_radius=None)
    grid = [36, 44, 52, 60, 68]
    assert positives_at(points, level, made, 1) == [(0, x, y) for x in grid for y in grid]
    # Centre sampling, radius 1.5 * 8 = 12: the region (40, 64) holds 44, 52, 60 only.
    points, level, made = assign([[32.0, 32.0, 72.0, 72.0]], [1])
    grid = [44, 52, 60]
    assert positives_at(points, level, made, 1) == [(0, x, y) for x in grid for y in grid]
    centre = int(((points == torch.tensor([52.0, 52.0])).all(1) & (level == 0)).nonzero())
    assert made["ltrb"][centre].tolist() == [20.0, 20.0, 20.0, 20.0]
    assert (made["labels"][made["labels"] != 1] == BACKGROUND).all()


def test_large_box_goes_to_the_level_of_its_reach() -> None:
    # Box (0, 0, 128, 80), centre (64, 40). P3 (radius 12): region (52, 76) x (28, 52) holds
    # x 60, 68 and y 36, 44, where the reach max(l, t, r, b) is >= 68 > 64: none. P4 (radius
    # 24): region (40, 88) x (16, 64) holds x 56, 72 and y 24, 40, 56, reach 72 in [64, 128]:
    # six positives. P5 (radius 48): x 48, 80 and y 16, 48, reach at most 80 < 128: none.
    points, level, made = assign([[0.0, 0.0, 128.0, 80.0]], [0])
    expected = [(1, x, y) for x in (56, 72) for y in (24, 40, 56)]
    assert positives_at(points, level, made, 0) == expected


def test_ambiguous_location_takes_the_smaller_box_and_range_bounds_count() -> None:
    small, large = [40.0, 40.0, 80.0, 80.0], [20.0, 20.0, 100.0, 100.0]
    points, level, made = assign([large, small], [2, 1], center_radius=None)
    p3 = level == 0

    def label_at(x: float, y: float) -> int:
        return int(made["labels"][p3 & (points == torch.tensor([x, y])).all(1)])

    assert label_at(60, 60) == 1  # inside both, both on P3: the smaller box
    assert label_at(36, 60) == 2  # inside the large only, reach exactly 64: P3's bound counts
    assert label_at(28, 60) == BACKGROUND  # reach 72: not P3
    p4 = (level == 1) & (points == torch.tensor([24.0, 56.0])).all(1)
    assert int(made["labels"][p4]) == 2  # the same large box, reach 76, on P4


def test_crowd_boxes_make_no_positives_and_are_ignored() -> None:
    points, _, made = assign(
        [[0.0, 0.0, 64.0, 64.0], [32.0, 32.0, 72.0, 72.0]], [0, 1], crowd=[1, 0]
    )
    inside_crowd = (points < 64).all(1)
    labels = made["labels"]
    assert not (labels == 0).any()
    assert (labels[inside_crowd & (labels != 1)] == IGNORE).all()
    assert (labels[~inside_crowd & (labels != 1)] == BACKGROUND).all()
    assert (labels == 1).sum() == 9


def test_no_boxes_means_all_background() -> None:
    points, _, made = assign([], [])
    assert (made["labels"] == BACKGROUND).all() and made["ltrb"].shape == (len(points), 4)


def test_centerness_hand_worked() -> None:
    ltrb = torch.tensor([[10.0, 5.0, 30.0, 20.0], [4.0, 4.0, 4.0, 4.0]])
    expected = torch.tensor([math.sqrt(10 / 30 * 5 / 20), 1.0])
    torch.testing.assert_close(centerness_target(ltrb), expected)


def test_sigmoid_focal_loss_hand_worked() -> None:
    # p = 0.5 everywhere: a positive costs 0.25 * 0.5^2 * log 2, a negative 0.75 * 0.5^2 * log 2;
    # p = 0.9 on a positive: 0.25 * 0.1^2 * -log 0.9.
    logits = torch.tensor([0.0, 0.0, math.log(9)], dtype=torch.float64)
    targets = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
    expected = 0.25 * 0.25 * math.log(2) + 0.75 * 0.25 * math.log(2) + 0.25 * 0.01 * -math.log(0.9)
    assert float(sigmoid_focal_loss(logits, targets)) == pytest.approx(expected)


def test_giou_loss_hand_worked() -> None:
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 0.0, 3.0, 2.0], [3.0, 0.0, 4.0, 2.0]])
    # Identical: 0. Half overlap: IoU 2/6, enclosure = union: 1 - 1/3. Disjoint 2x2 and 1x2
    # boxes in a 4x2 enclosure: IoU 0, empty share (8 - 6)/8: 1 + 1/4.
    torch.testing.assert_close(giou_loss(a, b), torch.tensor([0.0, 2 / 3, 1.25]))


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
    assert vgg.feature_index[-1] == len(vgg.encoder.reductions) - 1


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
