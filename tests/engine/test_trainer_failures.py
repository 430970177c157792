"""Nothing lost on a failure: a run folder is never reused silently, a failing evaluation or a
kill -9 loses no training, and the resumed run ends as the uninterrupted one."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers.tinyseg import Squares, TinySegmenter, tiny_config, train_squares, without_timing
from rich.console import Console

from fcnlab.config import Config
from fcnlab.engine import (
    CheckpointError,
    Trainer,
    TrainingInterrupted,
    load_checkpoint,
    read_metrics,
)
from fcnlab.runtime.checkpoint import load_weights
from fcnlab.runtime.run_dir import RunFolderError
from fcnlab.viz.plots import plot_curves


def in_a_child(function: Callable[..., Any], *args: Any, **kwargs: Any) -> int | None:
    """``function(*args, **kwargs)`` in a forked process on one thread; its exit code (-9 when
    it was killed)."""
    fork = multiprocessing.get_context("fork")
    process = fork.Process(target=_child, args=(function, args, kwargs))
    process.start()
    process.join(timeout=300)
    return process.exitcode


def _child(function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    # One thread in every process that trains, so that all runs compare bit for bit.
    torch.set_num_threads(1)
    function(*args, **kwargs)


def assert_same_run(expected: Path, got: Path) -> None:
    """Two run folders hold the same final weights and the same metrics.jsonl records."""
    one, two = (load_weights(run / "final.safetensors") for run in (expected, got))
    assert one.keys() == two.keys()
    for key in one:
        assert torch.equal(one[key], two[key]), key
    assert without_timing(read_metrics(expected)) == without_timing(read_metrics(got))


def assert_released(run: Path) -> None:
    assert not (run / "run.lock").exists()


def test_a_folder_holding_a_run_is_refused_then_replaced_with_overwrite(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    train_squares(config)
    run = tmp_path / "run"
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with pytest.raises(RunFolderError) as error:
        train_squares(config)
    assert str(error.value) == (
        f"run folder '{run}' already holds a run (config.yaml, metrics.jsonl, checkpoints/best.pt, "
        "checkpoints/last.pt); continue it with --resume, replace it with --overwrite, or set "
        "output.name to a new folder"
    )
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    assert_released(run)

    (run / "notes.txt").write_text("mine")
    train_squares(config, overwrite=True)
    steps = [r["step"] for r in read_metrics(run) if r["kind"] == "train"]
    assert steps == list(range(1, 14))  # not appended to the previous run's records
    assert (run / "notes.txt").read_text() == "mine"
    assert_released(run)


def test_a_second_run_cannot_enter_a_folder_in_use(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    first = Trainer(config, TinySegmenter(), Squares(16), Squares(8), console=Console(quiet=True))
    with pytest.raises(RunFolderError, match=rf"'{tmp_path / 'run'}' is in use by process "):
        Trainer(config, TinySegmenter(), Squares(16), Squares(8), console=Console(quiet=True))
    first.close()
    assert_released(tmp_path / "run")
    # The first run wrote its config but no checkpoint: nothing to resume.
    with pytest.raises(RunFolderError, match=r"holds a run that wrote no checkpoint \(config.y"):
        train_squares(config)
    train_squares(config, overwrite=True)


class FailingOnce(Squares):
    """Validation images of which the first asked for cannot be read."""

    failed = False

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.failed:
            self.failed = True
            raise OSError("validation image 'val/0.png' is truncated")
        return super().__getitem__(index)


def test_a_failing_evaluation_loses_no_training(tmp_path: Path) -> None:
    whole = train_squares(tiny_config(tmp_path, "whole"))
    config = tiny_config(tmp_path)
    with pytest.raises(OSError, match="truncated"):
        train_squares(config, val_set=FailingOnce(8, flip=False))
    saved = load_checkpoint(tmp_path / "run/checkpoints/last.pt")
    assert (saved["reason"], saved["state"]["step"]) == ("epoch", 4)  # the epoch before its eval
    assert_released(tmp_path / "run")
    train_squares(config, resume=True)  # evaluates first, then goes on
    assert_same_run(whole.run_dir, tmp_path / "run")


class KillingSquares(Squares):
    """Training images whose ``at``-th read SIGKILLs the process (kill -9 in the middle of a
    step, when the step before is done)."""

    def __init__(self, at: int) -> None:
        super().__init__(16)
        self.at, self.reads = at, 0

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        self.reads += 1
        if self.reads == self.at:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().__getitem__(index)


def test_kill_9_after_a_mid_epoch_checkpoint_resumes_to_the_same_run(tmp_path: Path) -> None:
    assert in_a_child(train_squares, tiny_config(tmp_path, "whole")) == 0
    config = tiny_config(tmp_path, checkpoint_every_steps=3)
    # Step 8's first image: steps 1-7 are done, the last checkpoint is step 6's.
    assert in_a_child(train_squares, config, train_set=KillingSquares(at=7 * 4 + 1)) == -9
    run = tmp_path / "run"
    saved = load_checkpoint(run / "checkpoints/last.pt")["state"]
    assert (saved["step"], saved["data_epoch"], saved["position"]) == (6, 1, 2)  # mid-epoch
    assert max(r["step"] for r in read_metrics(run)) == 7  # logged after the checkpoint
    assert (run / "run.lock").exists()  # left by the killed run; the resumed run takes it over
    assert in_a_child(train_squares, config, resume=True) == 0
    assert_same_run(tmp_path / "whole", run)  # metrics.jsonl: steps 7.. are not there twice


def killed_while_saving_at_step(config: Config, step: int) -> None:
    """Train, and SIGKILL this process half-way through writing the checkpoint of ``step``."""
    save = torch.save

    def dying_save(data: dict[str, Any], file: Any) -> None:
        if data.get("state", {}).get("step") == step:
            file.write(b"PK\x03\x04 half a checkpoint")
            file.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        save(data, file)

    torch.save = dying_save
    train_squares(config)


def test_kill_9_while_saving_leaves_the_previous_checkpoint_and_no_temporary(
    tmp_path: Path,
) -> None:
    assert in_a_child(train_squares, tiny_config(tmp_path, "whole")) == 0
    config = tiny_config(tmp_path, checkpoint_every_steps=3)
    assert in_a_child(killed_while_saving_at_step, config, 6) == -signal.SIGKILL
    run = tmp_path / "run"
    orphans = list((run / "checkpoints").glob(".last.pt.*.tmp"))
    assert len(orphans) == 1
    saved = load_checkpoint(run / "checkpoints/last.pt")
    # The end of epoch 1, written before its evaluation, which the killed run then logged.
    assert (saved["reason"], saved["state"]["step"], saved["state"]["last_eval_step"]) == (
        "epoch",
        4,
        -1,
    )
    assert [r["step"] for r in read_metrics(run) if r["kind"] == "eval"] == [4]
    assert in_a_child(train_squares, config, resume=True) == 0
    assert not orphans[0].exists()
    assert_same_run(tmp_path / "whole", run)  # the evaluation at step 4 is there once


def test_resume_with_only_best_pt_says_how_to_continue_from_it(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    with pytest.raises(TrainingInterrupted):
        train_squares(config, stop_after_steps=6)
    best = tmp_path / "run/checkpoints/best.pt"
    (tmp_path / "run/checkpoints/last.pt").unlink()
    with pytest.raises(CheckpointError) as error:
        train_squares(config, resume=True)
    assert str(error.value) == (
        f"run folder '{tmp_path / 'run'}' has no checkpoints/last.pt to resume from, only "
        f"best.pt (step 4); continue from it with --resume-from {best}"
    )
    assert_released(tmp_path / "run")
    result = train_squares(config, resume=best)
    assert result.step == 13
    assert [r["step"] for r in read_metrics(result.run_dir) if r["kind"] == "train"] == list(
        range(1, 14)
    )


def test_resume_into_another_architecture_lists_what_differs(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    with pytest.raises(TrainingInterrupted):
        train_squares(config, stop_after_steps=2)
    with pytest.raises(CheckpointError) as error:
        train_squares(config, model=lambda: TinySegmenter(width=8), resume=True)
    path = tmp_path / "run/checkpoints/last.pt"
    assert str(error.value) == (
        f"checkpoint '{path}' does not fit TinySegmenter: shape mismatches (7): encoder.0.weight "
        "is (4, 3, 3, 3) in the checkpoint but (8, 3, 3, 3) in the model, encoder.0.bias is (4,) "
        "in the checkpoint but (8,) in the model, encoder.1.weight is (4,) in the checkpoint but "
        "(8,) in the model, encoder.1.bias is (4,) in the checkpoint but (8,) in the model, "
        "encoder.1.running_mean is (4,) in the checkpoint but (8,) in the model, "
        "encoder.1.running_var is (4,) in the checkpoint but (8,) in the model, decoder.weight "
        "is (3, 4, 1, 1) in the checkpoint but (3, 8, 1, 1) in the model"
    )
    assert_released(tmp_path / "run")


def test_the_curves_mark_each_stage_at_its_first_step(tmp_path: Path) -> None:
    # Logged every 5 steps (and at each stage's end): the stages are first logged at steps 5
    # and 10, but start at steps 1 and 9.
    config = tiny_config(tmp_path, log_every=5)
    result = train_squares(config)
    records = read_metrics(result.run_dir)
    assert [r["step"] for r in records if r["kind"] == "train"] == [5, 8, 10, 13]
    assert [(r["step"], r["name"]) for r in records if r["kind"] == "stage"] == [
        (1, "decoder"),
        (9, "fine-tune"),
    ]
    loss_axis = plot_curves(records, ("mean_iou",)).axes[0]
    dashed = sorted(
        {line.get_xdata()[0] for line in loss_axis.lines if line.get_linestyle() == "--"}
    )
    assert dashed == [1, 9]
