"""CondInst: shapes at odd sizes, the controller's place, the mask loss against a per-positive
reference, empty images, the proposal cap, decoding per the instance contract, overfitting one
image, the builder, configs and staged training."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from helpers.dynamic_heads import heads_by_hand, run_head
from helpers.instance_targets import empty_target, instance_target, overfit, rectangles, two_shapes

import fcnlab.models.instance.condinst as condinst_module
from fcnlab.config import ModelConfig
from fcnlab.models import build_model, freeze_encoder, model_task, param_groups
from fcnlab.models.detection.fcos import FCOS
from fcnlab.models.detection.targets import fcos_targets
from fcnlab.models.from_config import build_model_from_config
from fcnlab.models.instance import CondInst, masks_at_stride
from fcnlab.ops.masks import mask_iou, paste_masks

NARROW = {
    "encoder": "vgg16_bn",
    "encoder_options": {"width": 0.125},
    "fpn_channels": 32,
    "head_depth": 1,
    "mask_branch_channels": 16,
    "mask_branch_depth": 2,
}
SIZES_OF_INTEREST = [64, 128, 256, 512, 1024]


def narrow(num_classes: int = 3, **options) -> CondInst:
    torch.manual_seed(0)
    return build_model("condinst", num_classes, **(NARROW | options))


def test_shapes_at_odd_input_sizes() -> None:
    # VGG rounds its sizes down (P3 8 x 11 for 67 x 93), ResNet up (9 x 12).
    for options, p3 in ((NARROW, (8, 11)), ({"encoder": "resnet18", "fpn_channels": 32}, (9, 12))):
        model = build_model("condinst", 3, **options)
        outputs = model(torch.rand(2, 3, 67, 93))
        locations = len(outputs["points"])
        assert outputs["cls_logits"].shape == (2, locations, 3)
        assert outputs["controller"].shape == (2, locations, 169)
        assert outputs["mask_features"].shape == (2, 8, *p3)
        assert outputs["ltrb"].shape == (2, locations, 4)
        assert outputs["centerness"].shape == (2, locations)
        assert outputs["level"].shape == (locations,)
        assert p3[0] * p3[1] == int((outputs["level"] == 0).sum())
    assert model.task == "instance" and model.mask_stride == 4


def test_paper_configuration() -> None:
    model = build_model("condinst", 80)
    assert type(model.encoder).__name__.lower().startswith("resnet")
    assert model.controller.in_channels == 256 and model.controller.out_channels == 169
    assert model.controller.kernel_size == (3, 3)
    assert model.mask_branch.refine[0][0].out_channels == 128
    assert model.mask_branch.tower[-1].out_channels == 8
    assert model.mask_branch.out_stride == 8 and model.mask_branch.strides == (8, 16, 32)
    assert model.max_proposals == 250 and model.sizes_of_interest == tuple(SIZES_OF_INTEREST)
    assert isinstance(model.head.reg_tower[1], torch.nn.GroupNorm)


def test_controller_reads_the_box_tower() -> None:
    model = narrow().eval()
    x = torch.rand(1, 3, 64, 96)
    outputs = model(x)
    levels = model.decoder(model.encoder(x))
    expected = torch.cat(
        [model.controller(model.head.reg_tower(p)).flatten(2).transpose(1, 2) for p in levels],
        dim=1,
    )
    torch.testing.assert_close(outputs["controller"], expected)


def test_masks_at_stride_take_the_pixel_at_offset_two() -> None:
    masks = torch.zeros(1, 9, 6, dtype=torch.bool)
    masks[0, 2, 2] = masks[0, 6, 5] = masks[0, 3, 3] = True
    # 9 x 6 pads to 12 x 8: 3 x 2 cells, cell (x, y) reads pixel (4x + 2, 4y + 2).
    sampled = masks_at_stride(masks, 4)
    assert sampled.dtype == torch.float32
    assert sampled[0].tolist() == [[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]
    masks[0, 6, 5] = False
    masks[0, 6, 2] = True
    assert masks_at_stride(masks, 4)[0].tolist() == [[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]]


def reference_mask_loss(model: CondInst, outputs, targets) -> torch.Tensor:
    """Every positive location's mask computed alone, from first principles: its assigned
    instance's mask sampled at pixels (4x + 2, 4y + 2), relative coordinates cell by cell, its
    head run as F.conv2d layers, its logits upsampled x2 (cell centres aligned), dice."""
    losses = []
    features, controller = outputs["mask_features"], outputs["controller"]
    h, w = features.shape[-2:]
    for i, target in enumerate(targets):
        made = fcos_targets(target, model.num_classes, outputs["points"], outputs["level"],
                            model.strides, model.size_ranges, model.center_radius)  # fmt: skip
        masks = target["masks"]
        height, width = masks.shape[-2:]
        gh, gw = math.ceil(height / 4), math.ceil(width / 4)
        for p in (made["index"] >= 0).nonzero()[:, 0].tolist():
            mask = masks[made["index"][p]]
            truth = torch.zeros(gh, gw)
            for y in range(gh):
                for x in range(gw):
                    if 4 * y + 2 < height and 4 * x + 2 < width:
                        truth[y, x] = float(mask[4 * y + 2, 4 * x + 2])
            px, py = outputs["points"][p].tolist()
            scale = SIZES_OF_INTEREST[int(outputs["level"][p])]
            coordinates = torch.zeros(2, h, w)
            for y in range(h):
                for x in range(w):
                    coordinates[0, y, x] = (px - (8 * x + 4)) / scale
                    coordinates[1, y, x] = (py - (8 * y + 4)) / scale
            inputs = torch.cat((coordinates, features[i]))[None]
            (head,) = heads_by_hand(controller[i, p][None], 10)
            logits = run_head(inputs, head)
            up = F.interpolate(logits, scale_factor=2, mode="bilinear", align_corners=False)
            up = up[..., :gh, :gw]
            up = F.pad(up, (0, gw - up.shape[-1], 0, gh - up.shape[-2]), mode="replicate")
            probability = up[0, 0].sigmoid()
            dice = 1 - (2 * (probability * truth).sum() + 1e-5) / (
                probability.square().sum() + truth.square().sum() + 1e-5
            )
            losses.append(dice)
    return torch.stack(losses).mean()


def test_mask_loss_matches_a_per_positive_reference() -> None:
    # 67 x 93 on VGG: mask features 8 x 11, x2 = 16 x 22 cells at stride 4, one row and two
    # columns short of the masks' 17 x 24: the edge cells are repeated.
    model = narrow(max_proposals=None)
    masks = rectangles(67, 93, (10, 6, 50, 40), (40, 30, 90, 66), (0, 0, 20, 20))
    masks[0, 20:30, 20:30] = False  # a hole: the mask is not its box
    targets = [instance_target(masks, [0, 2, 1], crowd=[0, 0, 1]), empty_target(67, 93)]
    outputs = model(torch.rand(2, 3, 67, 93))
    expected = reference_mask_loss(model, outputs, targets)
    torch.testing.assert_close(model.mask_loss(outputs, targets), expected)
    losses = model.loss(outputs, targets)
    assert set(losses) == {"loss", "cls", "box", "centerness", "mask"}
    parts = losses["cls"] + losses["box"] + losses["centerness"] + losses["mask"]
    torch.testing.assert_close(losses["loss"], parts)


def test_empty_images_keep_the_loss_finite_and_every_parameter_in_the_graph() -> None:
    model = narrow()
    images = torch.rand(2, 3, 64, 64)
    one = [instance_target(rectangles(64, 64, (8, 8, 40, 40)), [1]), empty_target(64, 64)]
    losses = model.loss(model(images), one)
    assert all(torch.isfinite(v) for v in losses.values())
    losses["loss"].backward()
    for part in (model.controller, model.mask_branch):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())
    model.zero_grad(set_to_none=True)
    none = [empty_target(64, 64), empty_target(64, 64)]
    losses = model.loss(model(images), none)
    assert losses["mask"].item() == 0 and torch.isfinite(losses["loss"])
    losses["loss"].backward()
    # DDP wants a gradient for every parameter, even when it is zero.
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_cap_bounds_the_masks_computed_reproducibly(monkeypatch: pytest.MonkeyPatch) -> None:
    model = narrow(max_proposals=3)
    computed: list[int] = []
    original = condinst_module.dynamic_mask_head

    def counting(features, params, *args):
        computed.append(len(features))
        return original(features, params, *args)

    monkeypatch.setattr(condinst_module, "dynamic_mask_head", counting)
    masks = rectangles(64, 64, (4, 4, 60, 60), (10, 10, 30, 30))
    targets = [instance_target(masks, [0, 1]), instance_target(masks[1:], [2])]
    outputs = model(torch.rand(2, 3, 64, 64))
    made = fcos_targets(targets[0], 3, outputs["points"], outputs["level"], model.strides,
                        model.size_ranges, model.center_radius)  # fmt: skip
    assert int((made["index"] >= 0).sum()) > 3
    torch.manual_seed(7)
    first = model.mask_loss(outputs, targets)
    assert computed == [3, 3]
    torch.manual_seed(7)
    torch.testing.assert_close(model.mask_loss(outputs, targets), first)
    positives = torch.arange(100)
    torch.manual_seed(1)
    picked = model.sample_positives(positives)
    assert len(picked.unique()) == 3
    torch.manual_seed(1)
    assert torch.equal(model.sample_positives(positives), picked)
    assert torch.equal(model.sample_positives(positives[:3]), positives[:3])


def test_decode_follows_the_instance_contract() -> None:
    model = narrow().eval()
    with torch.no_grad():
        outputs = model(torch.rand(2, 3, 67, 93))
    found = model.decode(outputs, (67, 93), score_threshold=0.0)
    fcos_found = FCOS.decode(model, outputs, (67, 93), score_threshold=0.0)
    for detections, boxes_only in zip(found, fcos_found, strict=True):
        for key in ("boxes", "scores", "labels", "locations"):
            assert torch.equal(detections[key], boxes_only[key])
        k = len(detections["scores"])
        assert k == 100
        masks = detections["masks"]
        assert masks.dtype == torch.float32 and masks.shape == (k, 17, 24)
        assert masks.min() >= 0 and masks.max() <= 1
        assert detections["labels"].dtype == torch.int64 and detections["boxes"].shape == (k, 4)
        assert paste_masks(masks, model.mask_stride, (67, 93)).shape == (k, 67, 93)
    (few, _) = model.decode(outputs, (67, 93), score_threshold=0.0, top_k=5)
    assert len(few["masks"]) == len(few["scores"]) == 5
    torch.testing.assert_close(few["masks"], found[0]["masks"][:5])
    (none, _) = model.decode(outputs, (67, 93), score_threshold=1.01)
    assert none["boxes"].shape == (0, 4) and none["masks"].shape == (0, 17, 24)
    assert paste_masks(none["masks"], 4, (67, 93), (134, 186)).shape == (0, 134, 186)


def test_overfits_one_image_and_finds_its_instances() -> None:
    torch.manual_seed(0)
    model = build_model("condinst", 2, **NARROW)
    image, masks = two_shapes()
    assert overfit(model, image, masks, steps=100) > 5  # the mask loss falls 5x
    model.eval()
    with torch.no_grad():
        (found,) = model.decode(model(image), (64, 64))
    pasted = paste_masks(found["masks"], model.mask_stride, (64, 64))
    iou = mask_iou(pasted, masks)
    for k in range(2):
        best = (found["labels"] == k).nonzero()[0, 0]  # the best-scored detection of class k
        assert iou[best, k] > 0.5, (k, iou[best])


def test_builder_config_and_task() -> None:
    assert model_task("condinst") == "instance"
    config = ModelConfig(
        name="condinst",
        num_classes=4,
        encoder="vgg16_bn",
        options={"encoder_options": {"width": 0.125}, "fpn_channels": 32, "max_proposals": 10,
                 "mask_channels": 4, "mask_head_channels": 6},
    )  # fmt: skip
    model = build_model_from_config(config)
    assert isinstance(model, CondInst) and model.max_proposals == 10
    # (4 + 2) x 6 + 6, 6 x 6 + 6, 6 + 1
    assert model.controller.out_channels == 42 + 42 + 7
    assert model.eval()(torch.rand(1, 3, 40, 40))["mask_features"].shape == (1, 4, 5, 5)
    bad = ModelConfig(name="condinst", num_classes=4, options={"mask_heads": 2})
    with pytest.raises(ValueError, match=r"^model: .*mask_heads"):
        build_model_from_config(bad)
    with pytest.raises(ValueError, match="max_proposals must be >= 1 or None, got 0"):
        narrow(max_proposals=0)


def test_targets_without_masks_are_refused() -> None:
    model = narrow()
    outputs = model(torch.rand(1, 3, 64, 64))
    target = instance_target(rectangles(64, 64, (4, 4, 20, 20)), [0])
    with pytest.raises(KeyError, match="target 0 needs 'masks'"):
        model.loss(outputs, [{k: v for k, v in target.items() if k != "masks"}])
    with pytest.raises(ValueError, match=r"masks of shape \(2, 64, 64\) for 1 labels"):
        model.loss(outputs, [target | {"masks": target["masks"].expand(2, -1, -1)}])


def test_frozen_encoder_leaves_pyramid_heads_controller_and_mask_branch_training() -> None:
    model = freeze_encoder(narrow())
    trainable = {name.split(".")[0] for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"decoder", "head", "controller", "mask_branch"}
    assert not any(p.requires_grad for p in model.encoder.parameters())
    groups = {g["name"]: {id(p) for p in g["params"]} for g in param_groups(model)}
    encoder = {id(p) for p in model.encoder.parameters()}
    assert groups["encoder"] | groups["encoder_no_decay"] == encoder
    rest = {id(p) for m in (model.controller, model.mask_branch) for p in m.parameters()}
    assert rest <= groups["decoder"] | groups["decoder_no_decay"]
    target = instance_target(rectangles(64, 64, (8, 8, 40, 40)), [1])
    model.loss(model(torch.rand(1, 3, 64, 64)), [target])["loss"].backward()
    assert all(p.grad is None for p in model.encoder.parameters())
    assert all(p.grad is not None for p in model.mask_branch.parameters())
    assert all(p.grad is not None for p in model.controller.parameters())
