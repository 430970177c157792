"""Training throughput and peak memory: the engine vs a plain PyTorch loop on the same model/data.

    python benchmarks/bench_train.py                      # FCN-8s, SegNet, U-Net, 256x256, batch 8
    python benchmarks/bench_train.py --steps 4 --warmup 2 --size 64 --width 0.125 --pairs 1  # quick
    python benchmarks/bench_train.py --models unet-r18 --size 96 --batch 16 --optimizer adamw \
        --num-classes 11 --steps 12 --warmup 4     # the U-Net/ResNet-18 row of issue 16

The loops train the same model (built after ``torch.manual_seed(0)``, so with the same initial
weights) with SGD (or ``--optimizer adamw``) on the same random images for ``--steps`` steps
after ``--warmup`` untimed ones: the plain loop and the engine over in-memory tensors, and the
engine again reading them from a folder of PNGs on disk (``images/`` + ``masks/``, written by
the script to a temporary folder before the clock starts; ``folder`` data set, normalised,
``--workers`` DataLoader workers), so the table shows the whole pipeline as users have it; the
``cached`` loop reads the same folder with ``data.cache``, decoded into memory once before the
engine starts (the fill is not timed: it is one pass over the files, before the first step).
``unet-r18`` is U-Net on a ResNet-18 encoder with the decoder configured like
segmentation_models_pytorch's (``decoder_channels [256, 128, 64, 32, 16]``; ``--upsample``
bilinear as in issue 16's row, or nearest, smp's own default).

``--amp``, ``--channels-last`` and ``--cudnn-benchmark`` apply to every loop alike (the plain
loop with ``torch.autocast``, a ``GradScaler`` for fp16, a channels-last model and input;
the engine through ``train.amp``, ``train.channels_last`` and ``train.cudnn_benchmark``), so a
row shows what each setting does to both. ``--devices`` and ``--loops`` pick the rows.

The plain loop's clock runs from the end of its last warm-up step to the end of its last step;
the engine's rate is what it measures itself over the same steps (its log windows are
``--warmup`` steps long and the first one is the warm-up, so ``--steps`` must be a multiple of
``--warmup``). Evaluation and checkpoints come after the timed steps.

Every run is a fresh interpreter and the loops run ``--pairs`` times in alternating
order (plain first, then folder first, ...): in one process a later loop inherits an earlier
one's malloc heap (on CPU, page faults are a large part of a step), and on a shared CPU a single
run of each is within the noise. Overhead = 1 - engine / plain per round; the table gives the
median round and the range.
Peak memory is the growth of the resident set during the run (CPU; reset through
/proc/self/clear_refs) or ``torch.cuda.max_memory_allocated`` (CUDA).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from harness import (
    alternating_rounds,
    child_command,
    engine_images_per_s,
    reset_peak_rss,
    run_child,
    status_bytes,
)
from PIL import Image
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
from fcnlab.engine import train
from fcnlab.models.from_config import build_model_from_config
from fcnlab.runtime.precision import autocast

MODELS = {"fcn8s": "vgg16", "segnet": "vgg16_bn", "unet": "unet", "unet-r18": "resnet18"}
LOOPS = ("plain", "engine", "folder", "cached")
SEED = 0
LR = 1e-3


class RandomImages(Dataset):
    """``length`` random (3, size, size) images with random masks of ``num_classes``, in memory."""

    def __init__(self, length: int, size: int, num_classes: int) -> None:
        g = torch.Generator().manual_seed(0)
        # Multiples of 1/255, so that the folder's PNGs hold the same images.
        self.images = torch.randint(0, 256, (length, 3, size, size), generator=g) / 255
        self.masks = torch.randint(0, num_classes, (length, size, size), generator=g)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.masks[index]

    def write_folder(self, root: Path) -> None:
        """The images and masks as ``root/images/NNNNN.png`` and ``root/masks/NNNNN.png``."""
        for folder in ("images", "masks"):
            (root / folder).mkdir(parents=True)
        photos = (self.images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        for index, (photo, mask) in enumerate(zip(photos, self.masks.numpy(), strict=True)):
            Image.fromarray(photo).save(root / "images" / f"{index:05d}.png")
            Image.fromarray(mask.astype(np.uint8)).save(root / "masks" / f"{index:05d}.png")


def model_config(args: argparse.Namespace, name: str) -> ModelConfig:
    if name == "unet-r18":
        options = {"decoder_channels": [256, 128, 64, 32, 16], "upsample": args.upsample}
        return ModelConfig(name="unet", num_classes=args.num_classes, encoder="resnet18",
                           options=options)  # fmt: skip
    return ModelConfig(
        name=name, num_classes=args.num_classes, encoder=MODELS[name],
        options={"encoder_options": {"width": args.width}},
    )  # fmt: skip


def train_images(args: argparse.Namespace) -> RandomImages:
    """Exactly one epoch: the warm-up and the timed steps."""
    return RandomImages(args.batch * (args.steps + args.warmup), args.size, args.num_classes)


def build_optimizer(args: argparse.Namespace, model: nn.Module) -> torch.optim.Optimizer:
    """The engine's optimiser for these settings (its weight decay is 0 here)."""
    if args.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0)
    return torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)


