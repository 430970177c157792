"""What training, evaluation, inference and export share, below all of them: numeric precision,
processes, checkpoints, run folders and JSON records. Nothing here knows about tasks."""

from __future__ import annotations

from fcnlab.runtime.checkpoint import (
    CheckpointError,
    DiskFullError,
    atomic_write,
    load_checkpoint,
    load_model_weights,
    load_weights,
    read_safetensors,
    read_torch_file,
    save_checkpoint,
    save_safetensors,
    state_dict_differences,
)
from fcnlab.runtime.precision import autocast, main_output, model_device, model_input
from fcnlab.runtime.records import json_safe, nan_for_none
from fcnlab.runtime.run_dir import RunLog, read_metrics

__all__ = [
    "CheckpointError",
    "DiskFullError",
    "RunLog",
    "atomic_write",
    "autocast",
    "json_safe",
    "load_checkpoint",
    "load_model_weights",
    "load_weights",
    "main_output",
    "model_device",
    "model_input",
    "nan_for_none",
    "read_metrics",
    "read_safetensors",
    "read_torch_file",
    "save_checkpoint",
    "save_safetensors",
    "state_dict_differences",
]
