"""``fcnlab export``: a checkpoint to ONNX, safetensors or TorchScript, metadata included.

An ONNX export is also run once with onnxruntime against PyTorch at two sizes (one odd), and the
largest difference over the graph's outputs (a segmentation model's logits, a detector's head
maps) is printed, so a broken export is noticed where it was made. On a terminal a status line
says what is being done meanwhile.
"""

from __future__ import annotations

import argparse

import torch
from rich.console import Console

from fcnlab.inference.export import (
    OPSET,
    ExportGraph,
    export_checkpoint,
    export_formats,
    export_graph,
)
from fcnlab.inference.onnx_backend import OnnxModel
from fcnlab.runtime.console import print_literal, status

# The sizes an ONNX export is checked at: square and odd, neither a multiple of 32.
CHECK_SIZES = ((64, 64), (45, 77))


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export`` sub-command."""
    parser = subparsers.add_parser(
        "export", help="export a checkpoint to ONNX, safetensors or TorchScript with its metadata"
    )
    parser.add_argument(
        "--checkpoint", required=True, help="a checkpoint (.pt) or weights (.safetensors)"
    )
    parser.add_argument("--format", required=True, choices=export_formats(), dest="fmt")
    parser.add_argument("--out", required=True, help="the file to write")
    parser.add_argument("--config", default=None, help="the run's config, if the weights lack one")
    parser.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (default {OPSET})")
    parser.set_defaults(run=run)


def onnx_max_difference(graph: ExportGraph, path: str, sizes: tuple[tuple[int, int], ...]) -> float:
    """The largest |onnxruntime - PyTorch| difference over ``graph``'s outputs (on the CPU) on
    random inputs of ``sizes``."""
    exported = OnnxModel(path)
    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    with torch.no_grad():
        for height, width in sizes:
            images = torch.randn(1, 3, height, width, generator=generator)
            found = exported.outputs(images)
            for name, expected in zip(graph.names, graph.module(images), strict=True):
                worst = max(worst, float((found[name] - expected).abs().max()))
    return worst


def run(args: argparse.Namespace) -> int:
    """Load the checkpoint, export it, check an ONNX export with onnxruntime."""
    options = {"opset": args.opset} if args.fmt == "onnx" else {}
    console = Console(highlight=False)
    with status(console, f"exporting {args.checkpoint} as {args.fmt} to {args.out}"):
        path, model, metadata = export_checkpoint(
            args.checkpoint, args.fmt, args.out, args.config, **options
        )
    print_literal(
        console,
        f"wrote {path} ({args.fmt}, {metadata.name}, {metadata.num_classes} classes: "
        f"{', '.join(metadata.classes[:6])}{', ...' if metadata.num_classes > 6 else ''})",
    )
    if args.fmt == "onnx":
        sizes = ", ".join(f"{h}x{w}" for h, w in CHECK_SIZES)
        with status(console, f"checking {path} with onnxruntime at {sizes}"):
            graph = export_graph(model.cpu().eval())
            difference = onnx_max_difference(graph, str(path), CHECK_SIZES)
        console.print(
            f"onnxruntime vs PyTorch at {sizes}: max |difference| {difference:.2e} "
            f"over {', '.join(graph.names)}"
        )
    return 0
