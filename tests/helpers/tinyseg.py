"""A tiny segmentation model, data set and config, so engine tests need no other part of fcnlab."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import nn
from torch.utils.data import Dataset

from fcnlab.config import (
    Config,
    DataConfig,
    EvalConfig,
    ModelConfig,
    OutputConfig,
    StageConfig,
    TrainConfig,
)
from fcnlab.engine import TrainResult, read_metrics, train
from fcnlab.runtime.checkpoint import load_weights


class TinySegmenter(nn.Module):
    """conv + norm (the encoder) -> 1x1 conv (the decoder): logits at the input's size."""

    def __init__(self, num_classes: int = 3, width: int = 4, norm: str = "batch") -> None:
        super().__init__()
        layer = nn.BatchNorm2d(width) if norm == "batch" else nn.GroupNorm(2, width)
        self.encoder = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), layer, nn.ReLU())
        self.decoder = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class Squares(Dataset):
    """Image ``i``: a bright square of class 1 or 2 on a dark background, 16x16, with a random
    horizontal flip drawn from torch's global generator (augmentation to keep deterministic)."""

    num_classes = 3
    classes = ("background", "one", "two")

    def __init__(self, num_images: int = 16, size: int = 16, flip: bool = True) -> None:
        self.num_images, self.size, self.flip = num_images, size, flip

    def __len__(self) -> int:
        return self.num_images

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(index)
        image = 0.1 * torch.rand(3, self.size, self.size, generator=g)
        mask = torch.zeros(self.size, self.size, dtype=torch.int64)
        top, left = (int(v) for v in torch.randint(0, self.size // 2, (2,), generator=g))
        label = 1 + index % 2
        mask[top : top + self.size // 3, left : left + self.size // 2] = label
        image[label - 1, mask == label] += 0.8
        if self.flip and torch.rand(()) < 0.5:
            image, mask = image.flip(-1), mask.flip(-1)
        return image, mask


def tiny_config(run_root: Path, name: str = "run", **train: object) -> Config:
    """Two short stages (frozen, then fine-tuning) on :class:`Squares`, quiet and deterministic."""
    options = {"batch_size": 4, "log_every": 1, "deterministic": True, "device": "cpu"}
    options.update(train)
    return Config(
        model=ModelConfig(name="tiny", num_classes=3),
        data=DataConfig(name="squares", num_workers=0),
        train=TrainConfig(**options),  # type: ignore[arg-type]
        stages=[
            StageConfig(name="decoder", epochs=2, encoder="frozen", lr=0.1),
            StageConfig(name="fine-tune", iterations=5, lr=0.05, encoder_lr_mult=0.1),
        ],
        eval=EvalConfig(every_epochs=1, batch_size=4, num_overlays=2),
        output=OutputConfig(root=str(run_root), name=name, tensorboard=False),
    )


def train_squares(
    config: Config, model: Callable[[], nn.Module] = TinySegmenter, **kwargs: Any
) -> TrainResult:
    """``fcnlab.engine.train`` of a fresh ``model()`` (seeded) on 16 :class:`Squares`, validated
    on 8, quietly; ``kwargs`` go to the trainer (``resume``, ``loss``, ...)."""
    torch.manual_seed(0)
    options: dict[str, Any] = {"train_set": Squares(16), "val_set": Squares(8, flip=False)}
    return train(
        config, model=model(), console=Console(quiet=True), progress=False, **options | kwargs
    )


def without_timing(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``metrics.jsonl`` records without their images/s, which no two runs share."""
    return [{k: v for k, v in r.items() if k != "images_per_s"} for r in records]


class NanAtCall(nn.Module):
    """Cross-entropy that turns NaN from call ``at`` on."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.calls = at, 0

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        loss = nn.functional.cross_entropy(logits, target)
        return loss * float("nan") if self.calls >= self.at else loss


def assert_same_run(expected: TrainResult, got: TrainResult) -> None:
    """Two runs ended with bitwise equal final weights and the same ``metrics.jsonl`` (but for
    their images/s)."""
    want = load_weights(expected.final_weights)  # type: ignore[arg-type]
    have = load_weights(got.final_weights)  # type: ignore[arg-type]
    assert want.keys() == have.keys()
    for key in want:
        assert torch.equal(want[key], have[key]), key
    assert without_timing(read_metrics(expected.run_dir)) == without_timing(
        read_metrics(got.run_dir)
    )
