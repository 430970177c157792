"""The training engine: staged training with evaluation, resumable and distributed.

``train(config)`` runs a whole recipe and returns a :class:`TrainResult` with each stage's
evaluations; :class:`Trainer` is the same with the pieces (model, data sets, loss) passed in.
What differs between tasks comes from the model's task (:mod:`fcnlab.tasks`); checkpoints,
processes and run folders from :mod:`fcnlab.runtime` (re-exported here for convenience).
"""

from __future__ import annotations

from fcnlab.engine.trainer import (
    NonFiniteLossError,
    StageResult,
    Trainer,
    TrainingInterrupted,
    TrainResult,
    TrainState,
    train,
)
from fcnlab.runtime.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_model_weights,
    load_weights,
    save_checkpoint,
    save_safetensors,
)
from fcnlab.runtime.run_dir import RunLog, read_metrics

__all__ = [
    "CheckpointError",
    "NonFiniteLossError",
    "RunLog",
    "StageResult",
    "TrainResult",
    "TrainState",
    "Trainer",
    "TrainingInterrupted",
    "load_checkpoint",
    "load_model_weights",
    "load_weights",
    "read_metrics",
    "save_checkpoint",
    "save_safetensors",
    "train",
]
