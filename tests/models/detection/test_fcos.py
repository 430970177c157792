"""FCOS: any encoder and input size, the paper's defaults, decoding with NMS, the loss."""

from __future__ import annotations

import math

import pytest
import torch
from helpers.devices import DEVICES, assert_same_detections, to_device
from helpers.fcos_reference import per_image_fcos_targets, random_box_targets

from fcnlab.models import build_model
from fcnlab.models.detection.decoding import ltrb_to_boxes
from fcnlab.models.detection.targets import IGNORE, fcos_locations
from fcnlab.ops import batched_nms, clip_boxes

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
    labels = model.targets(outputs, targets)["labels"]
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


def test_loss_and_gradients_equal_those_of_the_per_image_assignment() -> None:
    # FCOS assigned each image in turn and stacked the results before its assignment was
    # batched: on a seeded batch, every loss and every parameter's gradient is exactly the same.
    torch.manual_seed(0)
    model = build_model("fcos", 4, **TINY)
    targets = random_box_targets(7, 6, (96, 80), num_classes=4)
    outputs = model(torch.rand(6, 3, 96, 80))
    made = [
        per_image_fcos_targets(t, 4, outputs["points"], outputs["level"], model.strides,
                               model.size_ranges, model.center_radius, i)
        for i, t in enumerate(targets)
    ]  # fmt: skip
    stacked = {key: torch.stack([m[key] for m in made]) for key in made[0]}
    expected = model.losses_for(outputs, stacked)
    found = model.loss(outputs, targets)
    assert expected.keys() == found.keys()
    assert all(torch.equal(found[key], expected[key]) for key in expected)
    assert int((stacked["labels"] >= 0).sum()) > 20
    parameters = list(model.parameters())
    want = torch.autograd.grad(expected["loss"], parameters, retain_graph=True)
    got = torch.autograd.grad(found["loss"], parameters)
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))


