from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from fcnlab.tasks.segmentation.losses import (
    LOSSES,
    CombinedLoss,
    CrossEntropyLoss,
    DiceLoss,
    build_loss,
    cross_entropy,
    focal_loss,
    soft_dice_loss,
)

LN3 = math.log(3.0)
# Hand-worked 2-class, 2x2 image: softmax gives p = (1/4, 3/4), (3/4, 1/4), (1/2, 1/2) at the first
# three pixels; the fourth is ignored and its logits are arbitrary.
HAND_LOGITS = torch.tensor([[[[0.0, LN3], [0.0, 9.0]], [[LN3, 0.0], [0.0, -4.0]]]])
HAND_TARGET = torch.tensor([[[1, 0], [1, 255]]])


def random_batch(seed: int = 0, k: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, k, 5, 6, generator=gen)
    target = torch.randint(0, k, (2, 5, 6), generator=gen)
    target[torch.rand(target.shape, generator=gen) < 0.3] = 255
    return logits, target


WEIGHTS = torch.tensor([0.5, 2.0, 1.0, 3.0])


@pytest.mark.parametrize("weight", [None, WEIGHTS])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_matches_torch(weight: torch.Tensor | None, reduction: str) -> None:
    logits, target = random_batch()
    expected = F.cross_entropy(logits, target, weight=weight, ignore_index=255, reduction=reduction)
    torch.testing.assert_close(cross_entropy(logits, target, weight, reduction=reduction), expected)
    module = CrossEntropyLoss(weight, reduction=reduction)
    torch.testing.assert_close(module(logits, target), expected)


def test_cross_entropy_of_all_ignored_pixels_is_zero_not_nan() -> None:
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    loss = cross_entropy(logits, torch.full((1, 2, 2), 255))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(logits.grad, torch.zeros_like(logits))


@pytest.mark.parametrize("alpha", [None, WEIGHTS])
def test_focal_with_gamma_zero_is_cross_entropy(alpha: torch.Tensor | None) -> None:
    logits, target = random_batch(1)
    for reduction in ("mean", "sum", "none"):
        torch.testing.assert_close(
            focal_loss(logits, target, gamma=0.0, alpha=alpha, reduction=reduction),
            F.cross_entropy(logits, target, weight=alpha, ignore_index=255, reduction=reduction),
        )


def test_focal_hand_worked() -> None:
    # p_t = 3/4, 3/4, 1/2 at the three counted pixels.
    pixel = [(1 / 4) ** 2 * -math.log(3 / 4)] * 2 + [(1 / 2) ** 2 * -math.log(1 / 2)]
    assert focal_loss(HAND_LOGITS, HAND_TARGET, gamma=2.0).item() == pytest.approx(sum(pixel) / 3)
    alpha = [2.0, 1.0]  # targets 1, 0, 1 -> alpha_t 1, 2, 1; the mean divides by their sum
    weighted = pixel[0] + 2 * pixel[1] + pixel[2]
    assert focal_loss(HAND_LOGITS, HAND_TARGET, 2.0, alpha).item() == pytest.approx(weighted / 4)


def test_soft_dice_hand_worked() -> None:
    # class 0: overlap 3/4, sum p 3/2, one pixel; class 1: overlap 5/4, sum p 3/2, two pixels.
    no_smooth = 1 - ((2 * 0.75) / (1.5 + 1) + (2 * 1.25) / (1.5 + 2)) / 2
    assert soft_dice_loss(HAND_LOGITS, HAND_TARGET, smooth=0.0).item() == pytest.approx(12 / 35)
    assert no_smooth == pytest.approx(12 / 35)
    smoothed = 1 - ((2 * 0.75 + 1) / (2.5 + 1) + (2 * 1.25 + 1) / (3.5 + 1)) / 2
    assert DiceLoss()(HAND_LOGITS, HAND_TARGET).item() == pytest.approx(smoothed)
    weighted = 1 - (3 * (1.5 / 2.5) + 1 * (2.5 / 3.5)) / 4
    dice = soft_dice_loss(HAND_LOGITS, HAND_TARGET, weight=[3.0, 1.0], smooth=0.0)
    assert dice.item() == pytest.approx(weighted)


def test_perfect_prediction_has_zero_dice_loss() -> None:
    target = torch.tensor([[[0, 1], [2, 2]]])
    logits = 50 * F.one_hot(target, 3).movedim(-1, 1).float()
    assert soft_dice_loss(logits, target, smooth=0.0).item() == pytest.approx(0.0, abs=1e-6)


