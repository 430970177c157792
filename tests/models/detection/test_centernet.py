"""CenterNet: decoding peaks to boxes, any encoder and input size, the loss, a tiny model that
overfits."""

from __future__ import annotations

import pytest
import torch
from helpers.devices import DEVICES, assert_same_detections, to_device

from fcnlab.models import build_model
from fcnlab.models.detection.centernet import heatmap_peaks
from fcnlab.models.detection.decoding import ltrb_to_boxes
from fcnlab.models.detection.losses import penalty_reduced_focal_loss
from fcnlab.ops import box_iou, clip_boxes

TINY = {
    "encoder": "vgg16",
    "encoder_options": {"width": 0.0625},
    "decoder_channels": (16, 16, 16),
    "head_channels": 16,
}


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


def per_image_decode(
    model: torch.nn.Module,
    outputs: dict[str, torch.Tensor],
    image_size: tuple[int, int],
    score_threshold: float,
    top_k: int,
) -> list[dict[str, torch.Tensor]]:
    """CenterNet.decode as written before its per-image cut became one read of the counts
    (commit 26f22f8): a boolean mask per image. The new decode must equal it."""
    scores, labels, cells = heatmap_peaks(outputs["heatmap"].sigmoid(), top_k)
    w = outputs["heatmap"].shape[-1]
    index = cells[:, None, :].expand(-1, 2, -1)
    offset = outputs["offset"].flatten(2).gather(2, index).transpose(1, 2)
    size = outputs["size"].flatten(2).gather(2, index).transpose(1, 2)
    cell_xy = torch.stack((cells % w, cells // w), dim=-1).to(offset)
    centre = (cell_xy + offset) * model.stride
    half = size.clamp(min=0) * model.stride / 2
    boxes = clip_boxes(ltrb_to_boxes(centre, torch.cat((half, half), dim=-1)), image_size)
    keep = scores >= score_threshold
    return [
        {"boxes": b[k], "scores": s[k], "labels": lab[k]}
        for b, s, lab, k in zip(boxes, scores, labels, keep, strict=True)
    ]


@pytest.mark.parametrize("num_images", [1, 3])
@pytest.mark.parametrize(("score_threshold", "top_k"), [(0.05, 100), (0.3, 20), (0.6, 100)])
def test_decode_equals_masking_each_image(
    num_images: int, score_threshold: float, top_k: int
) -> None:
    model = build_model("centernet", 5, **TINY)
    g = torch.Generator().manual_seed(num_images)
    h, w = 12, 16
    heatmap = torch.randn(num_images, 5, h, w, generator=g) * 1.5 - 1
    heatmap[0, :, 3, 4] = float("nan")  # a diverged cell is no peak, nor are its neighbours
    if num_images > 1:
        heatmap[-1] = heatmap[-1] - 20  # an image without detections
    outputs = {
        "heatmap": heatmap,
        "size": torch.rand(num_images, 2, h, w, generator=g) * 8,
        "offset": torch.rand(num_images, 2, h, w, generator=g),
    }
    found = model.decode(outputs, (45, 60), score_threshold, top_k)
    expected = per_image_decode(model, outputs, (45, 60), score_threshold, top_k)
    assert len(found) == len(expected) == num_images
    for a, b in zip(found, expected, strict=True):
        assert a.keys() == b.keys()
        assert all(torch.equal(a[name], b[name]) for name in b)
    counts = [len(d["scores"]) for d in expected]
    assert 0 < counts[0] <= top_k and (counts[-1] == 0) == (num_images > 1)


@pytest.mark.parametrize("device", DEVICES)
def test_decode_on_the_device_equals_the_cpu_decode_of_each_image(device: str) -> None:
    model = build_model("centernet", 5, **TINY)
    g = torch.Generator().manual_seed(7)
    heatmap = torch.randn(2, 5, 12, 16, generator=g) * 1.5 - 1
    heatmap[1] -= 20  # an image without detections
    outputs = {
        "heatmap": heatmap,
        "size": torch.rand(2, 2, 12, 16, generator=g) * 8,
        "offset": torch.rand(2, 2, 12, 16, generator=g),
    }
    expected = per_image_decode(model, outputs, (45, 60), 0.05, 100)
    found = model.to(device).decode(to_device(outputs, device), (45, 60))
    assert {d[name].device.type for d in found for name in d} == {device}
    assert_same_detections(found, expected)
    assert [len(d["scores"]) for d in found] == [100, 0]
