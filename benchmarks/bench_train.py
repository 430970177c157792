"""Training throughput and peak memory: the engine vs a plain PyTorch loop on the same model/data.

    python benchmarks/bench_train.py                      # FCN-8s, SegNet, U-Net, 256x256, batch 8
    python benchmarks/bench_train.py --steps 4 --warmup 2 --size 64 --width 0.125 --pairs 1  # quick

Both loops train the same model (built after ``torch.manual_seed(0)``, so with the same initial
weights) with SGD on the same in-memory random images for ``--steps`` steps after ``--warmup``
untimed ones. The plain loop's clock runs from the end of its last warm-up step to the end of its
last step; the engine's rate is what it measures itself over the same steps (its log windows are
``--warmup`` steps long and the first one is the warm-up, so ``--steps`` must be a multiple of
``--warmup``). Evaluation and checkpoints come after the timed steps.

Every run is a fresh interpreter and the two loops run ``--pairs`` times in alternating order
(plain first, then engine first, ...): in one process the second loop inherits the first one's
malloc heap (on CPU, page faults are a large part of a step), and on a shared CPU a single run of
each is within the noise. Overhead = 1 - engine / plain per pair; the table gives the median
pair and the range.
Peak memory is the growth of the resident set during the run (CPU; reset through
/proc/self/clear_refs) or ``torch.cuda.max_memory_allocated`` (CUDA).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time

import torch
from harness import reset_peak_rss, run_child, status_bytes
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
from fcnlab.models.from_config import build_model_from_config

MODELS = {"fcn8s": "vgg16", "segnet": "vgg16_bn", "unet": "unet"}
LOOPS = ("plain", "engine")
SEED = 0
LR = 1e-3


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


def train_images(args: argparse.Namespace) -> RandomImages:
    """Exactly one epoch: the warm-up and the timed steps."""
    return RandomImages(args.batch * (args.steps + args.warmup), args.size, 21)


def plain_loop(args: argparse.Namespace, name: str, device: torch.device) -> float:
    """Images/s of the textbook loop: forward, loss, backward, step."""
    torch.manual_seed(SEED)  # the engine seeds the same way before it builds its model
    model = build_model_from_config(model_config(name, args.width)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    loader = DataLoader(train_images(args), batch_size=args.batch, shuffle=True, drop_last=True)
    loss_fn = nn.CrossEntropyLoss(ignore_index=255)
    model.train()
    start = 0.0
    for i, (images, masks) in enumerate(loader):
        images, masks = images.to(device), masks.to(device)
        loss = loss_fn(model(images), masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()  # the engine reads the loss every step too (NaN check), which synchronises
        if i + 1 == args.warmup:
            start = time.perf_counter()
    return args.batch * args.steps / (time.perf_counter() - start)


def engine_loop(args: argparse.Namespace, name: str, device: torch.device) -> float:
    """Images/s the engine measures over its training steps (one stage, no evaluation)."""
    with tempfile.TemporaryDirectory() as root:
        config = Config(
            model=model_config(name, args.width),
            data=DataConfig(name="random"),
            train=TrainConfig(
                batch_size=args.batch, device=device.type, log_every=args.warmup, seed=SEED,
                schedule="constant", optimizer="sgd", momentum=0.9, weight_decay=0.0,
            ),
            stages=[StageConfig(name="bench", iterations=args.warmup + args.steps, lr=LR)],
            eval=EvalConfig(every_epochs=0, num_overlays=0),
            output=OutputConfig(root=root, tensorboard=False, plots=False),
        )  # fmt: skip
        result = train(
            config,
            train_set=train_images(args),
            val_set=RandomImages(1, args.size, 21),
            console=Console(quiet=True),
            progress=False,
        )
        # Log windows are `warmup` steps long; the first is the warmup. Equal windows: the
        # overall rate is the harmonic mean of the windows' rates.
        rates = [r["images_per_s"] for r in read_metrics(result.run_dir) if r["kind"] == "train"]
        timed = rates[1:]
        return len(timed) / sum(1 / r for r in timed)


def measure(args: argparse.Namespace, loop: str, name: str, device: torch.device) -> dict:
    """One loop's images/s and peak memory growth in MiB (run in a fresh interpreter)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        base = reset_peak_rss()
    rate = (plain_loop if loop == "plain" else engine_loop)(args, name, device)
    peak = (
        torch.cuda.max_memory_allocated(device) if device.type == "cuda" else status_bytes("VmHWM:")
    ) - base
    return {"images_per_s": rate, "peak_mib": peak / 2**20}


def run_loop(args: argparse.Namespace, loop: str, name: str, device: torch.device) -> dict:
    """``measure`` in a fresh interpreter with the same settings."""
    options = ("size", "batch", "steps", "warmup", "width", "threads")
    command = [sys.executable, __file__, "--child", loop, name, device.type]
    for option in options:
        command += [f"--{option}", str(getattr(args, option))]
    return run_child(command)


def compare(args: argparse.Namespace, name: str, device: torch.device) -> str:
    """``--pairs`` runs of both loops in alternating order; one markdown row."""
    rows: dict[str, list[dict]] = {loop: [] for loop in LOOPS}
    for pair in range(args.pairs):
        for loop in LOOPS if pair % 2 == 0 else LOOPS[::-1]:
            row = run_loop(args, loop, name, device)
            if "error" in row:
                return f"| {name} | {device.type} | | | | | error ({loop}): {row['error']} |"
            rows[loop].append(row)
    plain, engine = ([r["images_per_s"] for r in rows[loop]] for loop in LOOPS)
    overheads = [100 * (1 - e / p) for p, e in zip(plain, engine, strict=True)]
    peaks = "/".join(
        f"{statistics.median(r['peak_mib'] for r in rows[loop]):.0f}" for loop in LOOPS
    )
    return (
        f"| {name} | {device.type} | {statistics.median(plain):.2f} | "
        f"{statistics.median(engine):.2f} | {statistics.median(overheads):+.1f}% | "
        f"{min(overheads):+.1f}% .. {max(overheads):+.1f}% | {peaks} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--width", type=float, default=1.0, help="encoder width multiplier")
    parser.add_argument("--pairs", type=int, default=3, help="runs of each loop, alternating")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    parser.add_argument(
        "--child", nargs=3, metavar=("LOOP", "MODEL", "DEVICE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.steps % args.warmup:
        parser.error(f"--steps {args.steps} must be a multiple of --warmup {args.warmup}")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        loop, name, device = args.child
        print(json.dumps(measure(args, loop, name, torch.device(device))))
        return
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(
        f"{args.size}x{args.size}, batch {args.batch}, {args.steps} timed steps after "
        f"{args.warmup}, width {args.width}, {torch.get_num_threads()} threads, "
        f"{args.pairs} alternating pairs of fresh processes, torch {torch.__version__}"
    )
    print()
    print(
        "| model | device | plain img/s | engine img/s | overhead (median) | overhead range "
        "| peak MiB plain/engine |"
    )
    print("|---|---|---:|---:|---:|---|---:|", flush=True)
    for device in devices:
        for name in args.models:
            print(compare(args, name, device), flush=True)


if __name__ == "__main__":
    main()
