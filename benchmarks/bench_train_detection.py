"""Detection training throughput: FCOS on ResNet-18 through fcnlab's engine, a plain PyTorch loop
and, where torchvision is installed, torchvision's FCOS, on the same images.

    python benchmarks/bench_train_detection.py          # 128x128, batch 16, 10 classes, AdamW
    python benchmarks/bench_train_detection.py --steps 2 --warmup 1 --rounds 1   # quick
    PYTHONPATH=src /tmp/peers/bin/python benchmarks/bench_train_detection.py --threads 1

Issue 16's detection row in miniature: FCOS with a ResNet-18 encoder from random initialisation
(fcnlab's ``build_model("fcos", encoder="resnet18")``: FPN P3-P7 of 256 channels, GroupNorm
towers of 4 convolutions, centre sampling) at 128x128, batch 16, 10 classes, AdamW (lr 1e-3, no
weight decay), trained for ``--steps`` timed steps after ``--warmup`` untimed ones, by

- ``plain``: a plain PyTorch loop over in-memory tensors calling the model's own loss
  (``model.loss(model(images), targets)["loss"]``), the way torchvision's reference scripts train;
- ``engine``: ``fcnlab.engine.train`` over the same in-memory samples;
- ``coco``: the engine reading the same images and boxes from a COCO-format folder (PNGs under
  ``images/`` and ``annotations.json``, written to a temporary folder before the clock starts;
  the ``coco`` data set, ``--workers`` DataLoader workers), the whole pipeline as users have it;
- ``torchvision`` (where it is importable): ``torchvision.models.detection.FCOS`` on a ResNet-18
  FPN built as ``fcos_resnet50_fpn`` builds its ResNet-50 one (returned layers 2-4, P6 and P7 from
  P5, BatchNorm, every layer trainable, no weights), ``min_size = max_size`` = the image size (so
  its transform keeps the size) and its ImageNet normalisation, which fcnlab's data sets apply
  too; the same plain loop, the model's own losses summed.

The data (:class:`RandomBoxes`) is deterministic: random pixels with 1 to 6 boxes each of 12 to
64 pixels a side, each filled with its class's colour; the images are multiples of 1/255, so the
PNGs hold the same data, and the in-memory loops train on the normalised tensors the ``coco``
data set gives. Every model is built after ``torch.manual_seed(0)``.

The plain loops' clock runs from the end of their last warm-up step to the end of their last step;
the engine's rate is what it logs itself over the same steps (log windows of ``--warmup`` steps,
the first being the warm-up, so ``--steps`` must be a multiple of ``--warmup``). The plain loops
also time the model's loss call (targets and losses, forward only: ``FCOS.loss`` for fcnlab,
``FCOS.compute_loss`` with its matching for torchvision) and give its share of the step.

Every run is a fresh interpreter and the loops run ``--rounds`` times in alternating order
(:func:`harness.alternating_rounds`). Ratios are of the time per image, per round, against the
plain fcnlab loop and against torchvision's (above 1 is slower); the table gives the median
round and the range. Peak memory is the growth of the resident set during a run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from harness import (
    alternating_rounds,
    child_command,
    engine_images_per_s,
    median_range,
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
from fcnlab.data import eval_transforms
from fcnlab.data.targets import Target, make_target
from fcnlab.engine import train
from fcnlab.models.from_config import build_model_from_config

LOOPS = ("plain", "engine", "coco", "torchvision")
NAMES = {
    "plain": "fcnlab, plain loop (in memory)",
    "engine": "fcnlab engine (in memory)",
    "coco": "fcnlab engine (COCO folder)",
    "torchvision": "torchvision FCOS, plain loop (in memory)",
}
SEED = 0
LR = 1e-3
# Boxes per image and box sides in pixels.
BOXES_PER_IMAGE = (1, 6)
BOX_SIDES = (12, 64)
MODEL = ModelConfig(name="fcos", num_classes=10, encoder="resnet18")


class RandomBoxes(Dataset):
    """``length`` random (3, size, size) images in memory, each with 1 to 6 boxes of
    ``num_classes`` classes painted in; ``ds[i]`` is ``(image, target)``, the image normalised
    as fcnlab's data sets give it (``normalize=False``: in [0, 1])."""

    def __init__(self, length: int, size: int, num_classes: int, normalize: bool = True) -> None:
        g = torch.Generator().manual_seed(0)
        pixels = torch.randint(0, 256, (length, 3, size, size), generator=g, dtype=torch.uint8)
        colours = torch.randint(0, 256, (num_classes, 3), generator=g, dtype=torch.uint8)
        self.targets: list[Target] = []
        for index in range(length):
            count = int(torch.randint(BOXES_PER_IMAGE[0], BOXES_PER_IMAGE[1] + 1, (), generator=g))
            side = torch.randint(BOX_SIDES[0], BOX_SIDES[1] + 1, (count, 2), generator=g)
            corner = (torch.rand(count, 2, generator=g) * (size - side + 1)).long()
            labels = torch.randint(0, num_classes, (count,), generator=g)
            boxes = torch.cat((corner, corner + side), dim=1)
            for (x1, y1, x2, y2), label in zip(boxes.tolist(), labels.tolist(), strict=True):
                pixels[index, :, y1:y2, x1:x2] = colours[label][:, None, None]
            self.targets.append(make_target(boxes.float(), labels, index + 1, (size, size)))
        self.pixels = pixels
        self.num_classes = num_classes
        self.images = pixels / 255
        if normalize:
            # fcnlab's own evaluation pipeline: exactly what the COCO data set gives.
            normalise = eval_transforms()
            self.images = torch.stack(
                [
                    normalise(image, target)[0]
                    for image, target in zip(self.images, self.targets, strict=True)
                ]
            )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Target]:
        return self.images[index], self.targets[index]

    def write_coco(self, root: Path) -> None:
        """The images as ``root/images/NNNNN.png`` and their boxes as ``root/annotations.json``
        (category ids from 1, class k being id k + 1)."""
        (root / "images").mkdir(parents=True)
        images, annotations = [], []
        photos = self.pixels.permute(0, 2, 3, 1).numpy()
        for index, (photo, target) in enumerate(zip(photos, self.targets, strict=True)):
            name = f"{index:05d}.png"
            Image.fromarray(np.ascontiguousarray(photo)).save(root / "images" / name)
            height, width = photo.shape[:2]
            images.append({"id": target["image_id"], "file_name": name, "height": height,
                           "width": width})  # fmt: skip
            for (x1, y1, x2, y2), label in zip(
                target["boxes"].tolist(), target["labels"].tolist(), strict=True
            ):
                w, h = x2 - x1, y2 - y1
                annotations.append({
                    "id": len(annotations) + 1, "image_id": target["image_id"],
                    "category_id": label + 1, "bbox": [x1, y1, w, h], "area": w * h,
                    "iscrowd": 0,
                })  # fmt: skip
        categories = [{"id": k + 1, "name": f"class_{k}"} for k in range(self.num_classes)]
        coco = {"images": images, "annotations": annotations, "categories": categories}
        (root / "annotations.json").write_text(json.dumps(coco))


