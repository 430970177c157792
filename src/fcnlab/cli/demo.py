"""``fcnlab demo``: the story of fully convolutional learning, end to end on built-in data."""

from __future__ import annotations

import argparse

from fcnlab.demo import run_demo
from fcnlab.demo_detection import RUN_NAME, run_detection_demo

TASKS = ("segmentation", "detection")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` sub-command."""
    parser = subparsers.add_parser(
        "demo",
        help="classifier -> convolutionalized -> FCN-8s on built-in Shapes data (no download); "
        "--task detection: CenterNet on the same shapes",
        description="Train a small VGG-16 classifier on Shapes, convolutionalize it into the "
        "encoder of an FCN-8s, train the decoder with the encoder frozen, then fine-tune all; "
        "held-out scores after each step. With --task detection, train CenterNet to find the "
        "shapes' boxes instead and report held-out COCO AP. About 5 minutes on 2 CPU cores.",
    )
    parser.add_argument(
        "--task",
        choices=TASKS,
        default="segmentation",
        help=f"segmentation (run folder 'demo') or detection (run folder '{RUN_NAME}')",
    )
    parser.add_argument("--quick", action="store_true", help="a tiny version (under a minute)")
    parser.add_argument("--out", default="runs", help="folder for the run folder (runs)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the chosen demo and print where its results are."""
    demo = run_detection_demo if args.task == "detection" else run_demo
    demo(quick=args.quick, output_root=args.out)
    return 0
