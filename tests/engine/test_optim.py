from __future__ import annotations

import pytest
import torch
from helpers.tinyseg import TinySegmenter

from fcnlab.config import ConfigError, StageConfig, TrainConfig
from fcnlab.engine.optim import build_optimizer, build_schedule, lr_factor


def test_lr_factor_hand_worked_values() -> None:
    poly = TrainConfig(schedule="poly", poly_power=2.0, warmup_steps=4, warmup_factor=0.2)
    # warmup: 0.2 -> 1 linearly over 4 steps
    assert [lr_factor(s, 100, poly) for s in range(4)] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert lr_factor(50, 100, poly) == pytest.approx(0.25)  # (1 - 0.5)^2
    cosine = TrainConfig(schedule="cosine", min_lr_factor=0.1)
    assert lr_factor(0, 10, cosine) == pytest.approx(1.0)
    assert lr_factor(5, 10, cosine) == pytest.approx(0.55)
    assert lr_factor(10, 10, cosine) == pytest.approx(0.1)
    step = TrainConfig(schedule="step", step_size=3, gamma=0.5)
    assert [lr_factor(s, 10, step) for s in (0, 2, 3, 6)] == [1.0, 1.0, 0.5, 0.25]
    assert lr_factor(7, 10, TrainConfig(schedule="constant")) == 1.0
    # FCOS's 1x schedule, scaled: drops at steps 6 and 8 of 9.
    multistep = TrainConfig(schedule="step", milestones=[6, 8], gamma=0.1)
    factors = [lr_factor(s, 9, multistep) for s in range(9)]
    assert factors == pytest.approx([1.0] * 6 + [0.1, 0.1, 0.01])


def test_milestones_must_increase() -> None:
    with pytest.raises(ConfigError, match=r"^milestones = \[8, 6\] must be increasing"):
        TrainConfig(schedule="step", milestones=[8, 6])


def test_schedule_drives_the_optimiser_per_step() -> None:
    model = TinySegmenter()
    train = TrainConfig(schedule="poly", poly_power=1.0)
    optimizer = build_optimizer(model, StageConfig(iterations=4, lr=0.8), train)
    schedule = build_schedule(optimizer, 4, train)
    seen = []
    for _ in range(4):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert seen == pytest.approx([0.8, 0.6, 0.4, 0.2])


def test_groups_encoder_multiplier_and_no_decay_for_norms_and_biases() -> None:
    model = TinySegmenter()
    stage = StageConfig(iterations=1, lr=0.1, encoder_lr_mult=0.01)
    optimizer = build_optimizer(model, stage, TrainConfig(weight_decay=0.5, optimizer="sgd"))
    by_id = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    conv, norm = model.encoder[0], model.encoder[1]
    assert by_id[id(conv.weight)]["lr"] == pytest.approx(0.001)
    assert by_id[id(conv.weight)]["weight_decay"] == 0.5
    for p in (conv.bias, norm.weight, norm.bias, model.decoder.bias):
        assert by_id[id(p)]["weight_decay"] == 0.0
    assert by_id[id(model.decoder.weight)]["lr"] == pytest.approx(0.1)
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["momentum"] == 0.9


def test_adamw_step_matches_torch_adamw_on_one_parameter() -> None:
    torch.manual_seed(0)
    ours, reference = TinySegmenter(), TinySegmenter()
    reference.load_state_dict(ours.state_dict())
    train = TrainConfig(optimizer="adamw", weight_decay=0.1, betas=[0.8, 0.9])
    optimizer = build_optimizer(ours, StageConfig(iterations=1, lr=0.01), train)
    expected = torch.optim.AdamW(
        [reference.decoder.weight], lr=0.01, betas=(0.8, 0.9), weight_decay=0.1
    )
    x = torch.rand(2, 3, 8, 8)
    for model, opt in ((ours, optimizer), (reference, expected)):
        model(x).square().mean().backward()
        opt.step()
    assert torch.allclose(ours.decoder.weight, reference.decoder.weight, atol=0, rtol=0)
