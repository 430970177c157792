from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.tinyseg import TinySegmenter

from fcnlab.runtime.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_matching,
    load_model_weights,
    rng_state,
    save_checkpoint,
    save_safetensors,
    set_rng_state,
)


def test_round_trip_with_weights_only_and_no_temporary_left(tmp_path: Path) -> None:
    model = TinySegmenter()
    path = save_checkpoint(tmp_path / "c" / "last.pt", {"model": model.state_dict(), "n": 3})
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]
    torch.load(path, weights_only=True)  # readable by the safe loader itself
    data = load_checkpoint(path)
    assert data["n"] == 3 and data["format"] == "fcnlab-checkpoint"
    for key, value in model.state_dict().items():
        assert torch.equal(data["model"][key], value)


def test_corrupt_foreign_and_unsafe_files_give_clear_errors(tmp_path: Path) -> None:
    good = save_checkpoint(tmp_path / "good.pt", {"model": {}})
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:40])
    with pytest.raises(CheckpointError, match=r"truncated.pt' cannot be read: it is corrupt"):
        load_checkpoint(truncated)
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match=r"foreign.pt' is not an fcnlab checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    torch.save({"format": "fcnlab-checkpoint", "obj": Path("x")}, tmp_path / "unsafe.pt")
    with pytest.raises(CheckpointError, match=r"unsafe.pt' cannot be read"):
        load_checkpoint(tmp_path / "unsafe.pt")
    with pytest.raises(CheckpointError, match=r"missing.pt' does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_rng_state_restores_torch_numpy_and_python(tmp_path: Path) -> None:
    state = rng_state()
    path = save_checkpoint(tmp_path / "rng.pt", {"rng": state})
    first = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(load_checkpoint(path)["rng"])
    second = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], second[0])
    assert np.array_equal(first[1], second[1]) and first[2] == second[2]


def test_safetensors_and_matching_load(tmp_path: Path) -> None:
    source = TinySegmenter(num_classes=3)
    path = save_safetensors(source, tmp_path / "final.safetensors")
    target = TinySegmenter(num_classes=3)
    load_model_weights(target, path)
    assert torch.equal(target.decoder.weight, source.decoder.weight)
    wider = TinySegmenter(num_classes=5)  # decoder shapes differ: only the encoder matches
    untouched = load_matching(wider, source.state_dict(), "source")
    assert untouched == ["decoder.bias", "decoder.weight"]
    assert torch.equal(wider.encoder[0].weight, source.encoder[0].weight)
    with pytest.raises(CheckpointError, match=r"do not fit the model"):
        load_model_weights(wider, path)
