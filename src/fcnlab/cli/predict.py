"""``fcnlab predict``: run a trained model on images of any size and write what it finds.

What is written depends on the model's task (see each task's ``write_predictions``):

* a segmentation model writes, per input image ``NAME.ext``, three PNGs at the image's own size:
  ``NAME_mask.png`` (class indices, 8-bit grey; 16-bit past 256 classes), ``NAME_color.png``
  (the classes' palette colours) and ``NAME_overlay.png`` (the colours blended over the image by
  ``--alpha``); ``--backend onnxruntime`` runs an exported ``.onnx`` file instead of PyTorch;
* a detector draws its boxes, class names and scores on each image (``NAME_boxes.png``) and
  writes all detections scoring at least ``--score-threshold`` to ``detections.json`` in COCO's
  format; with ``--backend onnxruntime`` an exported ``.onnx`` file computes its head outputs
  and fcnlab decodes them as it decodes PyTorch's;
* an instance segmentation model draws each instance scoring at least ``--score-threshold`` in
  its own colour, outlined and captioned with its class name and score (``NAME_instances.png``),
  writes an instance-id map (``NAME_instance_ids.png``, 16-bit grey: 0 background, ``k`` the
  image's ``k``-th instance in ``instances.json``) and all instances to ``instances.json``,
  COCO results with RLE masks at each image's stored size; with ``--backend onnxruntime`` an
  exported ``.onnx`` file computes its raw outputs and fcnlab decodes them as PyTorch's.

An image that cannot be read (truncated, not an image) does not stop the others: every other
image is written, the unreadable ones are listed at the end with the reason, and the exit status
is 1. On a terminal, progress bars follow the images and the sliding windows of a large one.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

from rich.console import Console

from fcnlab.cli.options import add_inference_arguments, check_dense_options, inference_options
from fcnlab.inference import load_trained
from fcnlab.inference.export import onnx_metadata
from fcnlab.runtime.console import Bars, error_line, print_literal
from fcnlab.tasks import task_of, task_of_model_name

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
BACKENDS = ("torch", "onnxruntime")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``predict`` sub-command."""
    parser = subparsers.add_parser(
        "predict",
        help="label images of any size: index masks, colour masks and overlays (PNG); "
        "detectors: boxes drawn on the images and COCO-format detections.json; instance "
        "models: instances drawn, instance-id PNGs and COCO-format instances.json (RLE masks)",
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
        help="detectors and instance models: keep objects scoring at least this (default 0.3; "
        "COCO evaluation uses 0.05)",
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


def run(args: argparse.Namespace) -> int:
    """Load the model once, then hand every input image to its task's prediction writer."""
    options = inference_options(args)
    is_onnx = Path(args.checkpoint).suffix == ".onnx"
    if is_onnx != (args.backend == "onnxruntime"):
        raise ValueError(
            f"--backend {args.backend} cannot run {args.checkpoint!r}: onnxruntime runs .onnx "
            "files (from `fcnlab export --format onnx`), torch runs .pt and .safetensors"
        )
    images = collect_images(args.inputs)
    if is_onnx:
        model, metadata = Path(args.checkpoint), onnx_metadata(args.checkpoint)
        task = task_of_model_name(metadata.name)
    else:
        model, metadata = load_trained(args.checkpoint, args.config)
        task = task_of(model)
    check_dense_options(options, task, repr(args.checkpoint))
    console = Console(highlight=False)
    with Bars(console) as bars:
        result = task.write_predictions(
            model, metadata, images, Path(args.out), options, console, bars
        )
    if not result.unreadable:
        return 0
    count, errors = len(result.unreadable), Console(stderr=True)
    message = f"{count} of {len(images)} images could not be read and have no predictions:"
    print_literal(errors, error_line(message))
    for problem in result.unreadable:
        print_literal(errors, f"  {problem.file}: {problem.reason}")
    return 1
