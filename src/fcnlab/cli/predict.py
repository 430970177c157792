"""``fcnlab predict``: label images of any size and write index masks, colour masks, overlays.

For each input image ``NAME.ext`` three PNGs at the image's own size go to the output folder:
``NAME_mask.png`` (class indices, 8-bit grey; 16-bit past 256 classes), ``NAME_color.png`` (the
classes' palette colours) and ``NAME_overlay.png`` (the colours blended over the image by
``--alpha``). ``--backend onnxruntime`` runs an exported ``.onnx`` file instead of PyTorch.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from rich.console import Console

from fcnlab.inference import Predictor, parse_tta, to_image_tensor
from fcnlab.viz.plots import colorize, overlay

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
BACKENDS = ("torch", "onnxruntime")


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    """``--tta``, ``--window``, ``--overlap``: the options shared by ``predict`` and ``eval``."""
    parser.add_argument(
        "--tta",
        default=None,
        metavar="SPEC",
        help="test-time augmentation, logits averaged: e.g. 'flip', 'flip,scales=0.75,1,1.25'",
    )
    parser.add_argument(
        "--window",
        type=int,
        default=None,
        metavar="PIXELS",
        help="sliding-window inference with square windows of this size (default: whole image)",
    )
    parser.add_argument(
        "--overlap",
        type=float,
        default=0.33,
        help="fraction of a window shared with its neighbour (default 0.33)",
    )


def inference_options(args: argparse.Namespace) -> dict[str, Any]:
    """``Predictor`` keyword arguments from the shared options."""
    if args.window is not None and args.window < 1:
        raise ValueError(f"--window {args.window} must be a positive number of pixels")
    if not 0.0 <= args.overlap < 1.0:
        raise ValueError(f"--overlap {args.overlap} must be in [0, 1)")
    return {"window": args.window, "overlap": args.overlap, "tta": parse_tta(args.tta)}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``predict`` sub-command."""
    parser = subparsers.add_parser(
        "predict", help="label images of any size: index masks, colour masks and overlays (PNG)"
    )
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="a checkpoint (.pt), weights (.safetensors) or, with --backend onnxruntime, .onnx",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--backend", choices=BACKENDS, default="torch", help="run with PyTorch or onnxruntime"
    )
    parser.add_argument("--config", default=None, help="the run's config, if the weights lack one")
    parser.add_argument("--alpha", type=float, default=0.5, help="overlay opacity in [0, 1]")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    add_inference_arguments(parser)
    parser.set_defaults(run=run)


def collect_images(inputs: Iterable[str | Path]) -> list[Path]:
    """Image files named directly or found in named folders (not recursive), in order; each
    output name must be unique."""
    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found.extend(sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        elif item.is_file():
            found.append(item)
        else:
            raise FileNotFoundError(f"input {str(item)!r} is neither an image file nor a folder")
    if not found:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {[str(i) for i in inputs]}")
    stems: dict[str, Path] = {}
    for path in found:
        if path.stem in stems:
            raise ValueError(
                f"inputs {str(stems[path.stem])!r} and {str(path)!r} would write the same "
                f"output names ({path.stem}_*.png); rename one or predict them separately"
            )
        stems[path.stem] = path
    return found


def index_mask_image(labels: np.ndarray) -> Image.Image:
    """Class indices (H, W) as an 8-bit grey PNG image, or 16-bit past 255."""
    if labels.max(initial=0) <= 255:
        return Image.fromarray(labels.astype(np.uint8))
    return Image.fromarray(labels.astype(np.uint16))


def write_prediction(
    image: torch.Tensor,
    labels: torch.Tensor,
    palette: np.ndarray,
    out: Path,
    stem: str,
    alpha: float,
) -> list[Path]:
    """Write ``stem``'s index mask, colour mask and overlay to ``out``; return their paths."""
    array = labels.numpy()
    paths = [out / f"{stem}_{kind}.png" for kind in ("mask", "color", "overlay")]
    index_mask_image(array).save(paths[0])
    Image.fromarray(colorize(array, palette, ignore_index=None)).save(paths[1])
    Image.fromarray(overlay(image, array, palette, alpha, ignore_index=None)).save(paths[2])
    return paths


def run(args: argparse.Namespace) -> int:
    """Load the model once, then label every input image."""
    if not 0.0 <= args.alpha <= 1.0:
        raise ValueError(f"--alpha {args.alpha} must be in [0, 1]")
    is_onnx = Path(args.checkpoint).suffix == ".onnx"
    if is_onnx != (args.backend == "onnxruntime"):
        raise ValueError(
            f"--backend {args.backend} cannot run {args.checkpoint!r}: onnxruntime runs .onnx "
            "files (from `fcnlab export --format onnx`), torch runs .pt and .safetensors"
        )
    images = collect_images(args.inputs)
    predictor = Predictor(
        args.checkpoint, args.device, config=args.config, **inference_options(args)
    )
    assert predictor.metadata is not None
    palette = predictor.metadata.palette_array()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    console = Console(highlight=False)
    for path in images:
        image = to_image_tensor(path)
        prediction = predictor.predict(image)
        write_prediction(image, prediction.labels, palette, out, path.stem, args.alpha)
        console.print(f"{path} -> {out / path.stem}_{{mask,color,overlay}}.png", markup=False)
    console.print(f"wrote {3 * len(images)} PNGs for {len(images)} images to {out}", markup=False)
    return 0