def per_image_decode(
    model: torch.nn.Module,
    outputs: dict[str, torch.Tensor],
    image_size: tuple[int, int],
    score_threshold: float,
    top_k: int,
    pre_nms_top_k: int,
    nms_threshold: float,
) -> list[dict[str, torch.Tensor]]:
    """FCOS.decode as written before it was batched (commit 26f22f8): one image and one level
    at a time, the threshold by ``nonzero``, NMS per image. The batched decode must equal it."""
    scores = (outputs["cls_logits"].sigmoid() * outputs["centerness"].sigmoid()[..., None]).sqrt()
    level = outputs["level"]
    results = []
    for image_scores, image_ltrb in zip(scores, outputs["ltrb"], strict=True):
        boxes, kept_scores, labels, locations = [], [], [], []
        for k in range(len(model.strides)):
            at_level = (level == k).nonzero()[:, 0]
            flat = image_scores[at_level].flatten()
            candidates = (flat >= score_threshold).nonzero()[:, 0]
            best = flat[candidates].topk(min(pre_nms_top_k, len(candidates))).indices
            chosen = candidates[best]
            where = at_level[chosen // model.num_classes]
            boxes.append(ltrb_to_boxes(outputs["points"][where], image_ltrb[where]))
            kept_scores.append(flat[chosen])
            labels.append(chosen % model.num_classes)
            locations.append(where)
        box = clip_boxes(torch.cat(boxes), image_size)
        score, label = torch.cat(kept_scores), torch.cat(labels)
        keep = batched_nms(box, score, label, nms_threshold)[:top_k]
        location = torch.cat(locations)
        results.append(
            {
                "boxes": box[keep],
                "scores": score[keep],
                "labels": label[keep],
                "locations": location[keep],
            }
        )
    return results


def random_fcos_outputs(num_images: int, num_classes: int, seed: int) -> dict[str, torch.Tensor]:
    """Head outputs of a 48x64 input whose scores never tie within an image and level (a tie
    at the top-k cut may go either way); in a batch of several, the last image scores below
    0.05 everywhere."""
    g = torch.Generator().manual_seed(seed)
    points, level = fcos_locations([(6, 8), (3, 4), (2, 2), (1, 1), (1, 1)], STRIDES)
    n = len(points)
    logits = torch.randn(num_images, n, num_classes, generator=g) * 2 - 2
    if num_images > 1:
        logits[-1] = logits[-1] - 20
    centerness = torch.randn(num_images, n, generator=g)
    stride = torch.tensor(STRIDES, dtype=torch.float32)[level]
    # Distances of 0.5 to 3 strides: neighbours overlap, and boxes cross the image border.
    ltrb = (torch.rand(num_images, n, 4, generator=g) * 2.5 + 0.5) * stride[:, None]
    outputs = {
        "cls_logits": logits,
        "ltrb": ltrb,
        "centerness": centerness,
        "points": points,
        "level": level,
    }
    scores = (logits.sigmoid() * centerness.sigmoid()[..., None]).sqrt()
    for k in range(len(STRIDES)):
        at_level = scores[:, level == k].flatten(1)
        assert all(len(row.unique()) == len(row) for row in at_level), "tied scores"
    return outputs


@pytest.mark.parametrize("num_images", [1, 2, 5])
@pytest.mark.parametrize(
    ("score_threshold", "top_k", "pre_nms_top_k", "nms_threshold"),
    [
        (0.05, 100, 1000, 0.6),  # the defaults
        (0.0, 1000, 20, 0.6),  # every level yields its pre_nms_top_k candidates
        (0.3, 10, 1000, 0.5),  # a few candidates per image, the top 10 of them
        (0.5, 100, 7, 0.3),
        (0.99, 100, 1000, 0.6),  # no candidates at all
    ],
)
def test_batched_decode_equals_decoding_each_image_and_level(
    num_images: int,
    score_threshold: float,
    top_k: int,
    pre_nms_top_k: int,
    nms_threshold: float,
) -> None:
    model = build_model("fcos", 20, **TINY)
    outputs = random_fcos_outputs(num_images, 20, seed=num_images)
    settings = (score_threshold, top_k, pre_nms_top_k, nms_threshold)
    found = model.decode(outputs, (45, 60), *settings)
    expected = per_image_decode(model, outputs, (45, 60), *settings)
    assert len(found) == len(expected) == num_images
    for image, (a, b) in enumerate(zip(found, expected, strict=True)):
        assert a.keys() == b.keys()
        for name in b:
            assert a[name].dtype == b[name].dtype, (image, name)
            assert torch.equal(a[name], b[name]), (image, name)
    counts = [len(d["scores"]) for d in expected]
    if pre_nms_top_k == 20:  # the stress case: 5 levels x 20 candidates, most kept
        assert min(counts) > 50
    elif score_threshold < 0.9:  # the last image has no candidates, the others have some
        assert min(counts[:-1], default=1) > 0 and (counts[-1] == 0) == (num_images > 1)
    else:
        assert sum(counts) == 0


def test_batched_decode_drops_nan_scores_and_keeps_scores_at_the_threshold() -> None:
    model = build_model("fcos", 20, **TINY)
    outputs = random_fcos_outputs(3, 20, seed=3)
    outputs["cls_logits"][1, :40] = float("nan")  # a diverged image: NaN is no candidate
    scores = (outputs["cls_logits"].sigmoid() * outputs["centerness"].sigmoid()[..., None]).sqrt()
    # A threshold equal to a score (0.7 as float32 is below 0.7, the comparison is float32's).
    for threshold in (float(scores[0, 50, 3]), float(scores[2, 7, 11]), 0.7):
        settings = (threshold, 100, 7, 0.5)
        found = model.decode(outputs, (45, 60), *settings)
        expected = per_image_decode(model, outputs, (45, 60), *settings)
        for a, b in zip(found, expected, strict=True):
            assert all(torch.equal(a[name], b[name]) for name in b)
        assert len(found[1]["scores"]) > 0
    at_threshold = model.decode(outputs, (45, 60), float(scores[0, 50, 3]), 2000, 1000, 1.0)
    assert float(scores[0, 50, 3]) in at_threshold[0]["scores"].tolist()


@pytest.mark.parametrize("device", DEVICES)
def test_decode_on_the_device_equals_the_cpu_decode_of_each_image(device: str) -> None:
    model = build_model("fcos", 20, **TINY)
    outputs = random_fcos_outputs(3, 20, seed=3)  # the third image finds nothing
    expected = per_image_decode(model, outputs, (45, 60), 0.05, 100, 1000, 0.6)
    found = model.to(device).decode(to_device(outputs, device), (45, 60))
    assert {d[name].device.type for d in found for name in d} == {device}
    assert_same_detections(found, expected)
    assert [len(d["scores"]) > 0 for d in found] == [True, True, False]
