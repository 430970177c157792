"""Checkpoints: atomic writes, ``weights_only`` loads with clear errors, RNG states, weight files.

A checkpoint is a dict of tensors, dicts, lists and plain values only, so ``torch.load(...,
weights_only=True)`` reads it without unpickling arbitrary objects::

    {"format": "fcnlab-checkpoint", "version": 1, "reason": "epoch" | "stage" | "interrupted",
     "model": state_dict, "optimizer": ..., "scheduler": ..., "scaler": ...,
     "state": {stage, step, data_epoch, position, ...}, "rng": [per-rank RNG states],
     "config": {...}}
"""

from __future__ import annotations

import os
import pickle
import random
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

FORMAT = "fcnlab-checkpoint"
VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit the model; the message says why."""


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some platforms cannot open directories; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Any) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it, rename it to ``path``.

    A crash at any moment leaves either the old file or the new one, never a torn file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return path


def save_checkpoint(path: str | Path, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` (plus the format marker) atomically to ``path``."""
    data = {"format": FORMAT, "version": VERSION, **payload}
    return atomic_write(path, lambda file: torch.save(data, file))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read an fcnlab checkpoint with ``weights_only=True``; raise :class:`CheckpointError`
    naming the file when it is missing, corrupt, not a checkpoint or of another version."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"checkpoint {str(path)!r} cannot be read: it is corrupt, truncated or holds objects "
            f"other than tensors and plain data ({first_line})"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        keys = sorted(data)[:8] if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(
            f"{str(path)!r} is not an fcnlab checkpoint (expected a dict with "
            f"format={FORMAT!r}; found {keys})"
        )
    if data.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has version {data.get('version')!r}; this fcnlab reads "
            f"version {VERSION}"
        )
    return data


def rng_state() -> dict[str, Any]:
    """The torch (CPU and CUDA), NumPy and Python RNG states as tensors, lists and numbers."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)  # type: ignore[misc]
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    numpy = state["numpy"]
    keys = numpy["keys"].numpy().astype(np.uint32)
    np.random.set_state(
        (numpy["kind"], keys, numpy["pos"], numpy["has_gauss"], numpy["gauss"])  # type: ignore[arg-type]
    )
    python = state["python"]
    random.setstate((python["version"], tuple(python["internal"]), python["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_safetensors(model: nn.Module, path: str | Path) -> Path:
    """Write ``model``'s weights as ``.safetensors`` atomically (shared tensors handled)."""
    from safetensors.torch import save_model

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_model(model, tmp)
        with open(tmp, "rb") as file:
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A model state dict from a ``.safetensors`` file or an fcnlab checkpoint."""
    path = Path(path)
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise CheckpointError(f"weights file {str(path)!r} does not exist")
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except SafetensorError as error:
            message = f"{str(path)!r} is not a readable .safetensors file ({error})"
            raise CheckpointError(message) from None
    return load_checkpoint(path)["model"]


def load_matching(model: nn.Module, weights: Mapping[str, torch.Tensor], source: str) -> list[str]:
    """Copy every tensor of ``weights`` whose name and shape match ``model``; return the names
    of ``model``'s entries left as they were. FCN-16s starts from FCN-32s this way."""
    own = model.state_dict()
    matching = {k: v for k, v in weights.items() if k in own and own[k].shape == v.shape}
    if not matching:
        raise CheckpointError(
            f"no tensor in {source!r} matches the model by name and shape "
            f"(model has e.g. {sorted(own)[:3]}, file has e.g. {sorted(weights)[:3]})"
        )
    model.load_state_dict(matching, strict=False)
    return sorted(set(own) - set(matching))


def load_model_weights(model: nn.Module, path: str | Path) -> None:
    """Load all of ``model``'s weights from ``path`` strictly; mismatches name the file."""
    weights = load_weights(path)
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        summary = str(error).strip().splitlines()
        raise CheckpointError(
            f"weights in {str(path)!r} do not fit the model: {' '.join(summary[:3])}"
        ) from None
