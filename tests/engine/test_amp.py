"""Mixed precision in the engine: ``train.amp`` bf16 and fp16 train on each device (fp16 with a
GradScaler), in the reduced dtype, with finite losses that start where a float32 run starts."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from helpers.devices import DEVICES
from helpers.tinyseg import Squares, TinySegmenter, tiny_config
from rich.console import Console

from fcnlab.config import StageConfig
from fcnlab.engine import Trainer, read_metrics
from fcnlab.runtime.checkpoint import load_weights
from fcnlab.runtime.precision import AMP_DTYPES


def fit(root: Path, name: str, device: str, amp: str) -> tuple[Trainer, list[torch.dtype]]:
    """Four steps of a fresh, seeded :class:`TinySegmenter` on 16 Squares and the stage-end
    evaluation; returns the trainer and the dtype of every decoder output along the way."""
    config = tiny_config(root, name, device=device, amp=amp)
    config.stages = [StageConfig(name="all", iterations=4, lr=0.1)]
    config.eval.every_epochs = 0
    config.output.plots = False
    torch.manual_seed(0)
    model = TinySegmenter()
    dtypes: list[torch.dtype] = []
    model.decoder.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
    trainer = Trainer(
        config,
        model=model,
        train_set=Squares(16),
        val_set=Squares(4, flip=False),
        console=Console(quiet=True),
        progress=False,
    )
    trainer.fit()
    return trainer, dtypes


def train_losses(trainer: Trainer) -> list[float]:
    return [r["loss"] for r in read_metrics(trainer.run_dir) if r["kind"] == "train"]


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
@pytest.mark.parametrize("device", DEVICES)
def test_mixed_precision_trains_in_its_dtype(tmp_path: Path, device: str, amp: str) -> None:
    torch.manual_seed(0)
    start = TinySegmenter().state_dict()  # what fit() builds
    trainer, dtypes = fit(tmp_path, amp, device, amp)
    reference, float32 = fit(tmp_path, "off", device, "off")
    assert trainer.scaler.is_enabled() == (amp == "fp16")
    # 4 training forwards and 1 evaluation batch, all in the reduced dtype
    assert dtypes == [AMP_DTYPES[amp]] * 5 and float32 == [torch.float32] * 5
    losses = train_losses(trainer)
    assert len(losses) == 4 and all(math.isfinite(loss) for loss in losses)
    # The first step's loss comes from the same weights and batch as float32's, to the reduced
    # precision (bf16 keeps 8 bits of mantissa, fp16 11).
    assert losses[0] == pytest.approx(train_losses(reference)[0], rel=2e-2)
    final = load_weights(trainer.run_dir / "final.safetensors")
    for key in ("encoder.0.weight", "decoder.weight"):
        assert torch.isfinite(final[key]).all(), key
        assert not torch.equal(final[key], start[key]), key
    if amp == "fp16":
        assert 0 < trainer.scaler.get_scale() < math.inf