def train_images(args: argparse.Namespace, normalize: bool = True) -> RandomBoxes:
    """Exactly one epoch: the warm-up and the timed steps."""
    length = args.batch * (args.steps + args.warmup)
    return RandomBoxes(length, args.size, args.num_classes, normalize)


def stack_batch(batch: Sequence[tuple[torch.Tensor, Target]]) -> tuple[torch.Tensor, list]:
    """Images stacked, targets as a list: the textbook detection collate."""
    return torch.stack([image for image, _ in batch]), [target for _, target in batch]


class Stopwatch:
    """Wraps a callable and adds up the seconds spent in it while ``running``."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn, self.seconds, self.running = fn, 0.0, False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        result = self.fn(*args, **kwargs)
        self.seconds += (time.perf_counter() - start) * self.running
        return result


def fcnlab_model(args: argparse.Namespace) -> nn.Module:
    """fcnlab's FCOS-R18 as the engine builds it, after the engine's seeding."""
    torch.manual_seed(SEED)
    config = ModelConfig(name=MODEL.name, num_classes=args.num_classes, encoder=MODEL.encoder)
    return build_model_from_config(config)


def torchvision_model(args: argparse.Namespace) -> nn.Module:
    """torchvision's FCOS on a ResNet-18 FPN, built as ``fcos_resnet50_fpn`` builds its own."""
    from torchvision.models import resnet18
    from torchvision.models.detection import FCOS
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.ops.feature_pyramid_network import LastLevelP6P7

    torch.manual_seed(SEED)
    backbone = _resnet_fpn_extractor(
        resnet18(weights=None), 5, returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(256, 256)
    )
    return FCOS(backbone, args.num_classes, min_size=args.size, max_size=args.size)