def plain_loop(args: argparse.Namespace, name: str, device: torch.device) -> float:
    """Images/s of the textbook loop (torchvision's reference scripts): forward, loss, backward,
    step, and the loss read every step."""
    torch.manual_seed(SEED)  # the engine seeds the same way before it builds its model
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    model = build_model_from_config(model_config(args, name)).to(device)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model.to(memory_format=memory_format)
    optimizer = build_optimizer(args, model)
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp == "fp16")
    loader = DataLoader(train_images(args), batch_size=args.batch, shuffle=True, drop_last=True)
    loss_fn = nn.CrossEntropyLoss(ignore_index=255)
    model.train()
    start = 0.0
    for i, (images, masks) in enumerate(loader):
        images = images.to(device).contiguous(memory_format=memory_format)
        masks = masks.to(device)
        with autocast(device, args.amp):
            loss = loss_fn(model(images), masks)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        loss.item()
        if i + 1 == args.warmup:
            start = time.perf_counter()
    return args.batch * args.steps / (time.perf_counter() - start)


def engine_loop(
    args: argparse.Namespace,
    name: str,
    device: torch.device,
    from_folder: bool = False,
    cache: bool = False,
) -> float:
    """Images/s the engine measures over its training steps (one stage, no evaluation), on the
    in-memory images or (``from_folder``) on the same images read from PNG files, decoded into
    memory first with ``cache``."""
    with tempfile.TemporaryDirectory() as root:
        images = train_images(args)
        data = DataConfig(name="random")
        if from_folder:
            images.write_folder(Path(root) / "data")
            classes = [f"class_{i}" for i in range(args.num_classes)]
            data = DataConfig(
                name="folder", root=str(Path(root) / "data"), train_split="all",
                val_split="all", options={"classes": classes}, num_workers=args.workers,
                cache=cache,
            )  # fmt: skip
        config = Config(
            model=model_config(args, name),
            data=data,
            train=TrainConfig(
                batch_size=args.batch, device=device.type, log_every=args.warmup, seed=SEED,
                schedule="constant", optimizer=args.optimizer, momentum=0.9, weight_decay=0.0,
                amp=args.amp, channels_last=args.channels_last,
                cudnn_benchmark=args.cudnn_benchmark,
            ),
            stages=[StageConfig(name="bench", iterations=args.warmup + args.steps, lr=LR)],
            eval=EvalConfig(every_epochs=0, num_overlays=0),
            output=OutputConfig(root=str(Path(root) / "runs"), tensorboard=False, plots=False),
        )  # fmt: skip
        result = train(
            config,
            train_set=None if from_folder else images,
            val_set=RandomImages(1, args.size, args.num_classes),
            console=Console(quiet=True),
            progress=False,
        )
        # Log windows are `warmup` steps long; the first is the warmup.
        return engine_images_per_s(result.run_dir)


