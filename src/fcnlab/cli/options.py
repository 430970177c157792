"""Command-line options that several commands share (``predict``, ``eval``)."""

from __future__ import annotations

import argparse

from fcnlab.inference import parse_tta
from fcnlab.inference.options import PredictOptions
from fcnlab.tasks import Task, get_task, task_names


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


def inference_options(args: argparse.Namespace) -> PredictOptions:
    """The shared options (and ``predict``'s own, where present) as one checked object."""
    if args.window is not None and args.window < 1:
        raise ValueError(f"--window {args.window} must be a positive number of pixels")
    if not 0.0 <= args.overlap < 1.0:
        raise ValueError(f"--overlap {args.overlap} must be in [0, 1)")
    alpha = getattr(args, "alpha", 0.5)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"--alpha {alpha} must be in [0, 1]")
    score_threshold = getattr(args, "score_threshold", 0.3)
    if not 0.0 <= score_threshold <= 1.0:
        raise ValueError(f"--score-threshold {score_threshold} must be in [0, 1]")
    return PredictOptions(
        device=getattr(args, "device", "auto"),
        alpha=alpha,
        score_threshold=score_threshold,
        window=args.window,
        overlap=args.overlap,
        tta=parse_tta(args.tta),
    )


def check_dense_options(options: PredictOptions, task: Task, what: str) -> None:
    """Refuse ``--tta``/``--window`` for a model whose task makes no dense per-pixel output."""
    if options.dense_only and not task.dense_inference:
        dense = [get_task(name).noun for name in task_names() if get_task(name).dense_inference]
        raise ValueError(
            f"--tta and --window apply to {' and '.join(noun + 's' for noun in dense)}; "
            f"{what} is a {task.noun}"
        )
