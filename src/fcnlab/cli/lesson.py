"""``fcnlab lesson``: write the lesson page, every concept as a picture computed by fcnlab."""

from __future__ import annotations

import argparse
import webbrowser
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``lesson`` sub-command."""
    parser = subparsers.add_parser(
        "lesson", help="write an HTML page that shows each concept as a computed figure"
    )
    parser.add_argument(
        "--out", required=True, type=Path, help="directory for index.html and its PNGs"
    )
    parser.add_argument("--open", action="store_true", help="open the page in a web browser")
    # ``dest`` is not ``run``: that name holds the command's function for ``fcnlab.cli.main``.
    parser.add_argument(
        "--run",
        dest="run_dir",
        metavar="RUN",
        type=Path,
        default=None,
        help="training-run directory (runs/NAME) for the sections drawn from a run",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Write the page and print its path; open it when asked."""
    # Imported here so that ``fcnlab --help`` does not pay for matplotlib.
    from fcnlab.viz.lesson import write_lesson

    page = write_lesson(args.out, run=args.run_dir)
    print(f"lesson written to {page}")
    if args.open and not webbrowser.open(page.resolve().as_uri()):
        print("no web browser found; open the page above by hand")
    return 0
