"""``fcnlab predict``: label images of any size and write index masks, colour masks, overlays.

For each input image ``NAME.ext`` three PNGs at the image's own size go to the output folder:
``NAME_mask.png`` (class indices, 8-bit grey; 16-bit past 256 classes), ``NAME_color.png`` (the
classes' palette colours) and ``NAME_overlay.png`` (the colours blended over the image by
``--alpha``). ``--backend onnxruntime`` runs an exported ``.onnx`` file instead of PyTorch.

A detector (a model whose ``task`` is ``"detection"``) draws its boxes, class names and scores
on each image instead (``NAME_boxes.png``) and writes all detections, those scoring at least
``--score-threshold``, to ``detections.json`` in COCO's format: "images" (id, file_name,
height, width), "categories" (id = label + 1, name) and "annotations", COCO result entries
(image_id, category_id, bbox [x, y, w, h] in pixels, score) with an "id" each, so that
pycocotools reads the file with ``COCO(path)`` and the list with ``COCO.loadRes``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from torch import nn

from fcnlab.data.transforms import normalize
from fcnlab.detection_eval import detections_to_coco
from fcnlab.engine.detection_evaluate import detect
from fcnlab.engine.tasks import model_task
from fcnlab.inference import (
    TTA,
    ModelMetadata,
    Predictor,
    load_trained,
    parse_tta,
    resolve_device,
    to_image_tensor,
)
from fcnlab.viz.detection import draw_detections
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
        "predict",
        help="label images of any size: index masks, colour masks and overlays (PNG); "
        "detectors: boxes drawn on the images and COCO-format detections.json",
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
    parser.add_argument(
        "--score-threshold",
        type=float,
        default=0.3,
        help="detectors: keep boxes scoring at least this (default 0.3; COCO evaluation uses 0.05)",
    )
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


def write_detections(
    model: nn.Module,
    metadata: ModelMetadata,
    images: list[Path],
    out: Path,
    device: torch.device,
    score_threshold: float,
    console: Console,
) -> Path:
    """Draw each image's boxes (``NAME_boxes.png``) and write all detections as COCO-format
    results (``detections.json``); return the JSON's path."""
    model.to(device).eval()
    out.mkdir(parents=True, exist_ok=True)
    palette = metadata.palette_array()
    entries, listed = [], []
    for image_id, path in enumerate(images):
        image = to_image_tensor(path)
        batch = normalize(image[None], metadata.mean, metadata.std)
        found = detect(model, batch, score_threshold=score_threshold)[0]
        drawn = draw_detections(
            image, found["boxes"], found["labels"], found["scores"], metadata.classes, palette
        )
        drawn.save(out / f"{path.stem}_boxes.png")
        listed.append(
            {"id": image_id, "file_name": str(path), "height": image.shape[1],
             "width": image.shape[2]}
        )  # fmt: skip
        entries += detections_to_coco([found], [image_id])
        console.print(
            f"{path} -> {out / path.stem}_boxes.png ({len(found['scores'])} boxes)", markup=False
        )
    for k, entry in enumerate(entries):
        entry["id"] = k + 1
    results = {
        "images": listed,
        "categories": [{"id": k + 1, "name": name} for k, name in enumerate(metadata.classes)],
        "annotations": entries,
    }
    path = out / "detections.json"
    path.write_text(json.dumps(results, indent=1) + "\n")
    return path


def run(args: argparse.Namespace) -> int:
    """Load the model once, then label every input image (or find its objects)."""
    if not 0.0 <= args.alpha <= 1.0:
        raise ValueError(f"--alpha {args.alpha} must be in [0, 1]")
    if not 0.0 <= args.score_threshold <= 1.0:
        raise ValueError(f"--score-threshold {args.score_threshold} must be in [0, 1]")
    is_onnx = Path(args.checkpoint).suffix == ".onnx"
    if is_onnx != (args.backend == "onnxruntime"):
        raise ValueError(
            f"--backend {args.backend} cannot run {args.checkpoint!r}: onnxruntime runs .onnx "
            "files (from `fcnlab export --format onnx`), torch runs .pt and .safetensors"
        )
    images = collect_images(args.inputs)
    options = inference_options(args)
    out = Path(args.out)
    console = Console(highlight=False)
    if is_onnx:
        predictor = Predictor(args.checkpoint, args.device, config=args.config, **options)
    else:
        model, metadata = load_trained(args.checkpoint, args.config)
        if model_task(model) == "detection":
            if options["window"] is not None or options["tta"] != TTA():
                raise ValueError(
                    f"--tta and --window apply to segmentation models; {args.checkpoint!r} "
                    "holds a detector"
                )
            device = resolve_device(args.device)
            written = write_detections(
                model, metadata, images, out, device, args.score_threshold, console
            )
            console.print(
                f"wrote {len(images)} pictures with boxes and {written} to {out}", markup=False
            )
            return 0
        predictor = Predictor(model, args.device, metadata=metadata, **options)
    assert predictor.metadata is not None
    out.mkdir(parents=True, exist_ok=True)
    palette = predictor.metadata.palette_array()
    for path in images:
        image = to_image_tensor(path)
        prediction = predictor.predict(image)
        write_prediction(image, prediction.labels, palette, out, path.stem, args.alpha)
        console.print(f"{path} -> {out / path.stem}_{{mask,color,overlay}}.png", markup=False)
    console.print(f"wrote {3 * len(images)} PNGs for {len(images)} images to {out}", markup=False)
    return 0
