from __future__ import annotations

import math

import pytest
import torch

from fcnlab.models import build_model
from fcnlab.models.centernet import heatmap_peaks
from fcnlab.models.detection import (
    centernet_targets,
    draw_gaussians,
    gaussian_radius,
    penalty_reduced_focal_loss,
)
from fcnlab.ops import box_iou


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run faster on one thread, and far faster on a busy machine (no spinning)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


TINY = {
    "encoder": "vgg16",
    "encoder_options": {"width": 0.0625},
    "decoder_channels": (16, 16, 16),
    "head_channels": 16,
}


def centernet_code_radius(height: float, width: float, min_overlap: float = 0.7) -> float:
    """``gaussian_radius`` as CenterNet's ``utils/image.py`` writes it, line for line."""
    a1 = 1
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    sq1 = math.sqrt(b1**2 - 4 * a1 * c1)
    r1 = (b1 + sq1) / 2
    a2 = 4
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    sq2 = math.sqrt(b2**2 - 4 * a2 * c2)
    r2 = (b2 + sq2) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    sq3 = math.sqrt(b3**2 - 4 * a3 * c3)
    r3 = (b3 + sq3) / 2
    return min(r1, r2, r3)


def test_gaussian_radius_worked_example() -> None:
    # A 10 x 20 box at IoU 0.7: r1 = (30 + sqrt(900 - 4*200*0.3/1.7)) / 2 = 28.77,
    # r2 = (60 + sqrt(3600 - 16*60)) / 2 = 55.69, r3 = (-42 + sqrt(1764 + 4*2.8*60)) / 2 = 3.678.
    r = gaussian_radius(torch.tensor([10.0]), torch.tensor([20.0]))
    assert float(r) == pytest.approx((-42 + math.sqrt(1764 + 672)) / 2, rel=1e-6)
    assert float(r) == pytest.approx(3.678, abs=1e-3)


def test_gaussian_radius_matches_centernet_code() -> None:
    g = torch.Generator().manual_seed(0)
    h, w = torch.rand(50, generator=g) * 120 + 0.5, torch.rand(50, generator=g) * 120 + 0.5
    for overlap in (0.3, 0.7):
        expected = [
            centernet_code_radius(a, b, overlap)
            for a, b in zip(h.tolist(), w.tolist(), strict=True)
        ]
        torch.testing.assert_close(
            gaussian_radius(h, w, overlap), torch.tensor(expected), rtol=1e-5, atol=1e-4
        )


def test_draw_gaussians_values_window_and_maximum() -> None:
    heat = torch.zeros(2, 9, 9)
    centers = torch.tensor([[4, 4], [5, 4], [1, 1]])
    draw_gaussians(heat, centers, torch.tensor([2, 2, 1]), torch.tensor([0, 0, 1]))
    sigma = 5 / 6  # (2r + 1) / 6
    assert heat[0, 4, 4] == 1 and heat[0, 4, 5] == 1  # both centres, same class, max kept
    assert float(heat[0, 2, 4]) == pytest.approx(math.exp(-4 / (2 * sigma**2)), rel=1e-5)
    assert float(heat[0, 4, 3]) == pytest.approx(math.exp(-1 / (2 * sigma**2)), rel=1e-5)
    assert heat[0, 4, 1] == 0 and heat[0, 1, 4] == 0  # beyond radius 2 of both centres
    assert float(heat[1, 0, 0]) == pytest.approx(math.exp(-2 / (2 * 0.5**2)), rel=1e-5)
    assert heat[1].count_nonzero() == 9  # 3x3 window; other class untouched by class 0
    assert heat[1, 4, 4] == 0


