from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch
from helpers.tinyseg import NanAtCall, Squares, TinySegmenter, tiny_config, without_timing
from helpers.tinyseg import train_squares as run
from rich.console import Console
from torch import nn

from fcnlab.config import StageConfig
from fcnlab.engine import (
    NonFiniteLossError,
    Trainer,
    TrainingInterrupted,
    load_checkpoint,
    read_metrics,
    train,
)
from fcnlab.runtime.checkpoint import load_weights


def test_frozen_stage_keeps_the_encoder_then_fine_tuning_moves_it(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)  # stage 1: 2 epochs x 4 steps, encoder frozen
    torch.manual_seed(0)
    start = TinySegmenter().state_dict()  # what run() builds
    with pytest.raises(TrainingInterrupted, match=r"after step 8 in stage 1"):
        run(config, stop_after_steps=8)
    after_stage_1 = load_checkpoint(tmp_path / "run/checkpoints/last.pt")
    assert after_stage_1["reason"] == "interrupted"
    for key in ("encoder.0.weight", "encoder.1.running_mean", "encoder.1.running_var"):
        assert torch.equal(after_stage_1["model"][key], start[key]), key
    assert not torch.equal(after_stage_1["model"]["decoder.weight"], start["decoder.weight"])

    config.output.plots = True
    result = run(config, resume=True)
    final = load_weights(result.final_weights)  # type: ignore[arg-type]
    assert not torch.equal(final["encoder.0.weight"], start["encoder.0.weight"])
    assert [s.name for s in result.stages] == ["decoder", "fine-tune"]
    assert [len(s.evaluations) for s in result.stages] == [2, 2]  # 2 epochs; epoch + stage end
    assert result.step == 13 and result.best_checkpoint is not None
    files = {p.name for p in (tmp_path / "run").iterdir()}
    for name in ("config.yaml", "metrics.jsonl", "curves.png", "confusion.png", "overlays.png"):
        assert name in files, name
    records = read_metrics(tmp_path / "run")
    assert [r["step"] for r in records if r["kind"] == "train"] == list(range(1, 14))
    assert {r["stage"] for r in records if r["kind"] == "train"} == {0, 1}


def test_interrupted_and_resumed_run_equals_the_uninterrupted_one(tmp_path: Path) -> None:
    whole = run(tiny_config(tmp_path, "whole"))
    config = tiny_config(tmp_path, "pieces")
    for stop in (3, 10):  # mid-epoch in stage 1, then mid-stage 2
        with pytest.raises(TrainingInterrupted):
            run(config, stop_after_steps=stop, resume=stop != 3)
    pieces = run(config, resume=True)
    expected = load_weights(whole.final_weights)  # type: ignore[arg-type]
    got = load_weights(pieces.final_weights)  # type: ignore[arg-type]
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    assert without_timing(read_metrics(whole.run_dir)) == without_timing(
        read_metrics(pieces.run_dir)
    )


class SignalAtCall(nn.Module):
    """Cross-entropy that sends this process SIGINT during call ``at`` (a real signal)."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.calls = at, 0

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.at:
            os.kill(os.getpid(), signal.SIGINT)
        return nn.functional.cross_entropy(logits, target)


def test_sigint_finishes_the_step_saves_and_stops(tmp_path: Path) -> None:
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingInterrupted, match=r"SIGINT.*after step 2 in stage 1"):
        run(tiny_config(tmp_path), loss=SignalAtCall(2))
    checkpoint = load_checkpoint(tmp_path / "run/checkpoints/last.pt")
    assert checkpoint["reason"] == "interrupted" and checkpoint["state"]["step"] == 2
    assert signal.getsignal(signal.SIGINT) is handler


def test_non_finite_loss_names_step_and_stage_and_keeps_the_last_checkpoint(
    tmp_path: Path,
) -> None:
    checkpoint = tmp_path / "run/checkpoints/last.pt"
    with pytest.raises(NonFiniteLossError) as error:
        run(tiny_config(tmp_path), loss=NanAtCall(10))
    assert str(error.value) == (
        "the loss is nan at step 10 of stage 2 ('fine-tune'); stopped without saving: the last "
        f"good checkpoint is {checkpoint} (step 8)"
    )
    last = load_checkpoint(checkpoint)
    assert last["reason"] == "stage" and last["state"]["step"] == 8
    assert all(torch.isfinite(v).all() for v in last["model"].values() if v.is_floating_point())


def test_a_nan_before_any_checkpoint_says_there_is_none(tmp_path: Path) -> None:
    with pytest.raises(NonFiniteLossError) as error:
        run(tiny_config(tmp_path), loss=NanAtCall(2))
    assert str(error.value) == (
        "the loss is nan at step 2 of stage 1 ('decoder'); stopped without saving: this run has "
        "written no checkpoint yet"
    )
    assert not (tmp_path / "run/checkpoints").exists()
    assert not (tmp_path / "run/run.lock").exists()


def test_gradient_accumulation_equals_one_larger_batch(tmp_path: Path) -> None:
    results = []
    for accum in (1, 2):
        config = tiny_config(tmp_path, f"accum{accum}", batch_size=4 // accum, grad_accum=accum)
        config.stages = [StageConfig(name="all", iterations=4, lr=0.1)]
        # GroupNorm: batch statistics would differ between batches of 2 and 4.
        results.append(run(config, model=lambda: TinySegmenter(norm="group")))
    one, two = (load_weights(r.final_weights) for r in results)  # type: ignore[arg-type]
    assert not torch.equal(one["encoder.0.weight"], TinySegmenter(norm="group").encoder[0].weight)
    for key in one:
        assert torch.allclose(one[key], two[key], atol=1e-6), key


def test_stage_names_are_printed_literally(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, "brackets")
    config.stages = [StageConfig(name="decoder[v2]", iterations=2, lr=0.1)]
    console = Console(record=True, width=200)
    torch.manual_seed(0)
    train(config, model=TinySegmenter(), train_set=Squares(16), val_set=Squares(8), console=console,
          progress=False)  # fmt: skip
    assert "'decoder[v2]'" in console.export_text()


@pytest.mark.parametrize(
    ("wanted", "deterministic", "expected"),
    [(False, False, False), (True, False, True), (True, True, False)],
)
def test_cudnn_benchmark_follows_the_config_whatever_was_set_before(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    wanted: bool,
    deterministic: bool,
    expected: bool,
) -> None:
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", not expected)
    config = tiny_config(tmp_path, cudnn_benchmark=wanted, deterministic=deterministic)
    trainer = Trainer(config, model=TinySegmenter(), train_set=Squares(16), val_set=Squares(8),
                      console=Console(quiet=True), progress=False)  # fmt: skip
    trainer.close()
    assert torch.backends.cudnn.benchmark is expected
