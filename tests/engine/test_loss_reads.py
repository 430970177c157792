"""Losses read from the device every few steps: the same run, NaNs named by their own step, no
checkpoint written past an unread loss (on the CPU, where the trainer reads every step unless
told otherwise, as it does on a GPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers.tinyseg import NanAtCall, assert_same_run, tiny_config
from helpers.tinyseg import train_squares as run

from fcnlab.engine import NonFiniteLossError, TrainingInterrupted, load_checkpoint
from fcnlab.engine.loss_reads import UnreadLosses


def test_unread_losses_come_back_in_order_in_one_read() -> None:
    unread = UnreadLosses()
    unread.add(7, 0, torch.tensor([0.5, 0.0]))
    unread.add(8, 1, torch.tensor([float("nan"), 1.0]))
    first, second = unread.read()
    assert (first.step, first.stage, first.loss, first.stop) == (7, 0, 0.5, False)
    assert (second.step, second.stage, second.stop) == (8, 1, True) and second.loss != second.loss
    assert len(unread) == 0 and unread.read() == []


def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of steps each read of :class:`UnreadLosses` returns, in order."""
    sizes: list[int] = []
    read = UnreadLosses.read

    def counted(self: UnreadLosses) -> list:
        losses = read(self)
        sizes.append(len(losses))
        return losses

    monkeypatch.setattr(UnreadLosses, "read", counted)
    return sizes


def test_reading_every_few_steps_trains_and_logs_the_same_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    every_step = run(tiny_config(tmp_path, "every", log_every=4))
    reads = count_reads(monkeypatch)
    few = run(tiny_config(tmp_path, "few", log_every=4), read_every=4)
    # Stage 1 is 2 epochs of 4 steps, stage 2 5 steps: read at steps 4, 8, 12 and 13.
    assert reads == [4, 4, 4, 1]
    assert_same_run(every_step, few)


def test_a_nan_read_later_is_named_by_its_step_and_never_saved(tmp_path: Path) -> None:
    checkpoint = tmp_path / "run/checkpoints/last.pt"
    with pytest.raises(NonFiniteLossError) as error:
        run(tiny_config(tmp_path, log_every=8), loss=NanAtCall(6), read_every=8)
    # Steps 6, 7 and 8 are NaN; the read before step 8's update (the epoch's end) finds them.
    assert str(error.value) == (
        "the loss is nan at step 6 of stage 1 ('decoder'); stopped without saving: the last "
        f"good checkpoint is {checkpoint} (step 4)"
    )
    last = load_checkpoint(checkpoint)
    assert last["state"]["step"] == 4
    assert all(torch.isfinite(v).all() for v in last["model"].values() if v.is_floating_point())


def test_an_interrupted_run_reading_every_few_steps_resumes_exactly(tmp_path: Path) -> None:
    whole = run(tiny_config(tmp_path, "whole", log_every=4))
    config = tiny_config(tmp_path, "pieces", log_every=4)
    for stop in (3, 10):  # neither is a logged step: the stop itself forces the read
        with pytest.raises(TrainingInterrupted, match=f"after step {stop} "):
            run(config, stop_after_steps=stop, resume=stop != 3, read_every=4)
    pieces = run(config, resume=True, read_every=4)
    assert_same_run(whole, pieces)
