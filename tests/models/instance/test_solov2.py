"""SOLOv2: shapes at odd sizes, the paper's configuration and parameter count, grid levels and the
heads against PyTorch's ops, targets worked by hand, points NMS by hand, the loss against a
per-cell reference, empty images, decoding by hand and per the instance contract, overfitting one
image, the builder, configs and a frozen encoder."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from helpers.instance_targets import (
    empty_target,
    instance_target,
    overfit,
    rectangles,
    two_shapes,
)
from scipy import ndimage

from fcnlab.config import ModelConfig
from fcnlab.models import build_model, freeze_encoder, model_task, param_groups
from fcnlab.models.from_config import build_model_from_config
from fcnlab.models.instance import SOLOv2, points_nms, solov2_targets
from fcnlab.models.instance.solov2 import centre_of_mass, grid_levels
from fcnlab.ops.masks import mask_iou, paste_masks

# Grids and size ranges for images of 64-96 pixels (the paper's ranges / 4, coarse grids), so
# that an object spans a few cells of its grid, as in the paper.
SMALL = {"num_grids": [10, 8, 6, 4, 3], "scale_ranges": [[1, 24], [12, 48], [24, 96], [48, 192],
                                                         [96, 512]]}  # fmt: skip
NARROW = {
    "encoder": "vgg16_bn",
    "encoder_options": {"width": 0.125},
    "fpn_channels": 32,
    "head_channels": 32,
    "head_depth": 2,
    "mask_channels": 16,
    "mask_branch_channels": 16,
}


def narrow(num_classes: int = 3, **options) -> SOLOv2:
    torch.manual_seed(0)
    return build_model("solov2", num_classes, **(NARROW | options))


def test_shapes_at_odd_input_sizes() -> None:
    # VGG rounds its sizes down (P2 16 x 23 for 67 x 93), ResNet up (17 x 24); the mask features
    # are ceil(67 / 4) x ceil(93 / 4) = 17 x 24 either way.
    cells = 40**2 + 36**2 + 24**2 + 16**2 + 12**2
    resnet = {"encoder": "resnet18", "fpn_channels": 32, "head_channels": 32, "head_depth": 1,
              "mask_channels": 8, "mask_branch_channels": 8}  # fmt: skip
    for options in (NARROW, resnet):
        model = build_model("solov2", 3, **options)
        outputs = model(torch.rand(2, 3, 67, 93))
        channels = options["mask_channels"]
        assert set(outputs) == {"cate_logits", "kernels", "mask_features"}
        assert outputs["cate_logits"].shape == (2, cells, 3)
        assert outputs["kernels"].shape == (2, cells, channels)
        assert outputs["mask_features"].shape == (2, channels, 17, 24)
    assert model.task == "instance" and model.mask_stride == 4


def solov2_r50_parameters(num_classes: int) -> int:
    """SOLOv2-R50's parameters counted layer by layer from the authors' configuration."""
    resnet50 = 23_508_032  # torchvision's ResNet-50 without its 1000-class fc layer
    fpn = sum(c * 256 + 256 for c in (256, 512, 1024, 2048)) + 4 * (9 * 256 * 256 + 256)
    # MaskFeatHead: 3x3 convs 256 -> 128 (P2, P3, P4's first), 258 -> 128 (P5's first, with the
    # coordinates), 128 -> 128 (P4's second, P5's second and third); 1x1 128 -> 256; GN each.
    mask = 3 * 9 * 256 * 128 + 9 * 258 * 128 + 3 * 9 * 128 * 128 + 7 * 2 * 128
    mask += 128 * 256 + 2 * 256
    # Category and kernel towers: 4 conv-GN of 512 (fcnlab's tower keeps the conv bias), on 256
    # and 256 + 2 inputs; 3x3 outputs to the classes and to E = 256 kernel weights.
    cate = sum(9 * c * 512 + 512 + 2 * 512 for c in (256, 512, 512, 512))
    kernel = sum(9 * c * 512 + 512 + 2 * 512 for c in (258, 512, 512, 512))
    outputs = 9 * 512 * num_classes + num_classes + 9 * 512 * 256 + 256
    return resnet50 + fpn + mask + cate + kernel + outputs


def test_paper_configuration_and_parameter_count() -> None:
    model = build_model("solov2", 80)
    assert type(model.encoder).__name__.lower().startswith("resnet")
    assert model.num_grids == (40, 36, 24, 16, 12)
    assert model.scale_ranges == ((1, 96), (48, 192), (96, 384), (192, 768), (384, 2048))
    assert model.centre_scale == 0.2 and model.mask_weight == 3.0
    assert model.decoder.strides == (4, 8, 16, 32) and len(model.decoder.extra) == 0
    assert model.mask_branch.out_stride == 4 and model.mask_branch.out_channels == 256
    assert model.head.kernels.out_channels == 256 and model.head.cate_logits.out_channels == 80
    assert isinstance(model.head.cate_tower[1], torch.nn.GroupNorm)
    count = sum(p.numel() for p in model.parameters())
    assert count == solov2_r50_parameters(80) == 46_597_008
    torch.testing.assert_close(
        model.head.cate_logits.bias, torch.full((80,), -math.log(99)), rtol=0, atol=1e-6
    )


def test_grid_levels_halve_p2_and_derive_p6_from_p5() -> None:
    pyramid = [torch.randn(1, 4, 16, 24), torch.randn(1, 4, 8, 12), torch.randn(1, 4, 4, 6),
               torch.randn(1, 4, 2, 3)]  # fmt: skip
    levels = grid_levels(pyramid)
    assert [tuple(p.shape[-2:]) for p in levels] == [(8, 12), (8, 12), (4, 6), (2, 3), (2, 3)]
    halved = F.interpolate(pyramid[0], scale_factor=0.5, mode="bilinear", align_corners=False)
    torch.testing.assert_close(levels[0], halved)  # the authors' halving at padded sizes
    assert levels[1] is pyramid[1] and levels[3] is pyramid[3]
    p6 = F.max_pool2d(pyramid[3], 1, stride=2)  # the authors' FPN's P6
    back = F.interpolate(p6, size=(2, 3), mode="bilinear", align_corners=False)
    torch.testing.assert_close(levels[4], back)


def test_head_resizes_each_level_with_coordinates_for_the_kernels_only() -> None:
    model = narrow(**SMALL).eval()
    head = model.head
    level = torch.randn(1, 32, 5, 7)
    # A level by hand: x, y from linspace(-1, 1), bilinear to the 8 x 8 grid of level 1.
    y, x = torch.meshgrid(torch.linspace(-1, 1, 5), torch.linspace(-1, 1, 7), indexing="ij")
    with_coordinates = torch.cat((level, torch.stack((x, y))[None]), dim=1)
    grid = F.interpolate(with_coordinates, size=(8, 8), mode="bilinear", align_corners=False)
    kernels = head.kernels(head.kernel_tower(grid))
    cate = head.cate_logits(head.cate_tower(grid[:, :32]))
    outputs = head([torch.randn(1, 32, 3, 3), level, *(torch.randn(1, 32, 2, 2),) * 3])
    rows = slice(100, 164)  # level 1 follows level 0's 10 x 10 cells, row-major
    torch.testing.assert_close(outputs["kernels"][0, rows], kernels[0].flatten(1).T)
    torch.testing.assert_close(outputs["cate_logits"][0, rows], cate[0].flatten(1).T)
    assert head.kernel_tower[0].in_channels == 34 and head.cate_tower[0].in_channels == 32


def test_points_nms_by_hand() -> None:
    scores = torch.tensor(
        [[0.1, 0.9, 0.3],
         [0.5, 0.2, 0.8],
         [0.7, 0.7, 0.4]]
    )[None, None]  # fmt: skip
    # A cell is kept unless its up, left or up-left neighbour is higher: 0.3 (left 0.9), 0.2
    # (up 0.9), 0.8 (up-left 0.9) and 0.4 (up 0.8) go; (2, 1) ties with its left 0.7 and stays.
    expected = torch.tensor(
        [[0.1, 0.9, 0.0],
         [0.5, 0.0, 0.0],
         [0.7, 0.7, 0.0]]
    )[None, None]  # fmt: skip
    torch.testing.assert_close(points_nms(scores), expected)
    # Classes are independent.
    flipped = scores.flip(-1)
    both = points_nms(torch.cat((scores, flipped), dim=1))
    assert torch.equal(both[:, :1], expected) and torch.equal(both[:, 1:], points_nms(flipped))


# A 64 x 96 input. A: rows 9-24, cols 16-35 (w 20, h 16, sqrt(320) = 17.9: levels 0 and 1), centre
# of mass (26, 17). B: an L (rows 20-59 x cols 44-67 plus rows 20-29 x cols 68-91; box 48 x 40,
# sqrt(1920) = 43.8: levels 1 and 2), centre of mass ((960 * 56 + 240 * 80) / 1200,
# (960 * 40 + 240 * 25) / 1200) = (60.8, 37), left of its box's centre (68, 40).
GRIDS = [8, 6, 4, 3, 2]
RANGES = [[1, 24], [16, 48], [32, 96], [64, 192], [128, 512]]


def two_objects() -> torch.Tensor:
    masks = torch.zeros(3, 64, 96, dtype=torch.bool)
    masks[0, 9:25, 16:36] = True
    masks[1, 20:60, 44:68] = True
    masks[1, 20:30, 68:92] = True
    masks[2, 0:64, 0:48] = True  # a crowd: never a positive
    return masks


def test_centres_of_mass_are_scipys_at_pixel_centres() -> None:
    masks = two_objects()
    for mask, (x, y) in zip(masks, centre_of_mass(masks).tolist(), strict=True):
        row, col = ndimage.center_of_mass(mask.numpy())
        assert (x, y) == pytest.approx((col + 0.5, row + 0.5))
    assert centre_of_mass(masks)[:2].tolist() == [[26.0, 17.0], [60.8, 37.0]]


def test_targets_by_hand() -> None:
    target = instance_target(two_objects(), [1, 2, 0], crowd=[0, 0, 1])
    made = solov2_targets(target, 3, GRIDS, RANGES, centre_scale=0.2)
    cells = sum(s * s for s in GRIDS)
    assert made["labels"].shape == made["owner"].shape == (cells,)
    # Level 0 (8 x 8 cells of 12 x 8 pixels): A's centre (26, 17) is in cell (row 2, col 2); its
    # region, the box x 0.2 about the centre, is x 24-28 (col 2), y 15.4-18.6 (rows 1-2).
    # Level 1 (6 x 6 cells of 16 x 10.67 pixels): A's centre cell (1, 1), x 24-28 and y
    # 15.4-18.6 stay in it. B's centre (60.8, 37) is cell (3, 3); x 56-65.6 reaches col 4,
    # y 33-41 stays in row 3 (with the box's centre B would sit in col 4 alone).
    # Level 2 (4 x 4 cells of 24 x 16 pixels): B in cell (2, 2) only.
    expected = {0 * 64 + 1 * 8 + 2: 0, 0 * 64 + 2 * 8 + 2: 0, 64 + 1 * 6 + 1: 0,
                64 + 3 * 6 + 3: 1, 64 + 3 * 6 + 4: 1, 100 + 2 * 4 + 2: 1}  # fmt: skip
    positive = (made["owner"] >= 0).nonzero()[:, 0].tolist()
    assert positive == sorted(expected)
    assert made["owner"][positive].tolist() == [expected[c] for c in positive]
    assert made["labels"][positive].tolist() == [[1, 2][expected[c]] for c in positive]
    assert (made["labels"] >= 0).sum() == len(positive)


def test_centre_regions_are_cut_to_three_by_three_and_later_objects_win() -> None:
    target = instance_target(two_objects()[:2], [1, 2])
    made = solov2_targets(target, 3, GRIDS, RANGES, centre_scale=1.0)
    # Level 1 with the whole box as the region: A (centre cell (1, 1)) spans x 16-36 -> cols
    # 1-2, y 9-25 -> rows 0-2. B (centre cell (3, 3)) spans x 36.8-84.8 -> cols 2-5 and y 17-57
    # -> rows 1-5, both cut to 2-4 around its centre cell; B, written after A, takes (2, 2).
    grid = made["owner"][64:100].reshape(6, 6)
    expected = torch.full((6, 6), -1)
    expected[0:3, 1:3] = 0
    expected[2:5, 2:5] = 1
    assert torch.equal(grid, expected)


def reference_loss(model: SOLOv2, outputs, targets) -> dict[str, torch.Tensor]:
    """The loss from first principles: focal loss element by element; every positive cell's
    mask as F.conv2d of the mask features with its kernel as a 1x1 filter, its object's mask
    read at pixels (4x + 2, 4y + 2) cell by cell, the dice formula."""
    logits = outputs["cate_logits"]
    focal = torch.zeros(())
    dice = []
    count = 0
    for i, target in enumerate(targets):
        made = model.targets([target])[0]
        for cell in range(logits.shape[1]):
            for c in range(model.num_classes):
                p = logits[i, cell, c].sigmoid()
                if made["owner"][cell] >= 0 and made["labels"][cell] == c:
                    focal = focal - 0.25 * (1 - p) ** 2 * torch.log(p)
                else:
                    focal = focal - 0.75 * p**2 * torch.log(1 - p)
        masks = target["masks"]
        height, width = masks.shape[-2:]
        for cell in (made["owner"] >= 0).nonzero()[:, 0].tolist():
            count += 1
            kernel = outputs["kernels"][i, cell].reshape(1, -1, 1, 1)
            p = F.conv2d(outputs["mask_features"][i : i + 1], kernel)[0, 0].sigmoid()
            truth = torch.zeros_like(p)
            for y in range(truth.shape[0]):
                for x in range(truth.shape[1]):
                    if 4 * y + 2 < height and 4 * x + 2 < width:
                        truth[y, x] = float(masks[made["owner"][cell], 4 * y + 2, 4 * x + 2])
            dice.append(
                1
                - (2 * (p * truth).sum() + 1e-5) / (p.square().sum() + truth.square().sum() + 1e-5)
            )
    return {"cate": focal / (count + 1), "mask": 3 * torch.stack(dice).mean()}


def test_loss_matches_a_per_cell_reference() -> None:
    # 67 x 93 on VGG: mask features 16 x 23 extended to 17 x 24 by their edge cells.
    model = narrow(**SMALL)
    masks = rectangles(67, 93, (10, 6, 40, 36), (40, 30, 90, 66), (0, 0, 20, 20))
    masks[0, 15:25, 20:30] = False  # a hole: the mask is not its box
    targets = [instance_target(masks, [0, 2, 1], crowd=[0, 0, 1]), empty_target(67, 93)]
    outputs = model(torch.rand(2, 3, 67, 93))
    losses = model.loss(outputs, targets)
    expected = reference_loss(model, outputs, targets)
    assert set(losses) == {"loss", "cate", "mask"}
    torch.testing.assert_close(losses["cate"], expected["cate"])
    torch.testing.assert_close(losses["mask"], expected["mask"])
    torch.testing.assert_close(losses["loss"], losses["cate"] + losses["mask"])


def test_empty_images_keep_the_loss_finite_and_every_parameter_in_the_graph() -> None:
    model = narrow(**SMALL)
    images = torch.rand(2, 3, 64, 64)
    one = [instance_target(rectangles(64, 64, (8, 8, 30, 30)), [1]), empty_target(64, 64)]
    losses = model.loss(model(images), one)
    assert all(torch.isfinite(v) for v in losses.values()) and losses["mask"] > 0
    losses["loss"].backward()
    for part in (model.head.cate_tower, model.head.kernel_tower, model.head.cate_logits,
                 model.head.kernels, model.mask_branch, model.decoder, model.encoder):  # fmt: skip
        for name, p in part.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    model.zero_grad(set_to_none=True)
    none = [empty_target(64, 64), empty_target(64, 64)]
    losses = model.loss(model(images), none)
    assert losses["mask"].item() == 0 and torch.isfinite(losses["loss"])
    losses["loss"].backward()
    # DDP wants a gradient for every parameter, even when it is zero.
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def hand_outputs(model: SOLOv2) -> dict[str, torch.Tensor]:
    """Raw outputs of a 64 x 96 input (16 x 24 mask cells) with known answers.

    Mask-feature channels at +10 inside and -10 outside three regions: R1 rows 2-7 x cols 3-10,
    R2 rows 9-14 x cols 14-21, R3 rows 12-15 x cols 0-4 (20 cells). Every category logit is -20
    but for the cells listed in ``CELLS``."""
    features = torch.full((1, 3, 16, 24), -10.0)
    features[0, 0, 2:8, 3:11] = 10.0
    features[0, 1, 9:15, 14:22] = 10.0
    features[0, 2, 12:16, 0:5] = 10.0
    cells = sum(s * s for s in GRIDS)
    logits = torch.full((1, cells, 2), -20.0)
    kernels = torch.zeros(1, cells, 3)
    for cell, label, probability, region in CELLS:
        logits[0, cell, label] = math.log(probability / (1 - probability))
        kernels[0, cell, region] = 1.0
    return {"cate_logits": logits, "kernels": kernels, "mask_features": features}


# (cell, class, probability, region) on the grids 8, 6, 4, 3, 2 (levels start at cells 0, 64,
# 100, 116, 125).
CELLS = [
    (1 * 8 + 1, 0, 0.9, 0),  # level 0 (1, 1): R1, the best
    (5 * 8 + 5, 0, 0.8, 0),  # level 0 (5, 5): R1 again, same class: decays by exp(-2 x 1^2)
    (1 * 8 + 2, 0, 0.85, 1),  # level 0 (1, 2): right of a higher cell, points NMS removes it
    (64 + 2 * 6 + 3, 0, 0.7, 1),  # level 1 (2, 3): R2, disjoint from R1, keeps its score
    (64 + 4 * 6 + 4, 1, 0.6, 0),  # level 1 (4, 4): R1 in class 1, no decay across classes
    (6 * 8 + 1, 1, 0.5, 2),  # level 0 (6, 1): R3, 20 cells > stride 8: kept
    (116 + 1 * 3 + 1, 0, 0.95, 2),  # level 3 (1, 1): R3, 20 cells <= stride 32: dropped
    (100 + 0 * 4 + 0, 1, 0.05, 1),  # level 2 (0, 0): below the cell threshold 0.1
]


def test_decode_by_hand() -> None:
    model = narrow(2, mask_channels=3, num_grids=GRIDS, scale_ranges=RANGES)
    (found,) = model.decode(hand_outputs(model), (64, 96))
    m = torch.sigmoid(torch.tensor(10.0))  # every mask's maskness
    expected = torch.tensor([0.9, 0.7, 0.6, 0.5, 0.8 * math.exp(-2)]) * m
    torch.testing.assert_close(found["scores"], expected)
    assert found["labels"].tolist() == [0, 0, 1, 1, 0]
    assert found["labels"].dtype == torch.int64
    # Each region's cells x 4 (the pasted mask crosses 0.5 exactly at the cell edges).
    r1, r2, r3 = [12, 8, 44, 32], [56, 36, 88, 60], [0, 48, 20, 64]
    assert found["boxes"].tolist() == [r1, r2, r1, r3, r1]
    assert found["masks"].shape == (5, 16, 24) and found["masks"].dtype == torch.float32
    torch.testing.assert_close(
        found["masks"][0], hand_outputs(model)["mask_features"][0, 0].sigmoid()
    )
    # The update threshold drops the decayed duplicate; top_k keeps the best.
    (above,) = model.decode(hand_outputs(model), (64, 96), score_threshold=0.2)
    torch.testing.assert_close(above["scores"], expected[:4])
    (two,) = model.decode(hand_outputs(model), (64, 96), top_k=2)
    torch.testing.assert_close(two["scores"], expected[:2])
    # The linear kernel decays the exact duplicate to 0: gone.
    (linear,) = model.decode(hand_outputs(model), (64, 96), kernel="linear")
    torch.testing.assert_close(linear["scores"], expected[:4])


def test_decode_follows_the_instance_contract() -> None:
    model = narrow().eval()
    with torch.no_grad():
        outputs = model(torch.rand(2, 3, 67, 93))
    found = model.decode(outputs, (67, 93), score_threshold=0.0, cell_threshold=0.0)
    for detections in found:
        k = len(detections["scores"])
        assert k == 100
        masks = detections["masks"]
        assert masks.dtype == torch.float32 and masks.shape == (k, 17, 24)
        assert masks.min() >= 0 and masks.max() <= 1
        assert detections["labels"].dtype == torch.int64 and detections["boxes"].shape == (k, 4)
        assert (detections["scores"].diff() <= 0).all()
        pasted = paste_masks(masks, model.mask_stride, (67, 93))
        for box, mask in zip(detections["boxes"].tolist(), pasted, strict=True):
            rows, cols = mask.any(1).nonzero()[:, 0].tolist(), mask.any(0).nonzero()[:, 0].tolist()
            edges = [cols[0], rows[0], cols[-1] + 1, rows[-1] + 1] if rows else [0, 0, 0, 0]
            assert box == edges
    (few, _) = model.decode(outputs, (67, 93), score_threshold=0.0, cell_threshold=0.0, top_k=5)
    assert len(few["masks"]) == len(few["scores"]) == 5
    torch.testing.assert_close(few["masks"], found[0]["masks"][:5])
    (none, _) = model.decode(outputs, (67, 93), score_threshold=1.01)
    assert none["boxes"].shape == (0, 4) and none["masks"].shape == (0, 17, 24)
    assert none["labels"].dtype == torch.int64 and none["scores"].shape == (0,)
    assert paste_masks(none["masks"], 4, (67, 93), (134, 186)).shape == (0, 134, 186)


def test_overfits_one_image_and_finds_its_instances() -> None:
    model = narrow(2, **SMALL)
    image, masks = two_shapes()
    assert overfit(model, image, masks, steps=80) > 20  # the mask loss falls 20x
    model.eval()
    with torch.no_grad():
        (found,) = model.decode(model(image), (64, 64))
    pasted = paste_masks(found["masks"], model.mask_stride, (64, 64))
    iou = mask_iou(pasted, masks)
    for k in range(2):
        best = (found["labels"] == k).nonzero()[0, 0]  # the best-scored instance of class k
        assert found["scores"][best] > 0.5 and iou[best, k] > 0.5, (k, iou[best])


def test_builder_config_and_task() -> None:
    assert model_task("solov2") == "instance"
    config = ModelConfig(
        name="solov2",
        num_classes=4,
        encoder="vgg16_bn",
        options={"encoder_options": {"width": 0.125}, "fpn_channels": 16, "head_channels": 16,
                 "head_depth": 1, "mask_channels": 8, "mask_branch_channels": 8, **SMALL},
    )  # fmt: skip
    model = build_model_from_config(config)
    assert isinstance(model, SOLOv2) and model.num_grids == (10, 8, 6, 4, 3)
    outputs = model.eval()(torch.rand(1, 3, 40, 40))
    assert outputs["cate_logits"].shape == (1, 100 + 64 + 36 + 16 + 9, 4)
    assert outputs["mask_features"].shape == (1, 8, 10, 10)
    bad = ModelConfig(name="solov2", num_classes=4, options={"grids": [4]})
    with pytest.raises(ValueError, match=r"^model: .*grids"):
        build_model_from_config(bad)
    with pytest.raises(ValueError, match=r"SOLOv2 has 5 levels \(P2-P6\); got grids \[4, 2\]"):
        narrow(num_grids=[4, 2], scale_ranges=[[1, 10], [5, 20]])


def test_targets_must_be_the_batch_size() -> None:
    model = narrow(**SMALL)
    outputs = model(torch.rand(1, 3, 64, 64))
    small = instance_target(rectangles(32, 32, (4, 4, 20, 20)), [0])
    with pytest.raises(ValueError, match=r"target 0 has masks of \(32, 32\) pixels"):
        model.loss(outputs, [small])
    with pytest.raises(ValueError, match="got 2 targets for a batch of 1 images"):
        model.loss(outputs, [small, small])


def test_frozen_encoder_leaves_pyramid_heads_and_mask_branch_training() -> None:
    model = freeze_encoder(narrow(**SMALL))
    trainable = {name.split(".")[0] for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"decoder", "head", "mask_branch"}
    assert not any(p.requires_grad for p in model.encoder.parameters())
    groups = {g["name"]: {id(p) for p in g["params"]} for g in param_groups(model)}
    encoder = {id(p) for p in model.encoder.parameters()}
    assert groups["encoder"] | groups["encoder_no_decay"] == encoder
    rest = {id(p) for m in (model.head, model.mask_branch) for p in m.parameters()}
    assert rest <= groups["decoder"] | groups["decoder_no_decay"]
    target = instance_target(rectangles(64, 64, (8, 8, 30, 30)), [1])
    model.loss(model(torch.rand(1, 3, 64, 64)), [target])["loss"].backward()
    assert all(p.grad is None for p in model.encoder.parameters())
    assert all(p.grad is not None for p in model.mask_branch.parameters())
    assert all(p.grad is not None for p in model.head.parameters())
