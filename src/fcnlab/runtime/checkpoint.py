"""Checkpoints: atomic writes, ``weights_only`` loads with clear errors, RNG states, weight files.

A checkpoint is a dict of tensors, dicts, lists and plain values only, so ``torch.load(...,
weights_only=True)`` reads it without unpickling arbitrary objects::

    {"format": "fcnlab-checkpoint", "version": 1, "reason": "epoch" | "stage" | "interrupted",
     "model": state_dict, "optimizer": ..., "scheduler": ..., "scaler": ...,
     "state": {stage, step, data_epoch, position, ...}, "rng": [per-rank RNG states],
     "config": {...}}
"""

from __future__ import annotations

import errno
import os
import pickle
import random
import re
import secrets
import stat
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

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


class DiskFullError(OSError):
    """A file could not be written because its disk is full; the message names the file."""

    def __str__(self) -> str:
        return str(self.strerror)


# errno values that mean "the disk (or the user's quota on it) is full".
FULL = (errno.ENOSPC, errno.EDQUOT)
# How safetensors' Rust writer reports an OS error: "I/O error: ... (os error 28)".
RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def _disk_full(error: BaseException) -> bool:
    """Whether ``error`` or an error it hides is ENOSPC/EDQUOT. ``torch.save`` reports a failed
    write as "unexpected pos 941824 vs 941712" with the OSError only as its context."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in FULL:
            return True
        code = RUST_OS_ERROR.search(str(seen))
        if code and int(code[1]) in FULL:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _open_temporary(path: Path) -> tuple[IO[bytes], Path]:
    """A new file ``.NAME.RANDOM.tmp`` beside ``path``, created with the mode every new file gets
    (0666 less the umask; ``tempfile.mkstemp`` would make it 0600 whatever the umask)."""
    while True:
        temporary = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return open(temporary, "xb"), temporary
        except FileExistsError:
            continue


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it, rename it to ``path``.

    A crash at any moment leaves either the old file or the new one, never a torn file (a kill
    may leave the temporary ``.NAME.*.tmp``; :func:`fcnlab.runtime.run_dir.remove_orphans`
    clears them). ``file.name`` is the temporary's path, for writers that take a file name. The
    file gets the umask's mode. A full disk raises :class:`DiskFullError` naming ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary: Path | None = None
    try:
        file, temporary = _open_temporary(path)
        with file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
        if isinstance(error, Exception) and _disk_full(error):
            kept = f"; the previous {path.name} is left as it was" if path.exists() else ""
            raise DiskFullError(
                errno.ENOSPC,
                f"cannot write '{path}': no space left on device; free some space or set "
                f"output.root to a folder on another disk{kept}",
            ) from None
        raise
    _fsync_directory(path.parent)
    return path


def save_checkpoint(path: str | Path, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` (plus the format marker) atomically to ``path``."""
    data = {"format": FORMAT, "version": VERSION, **payload}
    return atomic_write(path, lambda file: torch.save(data, file))


# The first bytes of what ``torch.save`` writes: a zip archive (since PyTorch 1.6) or a pickle
# (protocol 2 and later start with the PROTO opcode 0x80).
TORCH_FILE_STARTS = (b"PK\x03\x04", b"\x80")
# How ``torch.load(weights_only=True)`` names the object it refused.
REFUSED_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def read_torch_file(
    path: str | Path, what: str = "checkpoint", map_location: str | torch.device = "cpu"
) -> Any:
    """``torch.load(path, weights_only=True)``; a :class:`CheckpointError` that names the file
    (as ``what 'path'``) and says why when it is missing, empty, not written by ``torch.save``,
    truncated, or holds objects other than tensors and plain data (which are never unpickled)."""
    path = Path(path)
    name = f"{what} '{path}'"
    if not path.is_file():
        raise CheckpointError(f"{name} does not exist")
    with path.open("rb") as file:
        start = file.read(16)
    if not start:
        raise CheckpointError(f"{name} is empty (0 bytes); it was not written completely")
    if not start.startswith(TORCH_FILE_STARTS):
        raise CheckpointError(
            f"{name} is not a PyTorch checkpoint: torch.save writes a zip archive or a pickle, "
            f"and this file starts with {start[:12]!r}"
        )
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError,
            KeyError) as error:  # fmt: skip
        refused = REFUSED_GLOBAL.search(str(error))
        if isinstance(error, pickle.UnpicklingError) and refused:
            raise CheckpointError(
                f"{name} holds Python objects ({refused[1]}) besides tensors and plain data; "
                "fcnlab loads only those, so that a file cannot run code: save the model's "
                "state_dict() instead"
            ) from None
        raise CheckpointError(
            f"{name} cannot be read: it is corrupt or truncated ({_load_detail(error)})"
        ) from None