def test_centernet_targets_cell_offset_size_and_crowd() -> None:
    target = {
        "boxes": torch.tensor([[10.0, 6.0, 30.0, 22.0], [0.0, 0.0, 40.0, 40.0]]),
        "labels": torch.tensor([2, 0]),
        "iscrowd": torch.tensor([0, 1]),
    }
    made = centernet_targets(target, 3, (10, 12), stride=4)
    # Centre (20, 14) / 4 = (5, 3.5): cell (5, 3), offset (0, 0.5), size (20, 16) / 4.
    assert made["cell"].tolist() == [3 * 12 + 5]
    torch.testing.assert_close(made["offset"], torch.tensor([[0.0, 0.5]]))
    torch.testing.assert_close(made["size"], torch.tensor([[5.0, 4.0]]))
    assert made["heatmap"][2, 3, 5] == 1 and made["heatmap"].eq(1).sum() == 1
    assert made["heatmap"][0].sum() == 0  # the crowd box makes no positive


def test_targets_are_checked() -> None:
    with pytest.raises(ValueError, match=r"target 3 has labels in \[0, 5\]; expected \[0, 3\)"):
        centernet_targets(
            {"boxes": torch.zeros(2, 4), "labels": torch.tensor([0, 5])}, 3, (4, 4), 4, index=3
        )
    with pytest.raises(ValueError, match="2 boxes, 1 labels"):
        centernet_targets({"boxes": torch.zeros(2, 4), "labels": torch.tensor([0])}, 3, (4, 4), 4)


def test_penalty_reduced_focal_loss_hand_worked() -> None:
    # p = sigmoid(0) = 0.5 at a centre (y = 1): (1 - 0.5)^2 * -log 0.5 = 0.25 log 2.
    # p = sigmoid(log 3) = 0.75 at y = 0.5: (1 - 0.5)^4 * 0.75^2 * -log 0.25 = 0.0625*0.5625*log 4.
    # p = 0.25 at y = 0: 0.25^2 * -log 0.75.
    logits = torch.tensor([0.0, math.log(3), -math.log(3)], dtype=torch.float64)
    heatmap = torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64)
    expected = 0.25 * math.log(2) + 0.0625 * 0.5625 * math.log(4) + 0.0625 * -math.log(0.75)
    assert float(penalty_reduced_focal_loss(logits, heatmap)) == pytest.approx(expected)
    huge = penalty_reduced_focal_loss(torch.tensor([-200.0, 200.0]), torch.tensor([1.0, 0.0]))
    assert torch.isfinite(huge) and float(huge) == pytest.approx(400.0)


def test_heatmap_peaks_on_a_hand_made_map() -> None:
    heat = torch.zeros(1, 2, 5, 6)
    heat[0, 0, 1, 1] = 0.9  # peak
    heat[0, 0, 1, 2] = 0.8  # next to a higher cell: not a peak
    heat[0, 0, 4, 5] = 0.7  # corner peak
    heat[0, 1, 1, 2] = 0.6  # a peak in another class at the same place
    heat[0, 1, 3, 3] = heat[0, 1, 3, 4] = 0.5  # a plateau: both cells are peaks
    scores, labels, cells = heatmap_peaks(heat, top_k=5)
    torch.testing.assert_close(scores, torch.tensor([[0.9, 0.7, 0.6, 0.5, 0.5]]))
    assert labels.tolist() == [[0, 0, 1, 1, 1]]
    assert cells[0, :3].tolist() == [1 * 6 + 1, 4 * 6 + 5, 1 * 6 + 2]
    assert sorted(cells[0, 3:].tolist()) == [3 * 6 + 3, 3 * 6 + 4]


def test_decode_hand_made_outputs() -> None:
    model = build_model("centernet", 2, **TINY)
    h, w = 8, 10
    heatmap = torch.full((1, 2, h, w), -10.0)
    heatmap[0, 1, 2, 3] = 2.0
    size, offset = torch.zeros(1, 2, h, w), torch.zeros(1, 2, h, w)
    size[0, :, 2, 3] = torch.tensor([2.0, 4.0])
    offset[0, :, 2, 3] = torch.tensor([0.5, 0.25])
    outputs = {"heatmap": heatmap, "size": size, "offset": offset}
    (found,) = model.decode(outputs, (32, 40), score_threshold=0.5)
    # Centre ((3, 2) + (0.5, 0.25)) * 4 = (14, 9); size (2, 4) * 4 = 8 x 16.
    torch.testing.assert_close(found["boxes"], torch.tensor([[10.0, 1.0, 18.0, 17.0]]))
    torch.testing.assert_close(found["scores"], torch.tensor([2.0]).sigmoid())
    assert found["labels"].tolist() == [1]
    (clipped,) = model.decode(outputs | {"size": size * 10}, (32, 40), score_threshold=0.5)
    torch.testing.assert_close(clipped["boxes"], torch.tensor([[0.0, 0.0, 40.0, 32.0]]))


