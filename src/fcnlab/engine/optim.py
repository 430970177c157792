"""Optimisers and learning-rate schedules for one stage.

Parameters are split four ways by :func:`fcnlab.models.freeze.param_groups`: encoder or decoder
(the encoder's learning rate is multiplied by the stage's ``encoder_lr_mult``) and decayed or not
(weight decay is not applied to norms and biases). Schedules are per optimiser step with a
linear warmup from ``warmup_factor * lr`` to ``lr``.
"""

from __future__ import annotations

import bisect
import math

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from fcnlab.config import StageConfig, TrainConfig
from fcnlab.models.freeze import param_groups


def build_optimizer(
    model: nn.Module, stage: StageConfig, train: TrainConfig
) -> torch.optim.Optimizer:
    """A fresh SGD (momentum) or AdamW optimiser over ``model``'s trainable parameters."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError(f"stage {stage.name!r} has no trainable parameters (is all frozen?)")
    # Frozen parameters stay in the groups: they get no gradient, so the optimiser skips them.
    groups = param_groups(
        model, stage.encoder_lr_mult, lr=stage.lr, weight_decay=train.weight_decay
    )
    if train.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=stage.lr, momentum=train.momentum, nesterov=train.nesterov
        )
    return torch.optim.AdamW(groups, lr=stage.lr, betas=(train.betas[0], train.betas[1]))


def lr_factor(step: int, total_steps: int, train: TrainConfig) -> float:
    """The multiplier on the base learning rate before optimiser step ``step`` (0-based).

    Warmup rises linearly from ``warmup_factor`` to 1 over ``warmup_steps``; then ``poly`` is
    ``(1 - t)^power``, ``cosine`` goes from 1 to ``min_lr_factor``, ``step`` multiplies by
    ``gamma`` at each of ``milestones`` (when set) or every ``step_size`` steps, ``constant``
    stays at 1, with ``t`` the fraction of the stage done.
    """
    if step < train.warmup_steps:
        alpha = step / train.warmup_steps
        return train.warmup_factor * (1 - alpha) + alpha
    t = min(step / max(total_steps, 1), 1.0)
    if train.schedule == "poly":
        return (1 - t) ** train.poly_power
    if train.schedule == "cosine":
        return train.min_lr_factor + (1 - train.min_lr_factor) * 0.5 * (1 + math.cos(math.pi * t))
    if train.schedule == "step":
        drops = (
            step // train.step_size
            if train.milestones is None
            else bisect.bisect_right(train.milestones, step)
        )
        return train.gamma**drops
    return 1.0


def build_schedule(
    optimizer: torch.optim.Optimizer, total_steps: int, train: TrainConfig
) -> LambdaLR:
    """A per-step :class:`LambdaLR` following :func:`lr_factor` over a stage of ``total_steps``."""
    return LambdaLR(optimizer, lambda step: lr_factor(step, total_steps, train))