def plain_loop(args: argparse.Namespace, peer: bool) -> dict[str, float]:
    """Images/s of the textbook loop (forward with the loss, backward, step, the loss read every
    step) and the share of the timed steps spent in the model's loss call: fcnlab's model on
    normalised images, or (``peer``) torchvision's on images in [0, 1]."""
    model = torchvision_model(args) if peer else fcnlab_model(args)
    if peer:
        model.compute_loss = watch = Stopwatch(model.compute_loss)

        def step_loss(images: torch.Tensor, targets: list[Target]) -> torch.Tensor:
            return sum(model(list(images), targets).values())
    else:
        watch = Stopwatch(model.loss)

        def step_loss(images: torch.Tensor, targets: list[Target]) -> torch.Tensor:
            return watch(model(images), targets)["loss"]

    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0)
    loader = DataLoader(
        train_images(args, normalize=not peer), batch_size=args.batch, shuffle=True,
        drop_last=True, collate_fn=stack_batch,
    )  # fmt: skip
    model.train()
    start = 0.0
    for i, (images, targets) in enumerate(loader):
        loss = step_loss(images, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()
        if i + 1 == args.warmup:
            start, watch.running = time.perf_counter(), True
    seconds = time.perf_counter() - start
    return {
        "images_per_s": args.batch * args.steps / seconds,
        "loss_share": watch.seconds / seconds,
    }


def engine_loop(args: argparse.Namespace, from_folder: bool) -> dict[str, float]:
    """Images/s the engine logs over its training steps (one stage, no evaluation before the
    end), on the in-memory samples or (``from_folder``) on the same data from a COCO folder."""
    with tempfile.TemporaryDirectory() as root:
        images = train_images(args)
        data = DataConfig(name="random")
        if from_folder:
            images.write_coco(Path(root) / "coco")
            data = DataConfig(
                name="coco", root=str(Path(root) / "coco"), train_split="train",
                val_split="train", num_workers=args.workers,
                options={"annotations": "annotations.json", "images": "images",
                         "categories": "file"},
            )  # fmt: skip
        config = Config(
            model=ModelConfig(name=MODEL.name, num_classes=args.num_classes, encoder=MODEL.encoder),
            data=data,
            train=TrainConfig(
                batch_size=args.batch, device="cpu", log_every=args.warmup, seed=SEED,
                schedule="constant", optimizer="adamw", weight_decay=0.0,
            ),
            stages=[StageConfig(name="bench", iterations=args.warmup + args.steps, lr=LR)],
            eval=EvalConfig(every_epochs=0, num_overlays=0),
            output=OutputConfig(root=str(Path(root) / "runs"), tensorboard=False, plots=False),
        )  # fmt: skip
        result = train(
            config,
            train_set=None if from_folder else images,
            val_set=RandomBoxes(1, args.size, args.num_classes),
            console=Console(quiet=True),
            progress=False,
        )
        return {"images_per_s": engine_images_per_s(result.run_dir)}


def measure(args: argparse.Namespace, loop: str) -> dict[str, float]:
    """One loop's images/s (and loss share) and peak memory growth in MiB."""
    base = reset_peak_rss()
    if loop in ("plain", "torchvision"):
        row = plain_loop(args, peer=loop == "torchvision")
    else:
        row = engine_loop(args, from_folder=loop == "coco")
    return {**row, "peak_mib": (status_bytes("VmHWM:") - base) / 2**20}


def run_loop(args: argparse.Namespace, loop: str) -> dict:
    """``measure`` in a fresh interpreter with the same settings."""
    options = ("size", "batch", "steps", "warmup", "threads", "num_classes", "workers")
    return run_child(child_command(__file__, [loop], args, options))


def table(args: argparse.Namespace, loops: list[str]) -> list[str]:
    """The markdown table: one row per loop."""
    try:
        rows = alternating_rounds(loops, args.rounds, lambda loop: run_loop(args, loop))
    except RuntimeError as error:
        return [f"| error | {error} |"]
    rates = {loop: [r["images_per_s"] for r in rows[loop]] for loop in loops}
    lines = [
        "| loop | img/s | time/img vs plain | time/img vs torchvision | loss share | peak MiB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for loop in loops:
        cells = [NAMES[loop], median_range(rates[loop], 1)]
        for reference in ("plain", "torchvision"):
            if reference not in rates:
                cells.append("-")
                continue
            ratios = [r / own for own, r in zip(rates[loop], rates[reference], strict=True)]
            cells.append(median_range(ratios))
        shares = [r["loss_share"] for r in rows[loop] if "loss_share" in r]
        cells.append(f"{100 * statistics.median(shares):.1f}%" if shares else "-")
        cells.append(f"{statistics.median(r['peak_mib'] for r in rows[loop]):.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each loop, alternating")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (coco)")
    parser.add_argument("--loops", nargs="+", choices=LOOPS, default=list(LOOPS))
    parser.add_argument("--child", nargs=1, metavar="LOOP", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.steps % args.warmup:
        parser.error(f"--steps {args.steps} must be a multiple of --warmup {args.warmup}")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(measure(args, args.child[0])))
        return
    loops = [loop for loop in LOOPS if loop in args.loops]
    try:
        import torchvision
    except ImportError:
        loops = [loop for loop in loops if loop != "torchvision"]
        peer = "torchvision not installed"
    else:
        peer = f"torchvision {torchvision.__version__}"
    if not loops:
        parser.error("torchvision is not installed here: choose fcnlab's loops too")
    print(
        f"FCOS-R18, {args.size}x{args.size}, batch {args.batch}, {args.num_classes} classes, "
        f"AdamW lr {LR}, {args.steps} timed steps after {args.warmup}, CPU, "
        f"{torch.get_num_threads()} threads, {args.workers} workers (coco), {args.rounds} "
        f"alternating rounds of fresh processes, torch {torch.__version__}, {peer}"
    )
    print()
    print("\n".join(table(args, loops)), flush=True)


if __name__ == "__main__":
    main()