@pytest.mark.parametrize(
    ("encoder", "options", "upsample"),
    [("darknet53", {"width": 0.0625}, "learned"), ("vgg16", {"width": 0.0625}, "resize_conv")],
)
def test_any_encoder_any_input_size(encoder: str, options: dict, upsample: str) -> None:
    model = build_model(
        "centernet",
        3,
        encoder=encoder,
        encoder_options=options,
        upsample=upsample,
        decoder_channels=(8, 8, 8),
        head_channels=8,
    )
    outputs = model(torch.rand(1, 3, 70, 90))
    assert outputs["heatmap"].shape == (1, 3, 18, 23)
    assert outputs["size"].shape == outputs["offset"].shape == (1, 2, 18, 23)
    # The heatmap starts at the paper's prior, probability 0.1.
    assert model.head.heatmap[-1].bias[0].item() == pytest.approx(-2.1972, abs=1e-4)
    assert {"encoder", "decoder", "head"} <= {name for name, _ in model.named_children()}


def test_decoder_channels_must_match_the_steps() -> None:
    with pytest.raises(ValueError, match="needs 3 entries"):
        build_model("centernet", 2, **(TINY | {"decoder_channels": (8, 8)}))


def test_tiny_centernet_overfits_two_images() -> None:
    torch.manual_seed(0)
    model = build_model("centernet", 2, **TINY)
    images = torch.rand(2, 3, 64, 64) * 0.3
    targets = [
        {"boxes": torch.tensor([[10.0, 12.0, 40.0, 50.0]]), "labels": torch.tensor([1])},
        {
            "boxes": torch.tensor([[30.0, 8.0, 60.0, 30.0], [4.0, 36.0, 24.0, 60.0]]),
            "labels": torch.tensor([0, 1]),
            "iscrowd": torch.tensor([False, False]),
        },
    ]
    for image, target in zip(images, targets, strict=True):
        for k, (x1, y1, x2, y2) in enumerate(target["boxes"].long().tolist()):
            image[k % 3, y1:y2, x1:x2] = 1.0
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(40):
        losses = model.loss(model(images), targets)
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
        first = losses["loss"].item() if first is None else first
    with torch.no_grad():  # train-mode batch statistics: 40 steps do not settle running ones
        outputs = model(images)
    assert float(model.loss(outputs, targets)["loss"]) < first / 10
    for found, target in zip(model.decode(outputs, (64, 64), top_k=10), targets, strict=True):
        iou = box_iou(target["boxes"], found["boxes"])
        best = iou.argmax(dim=1)
        assert (iou.max(dim=1).values > 0.6).all(), (found, target)
        assert found["labels"][best].tolist() == target["labels"].tolist()
        assert (found["scores"][best] > 0.5).all()


def test_loss_of_images_without_objects_is_the_background_term() -> None:
    model = build_model("centernet", 2, **TINY)
    outputs = model(torch.rand(2, 3, 32, 32))
    targets = [
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},
        {"boxes": torch.tensor([[0.0, 0.0, 32.0, 32.0]]), "labels": torch.tensor([1]),
         "iscrowd": torch.tensor([1])},
    ]  # fmt: skip
    losses = model.loss(outputs, targets)
    expected = penalty_reduced_focal_loss(outputs["heatmap"], torch.zeros(2, 2, 8, 8))
    torch.testing.assert_close(losses["heatmap"], expected)
    assert losses["size"] == 0 and losses["offset"] == 0
    torch.testing.assert_close(losses["loss"], expected)
