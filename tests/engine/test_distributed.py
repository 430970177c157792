from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers.devices import needs_two_gpus
from helpers.gloo import run_two_processes
from helpers.tinyseg import Squares, TinySegmenter, tiny_config
from rich.console import Console

from fcnlab.config import StageConfig
from fcnlab.engine import read_metrics, train
from fcnlab.runtime.checkpoint import load_weights


def config(root: Path, name: str, batch_size: int, device: str):  # type: ignore[no-untyped-def]
    config = tiny_config(root, name, batch_size=batch_size, device=device)
    config.stages = [
        StageConfig(name="decoder", iterations=2, encoder="frozen", lr=0.1),
        StageConfig(name="all", iterations=3, lr=0.1, encoder_lr_mult=0.5),
    ]
    config.eval.every_epochs = 0
    config.output.plots = False
    return config


def worker(rank: int, root: str, device: str) -> None:
    train(
        config(Path(root), "ddp", batch_size=2, device=device),
        model=TinySegmenter(norm="group"),
        train_set=Squares(16),
        val_set=Squares(6, flip=False),
        console=Console(quiet=True),
    )


# gloo on the CPU; nccl on two GPUs, whose reductions and kernels round a little differently.
@pytest.mark.parametrize(
    ("device", "atol"),
    [
        pytest.param("cpu", 1e-6, id="gloo"),
        pytest.param("cuda", 1e-5, id="nccl", marks=needs_two_gpus),
    ],
)
def test_two_processes_match_one_process_on_the_same_global_batch(
    tmp_path: Path, device: str, atol: float
) -> None:
    run_two_processes(worker, str(tmp_path), device, cuda=device == "cuda")
    torch.manual_seed(0)
    single = train(
        config(tmp_path, "single", batch_size=4, device=device),
        model=TinySegmenter(norm="group"),
        train_set=Squares(16),
        val_set=Squares(6, flip=False),
        console=Console(quiet=True),
    )
    ddp = load_weights(tmp_path / "ddp/final.safetensors")
    one = load_weights(single.final_weights)  # type: ignore[arg-type]
    assert not torch.equal(one["encoder.0.weight"], TinySegmenter(norm="group").encoder[0].weight)
    for key in one:
        assert torch.allclose(ddp[key], one[key], atol=atol), key
    # the all-reduced evaluation (6 images over 2 ranks) counts what one process counts
    evals = [
        [r for r in read_metrics(tmp_path / name) if r["kind"] == "eval"]
        for name in ("ddp", "single")
    ]
    assert len(evals[0]) == 2
    for ours, reference in zip(*evals, strict=True):
        assert ours["confusion"] == reference["confusion"]
