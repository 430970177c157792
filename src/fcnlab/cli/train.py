"""``fcnlab train``: run a staged training recipe from a YAML config."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.text import Text

from fcnlab.config import load_config
from fcnlab.engine.trainer import TrainingInterrupted, train
from fcnlab.runtime.console import print_literal
from fcnlab.runtime.distributed import cleanup_distributed

EXIT_INTERRUPTED = 130


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` sub-command."""
    parser = subparsers.add_parser(
        "train",
        help="train a model by the stages of a config",
        description="Train by a YAML config; `key=value` overrides use dotted paths, e.g. "
        "train.batch_size=8 stages.0.epochs=2. The run folder is output.root/output.name; one "
        "that already holds a run is refused unless --resume or --overwrite says what to do. "
        "SIGINT/SIGTERM finish the current step, save checkpoints/last.pt and exit with status "
        "130; --resume continues from it. Under "
        "`torchrun --nproc_per_node=N -m fcnlab train ...` the run is data-parallel.",
    )
    parser.add_argument("-c", "--config", required=True, help="YAML config file")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides")
    what = parser.add_mutually_exclusive_group()
    what.add_argument(
        "--resume",
        action="store_true",
        help="continue the run folder's run from checkpoints/last.pt (with the same config; "
        "only logging, device and worker keys may change)",
    )
    what.add_argument(
        "--resume-from",
        metavar="CHECKPOINT",
        help="continue the run from this checkpoint instead, e.g. RUN/checkpoints/best.pt",
    )
    what.add_argument(
        "--overwrite",
        action="store_true",
        help="start over in a run folder that holds a run: its config.yaml, metrics.jsonl, "
        "checkpoints/, final.safetensors, curves.png and tensorboard/ are removed first",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Load and validate the config, train, print where the results went."""
    config = load_config(args.config, args.overrides)
    console = Console()
    try:
        resume = args.resume_from or args.resume
        result = train(config, resume=resume, overwrite=args.overwrite, console=console)
    except TrainingInterrupted as stop:
        print_literal(Console(stderr=True), Text(str(stop), style="yellow"))
        return EXIT_INTERRUPTED
    finally:
        cleanup_distributed()
    best = f"{100 * result.best_score:.2f}" if result.best_score >= 0 else "n/a"
    done = f" {result.step} steps, best {result.metric} {best}; run folder {result.run_dir}"
    print_literal(console, Text.assemble(("done:", "green"), done))
    return 0
