"""Data-loading speed through a VOC-style training pipeline, with and without DataLoader workers.

Writes a small Pascal VOC 2012 layout of generated 500x375 photos (JPEG) and palette-PNG masks
in a temporary folder, then measures images per second for: decoding alone, decoding plus the
joint transforms (random scale 0.5-2, crop with ignore padding, flip, normalise) with the whole
image resized first and with ``train_transforms``' fused scale-crop, and a DataLoader over the
latter with 0 and 2 workers. One markdown table, measured in this run::

    python benchmarks/bench_data.py             # 64 images, crop 320, batch 8, workers 0 and 2
    python benchmarks/bench_data.py --quick     # 16 images, a smoke run
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from fcnlab.data import Shapes, build_dataset, train_transforms
from fcnlab.data import transforms as T
from fcnlab.data.palettes import voc_palette

WIDTH, HEIGHT = 500, 375


def write_voc(root: Path, count: int) -> None:
    """A VOC2012 layout with ``count`` generated JPEG photos and palette-PNG masks (21 classes,
    a 255 border around each object as in the real annotations)."""
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    shapes = Shapes(count, size=(HEIGHT, WIDTH), num_classes=7, scale=(0.1, 0.3))
    palette = voc_palette(256).flatten().tolist()
    ids = []
    for index in range(count):
        image, mask = shapes.load(index)
        name = f"2007_{index:06d}"
        photo = (image.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        Image.fromarray(photo).save(root / "JPEGImages" / f"{name}.jpg", quality=90)
        labels = mask.numpy().astype(np.uint8) * 3  # VOC class ids 3, 6, ... 18
        edges = np.zeros_like(labels, dtype=bool)
        edges[:, 1:] |= labels[:, 1:] != labels[:, :-1]
        edges[1:, :] |= labels[1:, :] != labels[:-1, :]
        labels[edges] = 255
        png = Image.fromarray(labels, mode="P")
        png.putpalette(palette)
        png.save(root / "SegmentationClass" / f"{name}.png")
        ids.append(name)
    (root / "ImageSets/Segmentation/train.txt").write_text("\n".join(ids) + "\n")


def unfused_transforms(crop: int) -> T.Compose:
    """``train_transforms`` with the whole image resized before cropping (torchvision's way)."""
    return T.Compose(
        [T.RandomScale(0.5, 2.0), T.RandomCrop(crop), T.RandomHorizontalFlip(), T.Normalize()]
    )


def images_per_second(epoch: Callable[[], int], epochs: int) -> float:
    """Images per second over ``epochs`` calls of ``epoch`` (which returns how many images it
    loaded), after one warm-up call that also starts the workers."""
    epoch()
    start = time.perf_counter()
    seen = sum(epoch() for _ in range(epochs))
    return seen / (time.perf_counter() - start)


def dataset_epoch(dataset: Dataset) -> Callable[[], int]:
    """One pass over ``dataset`` in this process, sample by sample."""

    def epoch() -> int:
        for index in range(len(dataset)):
            dataset[index]
        return len(dataset)

    return epoch


def loader_epoch(loader: DataLoader) -> Callable[[], int]:
    """One pass over ``loader``."""
    return lambda: sum(len(images) for images, _ in loader)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--crop", type=int, default=320)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--epochs", type=int, default=2)
    # Loading runs small ops on one image at a time; extra OpenMP threads in the main process
    # mostly wait on each other (DataLoader workers use one thread each).
    parser.add_argument("--threads", type=int, default=1, help="torch threads in this process")
    parser.add_argument("--quick", action="store_true", help="16 images, one epoch")
    args = parser.parse_args()
    if args.quick:
        args.images, args.epochs = 16, 1
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "VOC2012"
        write_voc(root, args.images)
        plain = build_dataset("voc", root, split="train")
        augmented = build_dataset(
            "voc", root, split="train", transforms=train_transforms(args.crop)
        )
        unfused = build_dataset(
            "voc", root, split="train", transforms=unfused_transforms(args.crop)
        )
        rows.append(("decode (JPEG + PNG)", images_per_second(dataset_epoch(plain), 1)))
        rate = images_per_second(dataset_epoch(unfused), 1)
        rows.append(("decode + resize whole, then crop/flip/normalise", rate))
        rate = images_per_second(dataset_epoch(augmented), 1)
        rows.append(("decode + train_transforms (fused scale-crop)", rate))
        for workers in args.workers:
            loader = DataLoader(
                augmented,
                batch_size=args.batch_size,
                shuffle=True,
                num_workers=workers,
                drop_last=True,
                persistent_workers=workers > 0,
            )
            label = f"DataLoader, batch {args.batch_size}, {workers} workers"
            rows.append((label, images_per_second(loader_epoch(loader), args.epochs)))
    print(
        f"{args.images} images of {WIDTH}x{HEIGHT}, crop {args.crop}, torch threads "
        f"{args.threads}, {os.cpu_count()} CPUs, torch {torch.__version__}\n"
    )
    print("| pipeline | images/s |\n|---|---:|")
    for label, rate in rows:
        print(f"| {label} | {rate:.1f} |")


if __name__ == "__main__":
    main()
