"""Stages: the lecture's recipe (train the decoder on a frozen encoder, then fine-tune) as data.

A frozen stage uses :func:`fcnlab.models.freeze.freeze_encoder`: no gradients for
``model.encoder`` and its batch-norm statistics fixed even under ``model.train()`` (they are part
of what the pretrained encoder learnt). A trainable stage unfreezes it again.
"""

from __future__ import annotations

from torch import nn

from fcnlab.config import StageConfig
from fcnlab.models.freeze import freeze_encoder, unfreeze_encoder


def apply_stage(model: nn.Module, stage: StageConfig) -> None:
    """Freeze or unfreeze ``model.encoder`` as ``stage.encoder`` says."""
    if stage.encoder == "frozen":
        freeze_encoder(model)
    elif hasattr(model, "encoder"):
        unfreeze_encoder(model)


def stage_steps(stage: StageConfig, steps_per_epoch: int) -> int:
    """The stage's length in optimiser steps."""
    if stage.iterations is not None:
        return stage.iterations
    assert stage.epochs is not None
    return stage.epochs * steps_per_epoch


def describe_stage(index: int, count: int, stage: StageConfig, steps: int) -> str:
    """One log line naming the stage: ``stage 1/2 'decoder': encoder frozen, lr 0.01, 40 steps``."""
    lrs = f"lr {stage.lr:g}"
    if stage.encoder == "trainable" and stage.encoder_lr_mult != 1.0:
        lrs += f" (encoder x{stage.encoder_lr_mult:g})"
    return (
        f"stage {index + 1}/{count} {stage.name!r}: encoder {stage.encoder}, {lrs}, {steps} steps"
    )
