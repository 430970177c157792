"""The engine trains a detector through the same loop: stages, evaluation by COCO AP, resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from helpers.gloo import run_two_processes
from helpers.tinyseg import tiny_config
from rich.console import Console
from torch import nn
from torch.utils.data import Dataset

from fcnlab.config import StageConfig
from fcnlab.engine import TrainingInterrupted, load_checkpoint, read_metrics, train
from fcnlab.engine.trainer import Trainer
from fcnlab.models.detection.centernet import CenterNet, CenterNetDecoder, CenterNetHead
from fcnlab.runtime.checkpoint import load_weights

QUIET = Console(quiet=True)
SIZE = 32


class TinyEncoder(nn.Module):
    """Features at reductions 4 and 8 (a stride-4 then a stride-2 convolution)."""

    out_channels = (8, 8)
    reductions = (4, 8)

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.BatchNorm2d(8), nn.ReLU()
        )
        self.down = nn.Sequential(nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        shallow = self.stem(x)
        return [shallow, self.down(shallow)]


def tiny_centernet(num_classes: int = 2) -> CenterNet:
    decoder = CenterNetDecoder(8, 8, channels=[8])
    head = CenterNetHead(decoder.out_channels, num_classes, hidden=8)
    return CenterNet(TinyEncoder(), decoder, head, num_classes)


class Boxes(Dataset):
    """Image ``i``: one bright rectangle of class ``i % 2`` on a dark 32x32 background, its box in
    the detection target format, and a random flip from torch's global generator."""

    num_classes = 2
    classes = ("red", "green")
    task = "detection"

    def __init__(self, num_images: int = 16, offset: int = 0, flip: bool = True) -> None:
        self.num_images, self.offset, self.flip = num_images, offset, flip

    def __len__(self) -> int:
        return self.num_images

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        g = torch.Generator().manual_seed(self.offset + index)
        image = 0.1 * torch.rand(3, SIZE, SIZE, generator=g)
        x, y = (int(v) for v in torch.randint(0, SIZE // 2, (2,), generator=g))
        w, h = (int(v) for v in torch.randint(8, SIZE // 2, (2,), generator=g))
        label = index % 2
        image[label, y : y + h, x : x + w] += 0.8
        box = [x, y, x + w, y + h]
        if self.flip and torch.rand(()) < 0.5:
            image, box = image.flip(-1), [SIZE - box[2], box[1], SIZE - box[0], box[3]]
        target = {
            "boxes": torch.tensor([box], dtype=torch.float32),
            "labels": torch.tensor([label]),
            "iscrowd": torch.zeros(1, dtype=torch.int64),
            "image_id": self.offset + index,
            "orig_size": (SIZE, SIZE),
            "image_size": (SIZE, SIZE),
        }
        return image, target


def run(config: Any, **kwargs: Any) -> Any:
    torch.manual_seed(0)
    return train(
        config,
        model=tiny_centernet(),
        train_set=Boxes(16),
        val_set=Boxes(8, offset=100, flip=False),
        console=QUIET,
        progress=False,
        **kwargs,
    )


def test_detector_trains_by_stages_and_keeps_the_best_ap(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)  # 2 frozen epochs x 4 steps, then 5 fine-tuning steps
    config.model.num_classes = 2
    config.stages[0].lr = config.stages[1].lr = 0.01
    config.train.optimizer = "adamw"
    config.output.plots = True
    result = run(config)

    assert result.metric == "AP" and result.step == 13
    evaluations = [r for r in read_metrics(result.run_dir) if r["kind"] == "eval"]
    # Stage 1 evaluates after each of its 2 epochs; stage 2 at its data epoch's end and its own.
    assert [r["step"] for r in evaluations] == [4, 8, 12, 13]
    assert [r["stage"] for r in evaluations] == [0, 0, 1, 1]
    for record in evaluations:
        assert record["task"] == "detection" and 0.0 <= record["AP"] <= 1.0
    assert result.stages[1].final.score == evaluations[-1]["AP"]
    best = max(evaluations, key=lambda r: r["AP"])
    assert result.best_score == best["AP"]
    assert load_checkpoint(result.best_checkpoint)["state"]["step"] == best["step"]
    assert (result.run_dir / "curves.png").is_file()
    assert (result.run_dir / "detections.png").is_file()
    assert (result.run_dir / "pr_curve.png").is_file()

    losses = [r["loss"] for r in read_metrics(result.run_dir) if r["kind"] == "train"]
    assert losses[-1] < losses[0]


def test_interrupted_detection_run_resumes_to_the_same_weights(tmp_path: Path) -> None:
    whole = tiny_config(tmp_path, name="whole")
    whole.model.num_classes = 2
    whole.train.optimizer = "adamw"
    for stage in whole.stages:
        stage.lr = 0.01
    reference = run(whole)

    parts = tiny_config(tmp_path, name="parts")
    parts.model.num_classes, parts.train.optimizer = 2, "adamw"
    for stage in parts.stages:
        stage.lr = 0.01
    with pytest.raises(TrainingInterrupted):
        run(parts, stop_after_steps=6)  # mid stage 1, mid data epoch 2
    resumed = run(parts, resume=True)

    expected = load_weights(reference.final_weights)
    got = load_weights(resumed.final_weights)
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    assert resumed.best_score == reference.best_score


def test_detection_model_refuses_a_segmentation_loss(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    config.model.num_classes = 2
    with pytest.raises(ValueError, match="computes its own loss"):
        Trainer(
            config,
            model=tiny_centernet(),
            train_set=Boxes(8),
            val_set=Boxes(4),
            loss=nn.CrossEntropyLoss(),
            console=QUIET,
        )


def group_norm_centernet() -> CenterNet:
    """``tiny_centernet`` with every batch norm swapped for group norm, so that splitting a batch
    across processes changes no statistics (as SyncBatchNorm would on GPUs)."""
    model = tiny_centernet()
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                setattr(module, child_name, nn.GroupNorm(2, child.num_features))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    return model


def ddp_config(root: Path, name: str, batch_size: int) -> Any:
    config = tiny_config(root, name, batch_size=batch_size)
    config.model.num_classes = 2
    config.train.optimizer = "adamw"
    config.stages = [
        StageConfig(name="head", iterations=2, encoder="frozen", lr=0.01),
        StageConfig(name="all", iterations=2, lr=0.01),
    ]
    config.eval.every_epochs = 0
    config.output.plots = False
    return config


def ddp_worker(rank: int, root: str) -> None:
    train(
        ddp_config(Path(root), "ddp", batch_size=2),
        model=group_norm_centernet(),
        train_set=Boxes(16),
        val_set=Boxes(6, offset=100, flip=False),
        console=QUIET,
    )


def test_two_gloo_processes_train_a_detector_like_one_process(tmp_path: Path) -> None:
    # Every image holds one object, so each process's loss normalisation (per object) equals
    # the global one and averaging the gradients over processes is exact.
    run_two_processes(ddp_worker, str(tmp_path))
    torch.manual_seed(0)
    single = train(
        ddp_config(tmp_path, "single", batch_size=4),
        model=group_norm_centernet(),
        train_set=Boxes(16),
        val_set=Boxes(6, offset=100, flip=False),
        console=QUIET,
    )
    ddp, one = load_weights(tmp_path / "ddp/final.safetensors"), load_weights(single.final_weights)
    for key in one:
        assert torch.allclose(ddp[key], one[key], atol=1e-5), key
    # COCO AP over 6 images split 3 + 3 across the processes is the one-process AP.
    evals = [
        [r for r in read_metrics(tmp_path / name) if r["kind"] == "eval"]
        for name in ("ddp", "single")
    ]
    assert len(evals[0]) == 2
    for ours, reference in zip(*evals, strict=True):
        assert ours["AP"] == pytest.approx(reference["AP"], abs=1e-6)
        assert ours["num_images"] == reference["num_images"] == 6
