"""Entry point: builds the parser from the command modules and turns errors into one line.

The line is printed as it is, never wrapped and without rich markup, so that a file named
``set[v2]/broken[final].jpg`` or a path longer than the terminal reads (and copies) whole; an
error raised in a DataLoader worker shows the worker's own message, not its traceback."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from rich.console import Console

from fcnlab import __version__
from fcnlab.engine.loader import worker_error_message
from fcnlab.runtime.console import error_line, print_literal

# Each module defines ``register(subparsers)``, which adds its sub-command with a ``run`` default.
COMMAND_MODULES = (
    "fcnlab.cli.demo",
    "fcnlab.cli.lesson",
    "fcnlab.cli.datasets",
    "fcnlab.cli.train",
    "fcnlab.cli.evaluate",
    "fcnlab.cli.predict",
    "fcnlab.cli.export",
    "fcnlab.cli.info",
)


def build_parser() -> argparse.ArgumentParser:
    """The ``fcnlab`` argument parser with every registered sub-command."""
    parser = argparse.ArgumentParser(
        prog="fcnlab",
        description="Fully convolutional learning on PyTorch: segmentation models, training, "
        "evaluation and the primitives behind them.",
    )
    parser.add_argument("--version", action="version", version=f"fcnlab {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        Console(stderr=True).print("[yellow]interrupted[/yellow]")
        return 130
    except Exception as error:
        if args.debug:
            raise
        print_literal(Console(stderr=True), error_line(worker_error_message(error)))
        print("(run with --debug for the full traceback)", file=sys.stderr)
        return 1
