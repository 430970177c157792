"""The training engine: staged training, evaluation, checkpoints, distribution and run folders.

``train(config)`` runs a whole recipe and returns a :class:`TrainResult` with each stage's
evaluations; :class:`Trainer` is the same with the pieces (model, data sets, loss) passed in.
"""

from __future__ import annotations

from fcnlab.engine.evaluate import EvalResult, evaluate, predict
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
    "EvalResult",
    "NonFiniteLossError",
    "RunLog",
    "StageResult",
    "TrainResult",
    "TrainState",
    "Trainer",
    "TrainingInterrupted",
    "evaluate",
    "load_checkpoint",
    "load_model_weights",
    "load_weights",
    "predict",
    "read_metrics",
    "save_checkpoint",
    "save_safetensors",
    "train",
]
