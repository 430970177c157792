"""Training throughput and peak memory: the engine vs a plain PyTorch loop on the same model/data.

    python benchmarks/bench_train.py                      # FCN-8s, SegNet, U-Net, 256x256, batch 8
    python benchmarks/bench_train.py --steps 5 --size 64 --width 0.125   # a quick look on a CPU

Both loops train the same freshly built model with SGD on the same in-memory random images for
``--steps`` steps after ``--warmup`` untimed ones; the engine's rate is what it measures over its
training steps (its log windows; ``--steps`` a multiple of ``--warmup``); overhead =
1 - engine / plain. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time

import torch
from rich.console import Console
from torch import nn
from torch.utils.data import DataLoader, Dataset

from fcnlab.config import (
    Config,
    DataConfig,
    EvalConfig,
    ModelConfig,
    OutputConfig,
    StageConfig,
    TrainConfig,
)
from fcnlab.engine import read_metrics, train
from fcnlab.engine.build import build_model_from_config

MODELS = {"fcn8s": "vgg16", "segnet": "vgg16_bn", "unet": "unet"}


class RandomImages(Dataset):
    """``length`` random (3, size, size) images with random masks of ``num_classes``, in memory."""

    def __init__(self, length: int, size: int, num_classes: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.images = torch.rand(length, 3, size, size, generator=g)
        self.masks = torch.randint(0, num_classes, (length, size, size), generator=g)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.masks[index]


def model_config(name: str, width: float) -> ModelConfig:
    return ModelConfig(
        name=name, num_classes=21, encoder=MODELS[name],
        options={"encoder_options": {"width": width}},
    )  # fmt: skip


def peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS


def plain_loop(args: argparse.Namespace, name: str, device: torch.device) -> float:
    """Images/s of the textbook loop: forward, loss, backward, step."""
    model = build_model_from_config(model_config(name, args.width)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    data = RandomImages(args.batch * (args.steps + args.warmup), args.size, 21)
    loader = DataLoader(data, batch_size=args.batch, shuffle=True, drop_last=True)
    loss_fn = nn.CrossEntropyLoss(ignore_index=255)
    model.train()
    start, timed = 0.0, 0
    for i, (images, masks) in enumerate(loader):
        if i == args.warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        images, masks = images.to(device), masks.to(device)
        loss = loss_fn(model(images), masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()  # the engine reads the loss every step too (NaN check)
        timed += args.batch if i >= args.warmup else 0
    return timed / (time.perf_counter() - start)


def engine_loop(args: argparse.Namespace, name: str, device: torch.device) -> float:
    """Images/s the engine measures over its training steps (one stage, no evaluation)."""
    with tempfile.TemporaryDirectory() as root:
        config = Config(
            model=model_config(name, args.width),
            data=DataConfig(name="random"),
            train=TrainConfig(
                batch_size=args.batch, device=device.type, log_every=args.warmup,
                schedule="constant", optimizer="sgd", weight_decay=0.0,
            ),
            stages=[StageConfig(name="bench", iterations=args.warmup + args.steps, lr=1e-3)],
            eval=EvalConfig(every_epochs=0, num_overlays=0),
            output=OutputConfig(root=root, tensorboard=False, plots=False),
        )  # fmt: skip
        torch.manual_seed(0)
        result = train(
            config,
            train_set=RandomImages(args.batch * (args.steps + args.warmup), args.size, 21),
            val_set=RandomImages(1, args.size, 21),
            console=Console(quiet=True),
            progress=False,
        )
        # Log windows are `warmup` steps long; the first is the warmup. Equal windows: the
        # overall rate is the harmonic mean of the windows' rates.
        rates = [r["images_per_s"] for r in read_metrics(result.run_dir) if r["kind"] == "train"]
        timed = rates[1:]
        return len(timed) / sum(1 / r for r in timed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--width", type=float, default=1.0, help="encoder width multiplier")
    args = parser.parse_args()
    if args.steps % args.warmup:
        parser.error(f"--steps {args.steps} must be a multiple of --warmup {args.warmup}")
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(
        f"{args.size}x{args.size}, batch {args.batch}, {args.steps} timed steps, width {args.width}"
    )
    print("| model | device | plain img/s | engine img/s | overhead | peak memory MiB |")
    print("|---|---|---|---|---|---|")
    for device in devices:
        for name in args.models:
            plain = plain_loop(args, name, device)
            engine = engine_loop(args, name, device)
            print(
                f"| {name} | {device.type} | {plain:.1f} | {engine:.1f} | "
                f"{100 * (1 - engine / plain):+.1f}% | {peak_memory_mib(device):.0f} |"
            )


if __name__ == "__main__":
    main()
