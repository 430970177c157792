from __future__ import annotations

from pathlib import Path

import torch
from helpers.gloo import run_two_processes
from helpers.tinyseg import Squares, TinySegmenter, tiny_config
from rich.console import Console

from fcnlab.config import StageConfig
from fcnlab.engine import read_metrics, train
from fcnlab.runtime.checkpoint import load_weights


def config(root: Path, name: str, batch_size: int):  # type: ignore[no-untyped-def]
    config = tiny_config(root, name, batch_size=batch_size)
    config.stages = [
        StageConfig(name="decoder", iterations=2, encoder="frozen", lr=0.1),
        StageConfig(name="all", iterations=3, lr=0.1, encoder_lr_mult=0.5),
    ]
    config.eval.every_epochs = 0
    config.output.plots = False
    return config


def worker(rank: int, root: str) -> None:
    train(
        config(Path(root), "ddp", batch_size=2),
        model=TinySegmenter(norm="group"),
        train_set=Squares(16),
        val_set=Squares(6, flip=False),
        console=Console(quiet=True),
    )


def test_two_gloo_processes_match_one_process_on_the_same_global_batch(tmp_path: Path) -> None:
    run_two_processes(worker, str(tmp_path))
    torch.manual_seed(0)
    single = train(
        config(tmp_path, "single", batch_size=4),
        model=TinySegmenter(norm="group"),
        train_set=Squares(16),
        val_set=Squares(6, flip=False),
        console=Console(quiet=True),
    )
    ddp = load_weights(tmp_path / "ddp/final.safetensors")
    one = load_weights(single.final_weights)  # type: ignore[arg-type]
    assert not torch.equal(one["encoder.0.weight"], TinySegmenter(norm="group").encoder[0].weight)
    for key in one:
        assert torch.allclose(ddp[key], one[key], atol=1e-6), key
    # the all-reduced evaluation (6 images over 2 ranks) counts what one process counts
    evals = [
        [r for r in read_metrics(tmp_path / name) if r["kind"] == "eval"]
        for name in ("ddp", "single")
    ]
    assert len(evals[0]) == 2
    for ours, reference in zip(*evals, strict=True):
        assert ours["confusion"] == reference["confusion"]