def _load_detail(error: BaseException) -> str:
    """The sentence of a loading error that says what is wrong (PyTorch adds paragraphs of
    advice): for a weights-only refusal the unpickler's own line, never the advice to load the
    file unsafely."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    for line in lines:
        if line.startswith("WeightsUnpickler error:"):
            return line.removeprefix("WeightsUnpickler error:").strip()
    if not lines or "weights_only" in lines[0] or "Weights only" in lines[0]:
        return type(error).__name__
    return lines[0].split(". ")[0].rstrip(".")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read an fcnlab checkpoint with ``weights_only=True``; raise :class:`CheckpointError`
    naming the file when it is missing, corrupt, not a checkpoint or of another version."""
    data = read_torch_file(path, "checkpoint", map_location)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        keys = sorted(data)[:8] if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(
            f"'{path}' is not an fcnlab checkpoint (expected a dict with "
            f"format={FORMAT!r}; found {keys})"
        )
    if data.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint '{path}' has version {data.get('version')!r}; this fcnlab reads "
            f"version {VERSION}"
        )
    return data


def rng_state() -> dict[str, Any]:
    """The torch (CPU and CUDA), NumPy and Python RNG states as tensors, lists and numbers.

    CUDA's only where this process has started CUDA: a run on the CPU draws nothing from it,
    and a process forked from one that used CUDA (a test session, a notebook) cannot start it
    again."""
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
    if torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (CUDA's where this process has started CUDA, as
    a run on a GPU has by the time it resumes)."""
    torch.set_rng_state(state["torch"])
    numpy = state["numpy"]
    keys = numpy["keys"].numpy().astype(np.uint32)
    np.random.set_state(
        (numpy["kind"], keys, numpy["pos"], numpy["has_gauss"], numpy["gauss"])  # type: ignore[arg-type]
    )
    python = state["python"]
    random.setstate((python["version"], tuple(python["internal"]), python["gauss_next"]))
    if "cuda" in state and torch.cuda.is_initialized():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_safetensors(model: nn.Module, path: str | Path) -> Path:
    """Write ``model``'s weights as ``.safetensors`` atomically (shared tensors handled)."""
    from safetensors.torch import save_model

    def write(file: IO[bytes]) -> None:
        mode = stat.S_IMODE(os.fstat(file.fileno()).st_mode)  # the umask's, from its creation
        # safetensors replaces the file by one of its own, made mode 0600 whatever the umask.
        save_model(model, file.name)
        os.chmod(file.name, mode)
        with open(file.name, "rb") as written:
            os.fsync(written.fileno())

    return atomic_write(path, write)


def read_safetensors(path: str | Path, what: str = "weights file") -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file (on the CPU); a :class:`CheckpointError` naming the
    file when it is missing or not readable."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} '{path}' does not exist")
    try:
        return load_file(path, device="cpu")
    except SafetensorError as error:
        raise CheckpointError(
            f"{what} '{path}' is not a readable .safetensors file ({_load_detail(error)})"
        ) from None


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A model state dict from a ``.safetensors`` file or an fcnlab checkpoint."""
    if Path(path).suffix == ".safetensors":
        return read_safetensors(path)
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


MAX_LISTED = 10


def listing(items: Iterable[str]) -> str:
    """The first ten ``items`` joined by commas, then how many more there are."""
    items = list(items)
    shown = ", ".join(items[:MAX_LISTED])
    if len(items) > MAX_LISTED:
        shown += f" and {len(items) - MAX_LISTED} more"
    return shown


def state_dict_differences(
    own: Mapping[str, torch.Tensor],
    given: Mapping[str, torch.Tensor],
    where: str = "the weights",
    may_miss: Callable[[str], bool] = lambda key: False,
) -> list[str]:
    """What keeps ``given`` from loading strictly into a model whose state dict is ``own``: the
    missing and unexpected keys and the shape mismatches, each counted and listed (the first
    ten). ``where`` names ``given`` in a mismatch; keys for which ``may_miss`` is true may be
    absent. Empty when it fits."""
    missing = [k for k in own if k not in given and not may_miss(k)]
    unexpected = [k for k in given if k not in own]
    mismatched = [
        f"{k} is {tuple(given[k].shape)} in {where} but {tuple(own[k].shape)} in the model"
        for k in own
        if k in given and given[k].shape != own[k].shape
    ]
    return [
        f"{label} ({len(items)}): {listing(items)}"
        for label, items in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", mismatched),
        )
        if items
    ]


def load_state_strictly(
    model: nn.Module, weights: Mapping[str, torch.Tensor], source: str, where: str
) -> None:
    """``model.load_state_dict(weights)``; a :class:`CheckpointError` that names ``source`` and
    lists every kind of difference (see :func:`state_dict_differences`) when they do not fit."""
    problems = state_dict_differences(model.state_dict(), weights, where)
    if problems:
        raise CheckpointError(
            f"{source} does not fit {type(model).__name__}: " + "; ".join(problems)
        )
    model.load_state_dict(weights)


def load_model_weights(model: nn.Module, path: str | Path) -> None:
    """Load all of ``model``'s weights from ``path`` strictly; mismatches name the file."""
    load_state_strictly(model, load_weights(path), f"weights file '{path}'", "the file")
