"""Inference speed and memory: PyTorch eager, ``torch.compile`` and onnxruntime side by side,
and sliding-window inference on a street-scene-sized image.

Rows 1-3 per model: images/s at (1, 3, S, S) (default 512) through the same weights run by
PyTorch eager, ``torch.compile`` (inductor) and onnxruntime (the file
``fcnlab.inference.export`` writes,
CPU execution provider). Rows 4-5: a 2048x1024 image (H=1024, W=2048) labelled whole and by
``fcnlab.inference.sliding_window`` with 512-pixel windows and 0.33 overlap, one window at a
time: images/s and peak memory, which for the windows is bounded by the window, not the image.

Every row runs in a fresh interpreter, warmed up first. Peak memory is the growth of the peak
resident set (``VmHWM``, reset through ``/proc/self/clear_refs``) over the resident set once
the model is loaded (CPU), or of ``torch.cuda.max_memory_allocated`` (CUDA)::

    python benchmarks/bench_inference.py                  # 512x512 and 2048x1024, median of 3
    python benchmarks/bench_inference.py --quick          # width 1/8, 128 px, 256x512: smoke run
    python benchmarks/bench_inference.py --models unet --variants eager onnxruntime
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
from harness import median_ms, reset_peak_rss, run_child, status_bytes

from fcnlab.inference import ModelMetadata, sliding_window
from fcnlab.inference.export import export_onnx
from fcnlab.inference.metadata import default_palette
from fcnlab.models import build_model

MODELS = ("fcn8s", "unet")
VARIANTS = ("eager", "compile", "onnxruntime", "whole", "sliding")
NUM_CLASSES = 21


def tiny_metadata(name: str, width: float) -> ModelMetadata:
    """Metadata for a benchmark export (numbered classes, the VOC colours)."""
    return ModelMetadata(
        name=name,
        num_classes=NUM_CLASSES,
        classes=[str(i) for i in range(NUM_CLASSES)],
        palette=default_palette(NUM_CLASSES),
        options={"encoder_options": {"width": width}},
    )


def make_model(name: str, width: float) -> torch.nn.Module:
    """fcnlab's ``build_model(name)`` at ``width``, seeded, in eval mode."""
    torch.manual_seed(0)
    return build_model(name, NUM_CLASSES, encoder_options={"width": width}).eval()


def measure(args: argparse.Namespace, name: str, variant: str, onnx_path: str | None) -> dict:
    """One row in this process: milliseconds per image and peak memory growth."""
    device = torch.device(args.device if variant != "onnxruntime" else "cpu")
    big = variant in ("whole", "sliding")
    shape = (1, 3, *args.large) if big else (1, 3, args.size, args.size)
    image = torch.randn(*shape, device=device)
    if variant == "onnxruntime":
        from fcnlab.inference.onnx_backend import OnnxModel

        forward = OnnxModel(onnx_path or "")
    else:
        model = make_model(name, args.width).to(device)
        forward = torch.compile(model) if variant == "compile" else model
    if variant == "sliding":
        network = forward

        def forward(x: torch.Tensor) -> torch.Tensor:
            return sliding_window(network, x, args.window, args.overlap, batch_size=1)

    def run() -> torch.Tensor:
        with torch.inference_mode():
            return forward(image)

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = reset_peak_rss()
    ms = median_ms(run, args.repeats, device)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = status_bytes("VmHWM:") - base
    return {"ms": ms, "peak": peak, "shape": list(shape)}


def run_row(args: argparse.Namespace, name: str, variant: str, onnx_path: str | None) -> dict:
    """``measure`` in a fresh interpreter (clean peak memory and compile caches)."""
    command = [sys.executable, __file__, "--child", name, variant, "--onnx", onnx_path or ""]
    command += ["--size", str(args.size), "--width", str(args.width), "--repeats"]
    command += [str(args.repeats), "--device", args.device, "--threads", str(args.threads)]
    command += ["--large", *map(str, args.large), "--window", str(args.window)]
    command += ["--overlap", str(args.overlap)]
    return run_child(command)


def format_row(name: str, variant: str, row: dict, eager: dict | None) -> str:
    """One markdown row; the speed-up compares with the eager row at the same size."""
    label = {
        "eager": "PyTorch eager",
        "compile": "torch.compile",
        "onnxruntime": "onnxruntime (CPU EP)",
        "whole": "PyTorch eager, whole image",
        "sliding": "PyTorch eager, sliding window",
    }[variant]
    if "error" in row:
        return f"| {name} | {label} | | | | error: {row['error']} |"
    size = "x".join(map(str, row["shape"][2:]))
    note = ""
    if eager is not None and "error" not in eager and variant in ("compile", "onnxruntime"):
        note = f"x{eager['ms'] / row['ms']:.2f} vs eager"
    return (
        f"| {name} | {label} | {size} | {1000 / row['ms']:.2f} | {row['peak'] / 2**20:.0f} | "
        f"{note} |"
    )


def main() -> None:
    """Parse arguments, export the ONNX files, run every (model, variant) row, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="width 1/8, 128 px, 256x512, 1 run")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--large", type=int, nargs=2, default=[1024, 2048], metavar=("H", "W"))
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--overlap", type=float, default=0.33)
    parser.add_argument("--width", type=float, default=1.0, help="encoder channel multiplier")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "VARIANT"), help=argparse.SUPPRESS)
    parser.add_argument("--onnx", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(measure(args, *args.child, args.onnx)))
        return
    if args.quick:
        args.size, args.width, args.repeats = 128, 0.125, 1
        args.large, args.window = [256, 512], 128
    print(
        f"float32 on {args.device} (onnxruntime: CPU), width {args.width}, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}; "
        f"sliding: window {args.window}, overlap {args.overlap}, 1 window per forward"
    )
    print()
    print("| model | backend | input HxW | images/s | peak MB | |")
    print("|---|---|---:|---:|---:|---|", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            onnx_path = None
            if "onnxruntime" in args.variants:
                onnx_path = str(Path(folder) / f"{name}.onnx")
                model = make_model(name, args.width)
                export_onnx(model, tiny_metadata(name, args.width), onnx_path)
            eager = None
            for variant in args.variants:
                row = run_row(args, name, variant, onnx_path)
                eager = row if variant == "eager" else eager
                print(format_row(name, variant, row, eager), flush=True)


if __name__ == "__main__":
    main()
