"""Where the engine runs: ``train.device: auto`` picks CUDA when there is one (the local rank's
GPU), and its loaders pin batches for a GPU, class maps and instance targets alike."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers.devices import DEVICES
from helpers.instance_models import FixedInstances
from helpers.tinyseg import Squares, TinySegmenter, tiny_config, train_squares
from rich.console import Console

from fcnlab.data.shapes import Shapes
from fcnlab.engine import Trainer, TrainingInterrupted, load_checkpoint
from fcnlab.engine.trainer import _pick_device
from fcnlab.runtime.checkpoint import save_checkpoint
from fcnlab.runtime.distributed import DistInfo


@pytest.mark.parametrize("available", [False, True])
def test_auto_is_cuda_when_there_is_a_gpu_else_the_cpu(
    monkeypatch: pytest.MonkeyPatch, available: bool
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    expected = torch.device("cuda", 0) if available else torch.device("cpu")
    assert _pick_device("auto", DistInfo()) == expected


def test_cuda_is_the_local_ranks_gpu_unless_an_index_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    third = DistInfo(rank=5, world_size=8, local_rank=3)  # the 4th process on the 2nd machine
    assert _pick_device("auto", third) == torch.device("cuda", 3)
    assert _pick_device("cuda", third) == torch.device("cuda", 3)
    assert _pick_device("cuda:1", third) == torch.device("cuda", 1)
    assert _pick_device("cpu", third) == torch.device("cpu")


def test_a_trainer_on_auto_takes_the_gpu_when_there_is_one(tmp_path: Path) -> None:
    trainer = Trainer(
        tiny_config(tmp_path, device="auto"),
        model=TinySegmenter(),
        train_set=Squares(4),
        val_set=Squares(2),
        console=Console(quiet=True),
    )
    trainer.close()
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert trainer.device.type == expected
    assert {p.device.type for p in trainer.model.parameters()} == {expected}


def tensors(value: Any) -> Iterator[torch.Tensor]:
    """Every tensor in a batch, through its lists, tuples and dicts."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from tensors(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from tensors(item)


def assert_same_batch(got: Any, expected: Any) -> None:
    """The same nested structure, non-tensors equal and tensors equal in value and dtype."""
    if isinstance(expected, torch.Tensor):
        assert isinstance(got, torch.Tensor) and got.dtype == expected.dtype
        assert torch.equal(got, expected)
    elif isinstance(expected, dict):
        assert isinstance(got, dict) and got.keys() == expected.keys()
        for key in expected:
            assert_same_batch(got[key], expected[key])
    elif isinstance(expected, (list, tuple)):
        assert type(got) is type(expected) and len(got) == len(expected)
        for a, b in zip(got, expected, strict=True):
            assert_same_batch(a, b)
    else:
        assert got == expected


def segmentation_run() -> dict[str, Any]:
    return {"model": TinySegmenter(), "train_set": Squares(4), "val_set": Squares(3, flip=False)}


def instance_run() -> dict[str, Any]:
    """Images with instance targets (lists of dicts with bool masks, ints and tuples)."""
    shapes = {"size": 32, "num_classes": 2, "target": "instances"}
    return {
        "model": FixedInstances(num_classes=2),
        "train_set": Shapes(4, **shapes),
        "val_set": Shapes(3, split="val", **shapes),
    }


@pytest.mark.parametrize("run", [segmentation_run, instance_run])
@pytest.mark.parametrize("device", DEVICES)
def test_loaders_pin_batches_for_a_gpu_and_keep_every_value(
    tmp_path: Path, device: str, run: Any
) -> None:
    config = tiny_config(tmp_path, device=device, batch_size=2)
    config.model.num_classes, config.eval.batch_size = 3 if run is segmentation_run else 2, 2
    trainer = Trainer(config, console=Console(quiet=True), **run())
    trainer.close()
    pinned = device == "cuda"
    assert trainer.loader.pin_memory == trainer.val_loader.pin_memory == pinned
    collate = trainer.loader.collate_fn
    trainer.sampler.set_position(epoch=0, start=0)
    first = list(trainer.sampler)[:2]
    references = [
        (next(iter(trainer.loader)), collate([trainer.samples[i] for i in first])),
        (next(iter(trainer.val_loader)), collate([trainer.val_set[i] for i in (0, 1)])),
    ]
    for batch, expected in references:
        assert_same_batch(batch, expected)
        # A tensor without elements has no memory to pin.
        assert all(t.is_pinned() == pinned for t in tensors(batch) if t.numel())


def test_a_cpu_run_in_a_process_forked_after_cuda_never_touches_cuda(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a child forked from a process that used CUDA (a test session, a notebook) sees: a
    # GPU is there, CUDA is not initialised, and initialising it raises.
    def refuse(*args: Any) -> None:
        raise RuntimeError("Cannot re-initialize CUDA in forked subprocess.")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", refuse)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", refuse)
    config = tiny_config(tmp_path)  # on the CPU
    with pytest.raises(TrainingInterrupted):
        train_squares(config, stop_after_steps=3)
    # A checkpoint written by a run that used CUDA holds CUDA's RNG states too.
    path = tmp_path / "run/checkpoints/last.pt"
    payload = load_checkpoint(path)
    assert "cuda" not in payload["rng"][0]
    payload["rng"][0]["cuda"] = [torch.zeros(16, dtype=torch.uint8)]
    save_checkpoint(path, payload)
    assert train_squares(config, resume=True).step == 13