LOSS_FUNCTIONS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "ce": lambda x, t: cross_entropy(x, t, WEIGHTS),
    "ce_sum": lambda x, t: cross_entropy(x, t, reduction="sum"),
    "focal": lambda x, t: focal_loss(x, t, gamma=2.0, alpha=WEIGHTS),
    "dice": lambda x, t: soft_dice_loss(x, t, WEIGHTS),
    "combined": lambda x, t: build_loss({"ce": 1.0, "dice": 0.5, "focal": 0.25})(x, t),
}


@pytest.mark.parametrize("name", sorted(LOSS_FUNCTIONS))
def test_ignored_pixels_change_neither_loss_nor_gradient(name: str) -> None:
    loss_fn = LOSS_FUNCTIONS[name]
    logits, target = random_batch(2)
    ignored = (target == 255).unsqueeze(1).expand_as(logits)
    assert ignored.any() and not ignored.all()
    perturbed = logits + 10 * torch.randn(logits.shape) * ignored
    results = []
    for x in (logits, perturbed):
        x = x.clone().requires_grad_(True)
        loss = loss_fn(x, target)
        loss.backward()
        results.append((loss.detach(), x.grad))
    torch.testing.assert_close(results[0][0], results[1][0])
    for _, grad in results:
        assert torch.count_nonzero(grad[ignored]) == 0
        assert torch.count_nonzero(grad[~ignored]) > 0


def test_combined_loss_weights_terms_and_auxiliary_outputs() -> None:
    logits, target = random_batch(3)
    aux = torch.randn(2, 4, 3, 3)  # lower resolution: resized to the target
    loss = build_loss({"ce": 1.0, "dice": {"weight": 0.5, "smooth": 0.0}}, aux_weight=0.4)
    ce, dice = cross_entropy(logits, target), soft_dice_loss(logits, target, smooth=0.0)
    torch.testing.assert_close(loss(logits, target), ce + 0.5 * dice)

    aux_up = F.interpolate(aux, size=(5, 6), mode="bilinear", align_corners=False)
    aux_total = cross_entropy(aux_up, target) + 0.5 * soft_dice_loss(aux_up, target, smooth=0.0)
    parts = loss.components({"out": logits, "aux": aux}, target)
    assert sorted(parts) == ["aux/ce", "aux/dice", "ce", "dice"]
    torch.testing.assert_close(
        loss({"out": logits, "aux": aux}, target), ce + 0.5 * dice + 0.4 * aux_total
    )
    no_aux = build_loss("ce", aux_weight=0.0)
    torch.testing.assert_close(no_aux({"out": logits, "aux": aux}, target), ce)


def test_class_weights_reach_every_term_and_follow_the_module() -> None:
    logits, target = random_batch(4)
    loss = build_loss({"ce": 1.0, "focal": {"weight": 1.0, "gamma": 0.0}}, class_weights=WEIGHTS)
    expected = 2 * F.cross_entropy(logits, target, weight=WEIGHTS, ignore_index=255)
    torch.testing.assert_close(loss(logits, target), expected)
    assert isinstance(loss, CombinedLoss)
    assert torch.equal(loss.state_dict()["terms.ce.weight"], WEIGHTS)
    assert loss.to(torch.float64).terms["ce"].weight.dtype == torch.float64


def test_classic_fcn_sum_reduction_from_spec() -> None:
    logits, target = random_batch(5)
    loss = build_loss({"ce": {"reduction": "sum"}})
    expected = F.cross_entropy(logits, target, ignore_index=255, reduction="sum")
    torch.testing.assert_close(loss(logits, target), expected)


def test_bad_inputs_are_clear_errors() -> None:
    logits, target = random_batch()
    assert LOSSES.names() == ["ce", "dice", "focal"]
    with pytest.raises(KeyError, match="unknown loss 'lovasz'; known: ce, dice, focal"):
        build_loss({"lovasz": 1.0})
    with pytest.raises(ValueError, match="loss 'focal' got options"):
        build_loss({"focal": {"gama": 2.0}})
    with pytest.raises(ValueError, match="loss 'ce' has weight 'x'"):
        build_loss({"ce": "x"})
    with pytest.raises(ValueError, match="reduction must be one of mean, sum, none"):
        CrossEntropyLoss(reduction="avg")
    with pytest.raises(ValueError, match=r"class weights have shape \(3,\) but the logits have 4"):
        cross_entropy(logits, target, weight=[1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="differ in batch or spatial size"):
        soft_dice_loss(logits, target[:, :4])
    with pytest.raises(ValueError, match="target has values 4, 9 outside the classes"):
        focal_loss(logits, target.clamp(max=4).index_fill(2, torch.tensor([0]), 9))
    with pytest.raises(ValueError, match="expected 'out' and optional 'aux'"):
        build_loss()({"logits": logits}, target)