def measure(args: argparse.Namespace, loop: str, name: str, device: torch.device) -> dict:
    """One loop's images/s and peak memory growth in MiB (run in a fresh interpreter)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        base = reset_peak_rss()
    if loop == "plain":
        rate = plain_loop(args, name, device)
    else:
        from_folder = loop in ("folder", "cached")
        rate = engine_loop(args, name, device, from_folder, cache=loop == "cached")
    peak = (
        torch.cuda.max_memory_allocated(device) if device.type == "cuda" else status_bytes("VmHWM:")
    ) - base
    return {"images_per_s": rate, "peak_mib": peak / 2**20}


def run_loop(args: argparse.Namespace, loop: str, name: str, device: torch.device) -> dict:
    """``measure`` in a fresh interpreter with the same settings."""
    options = (
        "size", "batch", "steps", "warmup", "width", "threads", "num_classes", "optimizer",
        "workers", "upsample", "amp",
    )  # fmt: skip
    command = child_command(__file__, [loop, name, device.type], args, options)
    for flag in ("channels_last", "cudnn_benchmark"):
        command += [f"--{flag.replace('_', '-')}"] if getattr(args, flag) else []
    return run_child(command)


def compare(args: argparse.Namespace, name: str, device: torch.device) -> str:
    """``--pairs`` runs of the chosen loops in alternating order; one markdown row."""
    loops = [loop for loop in LOOPS if loop in args.loops]
    try:
        rows = alternating_rounds(
            loops, args.pairs, lambda loop: run_loop(args, loop, name, device)
        )
    except RuntimeError as error:
        return f"| {name} | {device.type} | error ({error}) |"
    rates = {loop: [r["images_per_s"] for r in rows[loop]] for loop in loops}
    cells = [f"{statistics.median(rates[loop]):.2f}" for loop in loops]
    for loop in loops[1:] if "plain" in rates else []:
        overheads = [100 * (1 - e / p) for p, e in zip(rates["plain"], rates[loop], strict=True)]
        cells.append(
            f"{statistics.median(overheads):+.1f}% ({min(overheads):+.1f}% .. "
            f"{max(overheads):+.1f}%)"
        )
    cells.append("/".join(f"{statistics.median(r['peak_mib'] for r in rows[loop]):.0f}"
                          for loop in loops))  # fmt: skip
    return f"| {name} | {device.type} | " + " | ".join(cells) + " |"


def header(loops: list[str]) -> str:
    """The table's heading and rule for the chosen loops."""
    names = {
        "plain": "plain (in memory)",
        "engine": "engine (in memory)",
        "folder": "engine (PNG folder)",
        "cached": "engine (PNG folder, data.cache)",
    }
    columns = [f"{names[loop]} img/s" for loop in loops]
    if "plain" in loops:
        columns += [f"{loop} overhead (median, range)" for loop in loops if loop != "plain"]
    columns.append("peak MiB " + "/".join(loops))
    rule = "|---|---|" + "---:|" * len(loops) + "---|" * (len(columns) - len(loops) - 1) + "---:|"
    return "| model | device | " + " | ".join(columns) + " |\n" + rule


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
    parser.add_argument("--num-classes", type=int, default=21)
    parser.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd")
    parser.add_argument(
        "--workers", type=int, default=0, help="DataLoader workers (folder, cached)"
    )
    parser.add_argument(
        "--upsample", choices=("bilinear", "nearest"), default="bilinear", help="unet-r18 decoder"
    )
    parser.add_argument("--amp", choices=("off", "bf16", "fp16"), default="off")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--cudnn-benchmark", action="store_true")
    parser.add_argument("--devices", nargs="+", choices=("cpu", "cuda"), default=None,
                        help="default: the CPU, and CUDA where there is one")  # fmt: skip
    parser.add_argument("--loops", nargs="+", choices=LOOPS, default=list(LOOPS))
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
    names = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    devices = [torch.device(name) for name in names]
    loops = [loop for loop in LOOPS if loop in args.loops]
    print(
        f"{args.size}x{args.size}, batch {args.batch}, {args.steps} timed steps after "
        f"{args.warmup}, width {args.width}, {args.num_classes} classes, {args.optimizer}, "
        f"unet-r18 upsample {args.upsample}, amp {args.amp}, channels_last "
        f"{args.channels_last}, cudnn.benchmark {args.cudnn_benchmark}, "
        f"{torch.get_num_threads()} threads, {args.workers} workers (folder, cached), {args.pairs} "
        f"alternating rounds of fresh processes, torch {torch.__version__}"
    )
    print()
    print(header(loops), flush=True)
    for device in devices:
        for name in args.models:
            print(compare(args, name, device), flush=True)


if __name__ == "__main__":
    main()
