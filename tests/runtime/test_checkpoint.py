from __future__ import annotations

import errno
import os
import random
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.full_disk import on_a_full_disk
from helpers.tinyseg import TinySegmenter

from fcnlab.runtime.checkpoint import (
    CheckpointError,
    DiskFullError,
    atomic_write,
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
    with pytest.raises(CheckpointError, match=r"unsafe.pt' holds Python objects \(pathlib\."):
        load_checkpoint(tmp_path / "unsafe.pt")
    with pytest.raises(CheckpointError, match=r"missing.pt' does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_a_text_file_named_pt_is_not_a_pytorch_checkpoint(tmp_path: Path) -> None:
    # torch.load alone says "error: 101" (a KeyError on the byte 'e' read as a pickle opcode).
    text = tmp_path / "notes.pt"
    text.write_text("epoch 3: loss 0.21\n")
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(text)
    assert str(error.value) == (
        f"checkpoint '{text}' is not a PyTorch checkpoint: torch.save writes a zip archive or a "
        "pickle, and this file starts with b'epoch 3: los'"
    )
    (tmp_path / "empty.pt").touch()
    with pytest.raises(CheckpointError, match=r"empty.pt' is empty \(0 bytes\)"):
        load_checkpoint(tmp_path / "empty.pt")


def test_no_message_suggests_loading_unsafely(tmp_path: Path) -> None:
    torch.save({"model": TinySegmenter()}, tmp_path / "module.pt")  # a pickled nn.Module
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(tmp_path / "module.pt")
    message = str(error.value)
    assert "TinySegmenter" in message and "\n" not in message
    assert "weights_only=False" not in message and "trust" not in message


def test_a_full_disk_names_the_file_and_keeps_the_previous_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save_checkpoint(tmp_path / "last.pt", {"n": 1})
    opened = on_a_full_disk(monkeypatch, room=2000)
    payload = {"model": TinySegmenter(width=64).state_dict(), "n": 2}
    with pytest.raises(DiskFullError) as error:
        save_checkpoint(path, payload)
    assert str(error.value) == (
        f"cannot write '{path}': no space left on device; free some space or set output.root "
        "to a folder on another disk; the previous last.pt is left as it was"
    )
    assert error.value.errno == errno.ENOSPC
    assert load_checkpoint(path)["n"] == 1
    assert opened and not opened[0].exists()  # the temporary is gone
    monkeypatch.undo()

    def full_rust_writer(model: object, name: str) -> None:
        from safetensors import SafetensorError

        # What safetensors' writer raises on a full disk.
        raise SafetensorError(
            "Error while serializing: I/O error: No space left on device (os error 28)"
        )

    monkeypatch.setattr("safetensors.torch.save_model", full_rust_writer)
    with pytest.raises(DiskFullError, match=r"final.safetensors': no space left on device; free"):
        save_safetensors(TinySegmenter(), tmp_path / "final.safetensors")
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_written_files_get_the_umask_mode_like_any_new_file(tmp_path: Path, umask: int) -> None:
    previous = os.umask(umask)
    try:
        reference = tmp_path / "reference"
        reference.write_bytes(b"")
        written = [
            save_checkpoint(tmp_path / "last.pt", {"n": 1}),
            save_safetensors(TinySegmenter(), tmp_path / "final.safetensors"),
            atomic_write(tmp_path / "metrics.json", lambda file: file.write(b"{}")),
        ]
    finally:
        os.umask(previous)
    expected = stat.S_IMODE(reference.stat().st_mode)
    assert expected == 0o666 & ~umask
    assert {path.name: stat.S_IMODE(path.stat().st_mode) for path in written} == {
        path.name: expected for path in written
    }


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
    with pytest.raises(CheckpointError) as error:
        load_model_weights(wider, path)
    assert str(error.value) == (
        f"weights file '{path}' does not fit TinySegmenter: shape mismatches (2): decoder.weight "
        "is (3, 4, 1, 1) in the file but (5, 4, 1, 1) in the model, decoder.bias is (3,) in the "
        "file but (5,) in the model"
    )
