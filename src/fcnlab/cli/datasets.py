"""``fcnlab datasets``: list the known data sets, and ``check`` a data set folder.

``check`` loads every image and mask of each split, collects the problems (file, reason) instead
of stopping at the first one, and tabulates images per split and class pixel frequencies (with
``--task detection``: every image and its boxes, and boxes per class; with ``--task instance``:
every image and its instance masks, and instances per class); the exit status is 1 when
any problem was found, an empty split included. File names are printed literally: rich markup
would read ``set[v2]/a.jpg`` as a style tag and print ``set/a.jpg``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

from fcnlab.config import apply_overrides
from fcnlab.data import build_dataset, list_datasets
from fcnlab.data.datasets.folder import ALL_SPLIT, folder_splits
from fcnlab.data.io import DataFormatError, DatasetNotFoundError, Problem, exif_orientation
from fcnlab.tasks import DEFAULT_TASK, Task, get_task, task_names

FORMATS = ("voc", "cityscapes", "coco", "ade20k", "folder")
# The splits checked when none is named; VOC's trainval is the union of train and val.
DEFAULT_SPLITS = {
    "voc": ("train", "val"),
    "cityscapes": ("train", "val", "test"),
    "coco": ("train", "val"),
    "ade20k": ("train", "val"),
}
SHOWN_PROBLEMS = 50


@dataclass
class SplitReport:
    """What checking one split found: its size, problems and class statistics."""

    split: str
    images: int = 0
    problems: list[Problem] = field(default_factory=list)
    statistics: Any | None = None  # the task's counts (class pixel frequencies, boxes, ...)
    palette: np.ndarray | None = None
    missing: DatasetNotFoundError | None = None
    turned: int = 0  # images with an EXIF orientation that turns them


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``datasets`` sub-command with ``list`` and ``check``."""
    parser = subparsers.add_parser("datasets", help="list data sets, check a data set folder")
    commands = parser.add_subparsers(dest="datasets_command", metavar="ACTION", required=True)
    listing = commands.add_parser("list", help="names accepted by --format and build_dataset")
    listing.add_argument("--task", choices=task_names(), default=DEFAULT_TASK)
    listing.set_defaults(run=run_list)
    check = commands.add_parser("check", help="validate a data set folder and count its classes")
    check.add_argument("root", type=Path, help="the folder that directly holds the layout")
    check.add_argument("--format", required=True, choices=FORMATS, dest="format")
    check.add_argument(
        "--split",
        action="append",
        dest="splits",
        help="a split to check (repeatable; default: every split the format defines)",
    )
    check.add_argument(
        "--task",
        choices=task_names(),
        default=DEFAULT_TASK,
        help="the annotations to check and count: masks (default: class pixel frequencies), "
        "boxes (detection; voc, coco: boxes per class), instance masks (instance; voc, coco, "
        "cityscapes: instances per class)",
    )
    check.add_argument(
        "--option",
        action="append",
        default=[],
        dest="options",
        metavar="KEY=VALUE",
        help="a data set option, as under data.options in a config (repeatable), e.g. "
        "mask_values=binary, images=photos/{split}",
    )
    check.add_argument("--plot", type=Path, help="draw the class-frequency bar chart to FILE.png")
    check.set_defaults(run=run_check)


def run_list(args: argparse.Namespace) -> int:
    """Print the names of the data sets registered for ``--task``."""
    for name in list_datasets(args.task):
        print(name)
    return 0


def default_splits(format_name: str, root: Path) -> tuple[str, ...]:
    """Splits to check: the format's own, or a folder's split folders (``all`` without any)."""
    if format_name != "folder":
        return DEFAULT_SPLITS[format_name]
    return folder_splits(root) or (ALL_SPLIT,)


def check_split(
    format_name: str,
    root: Path,
    split: str,
    progress: Progress,
    required: bool,
    task: Task | None = None,
    options: dict[str, Any] | None = None,
    present: bool = False,
) -> SplitReport:
    """Load every sample of one split for ``task`` (default: segmentation), collecting
    problems and the task's statistics (class pixel frequencies, boxes per class, ...).

    A split that cannot be opened is an error when ``required`` (named on the command line), a
    problem when ``present`` (its folder was found, e.g. an empty ``images/val/``), and merely
    reported as absent otherwise (a format's split that this copy lacks). A split without a
    single image is a problem. ``options`` go to the data set's builder.
    """
    task = task or get_task(DEFAULT_TASK)
    report = SplitReport(split)
    try:
        dataset = build_dataset(
            format_name,
            root,
            split=split,
            task=task.name,
            **{**(options or {}), "skip_invalid": True},
        )
    except DatasetNotFoundError as error:
        if required:
            raise
        if present:
            report.problems = [Problem(str(root), error.problem)]
        else:
            report.missing = error
        return report
    # files rejected while the data set was built (unpaired, unreadable) come first, once each
    found = {tuple(problem): problem for problem in dataset.skip_log.problems}
    counter = task.statistics_counter(dataset)
    for index in progress.track(range(len(dataset)), description=f"{format_name} {split}"):
        try:
            _, annotation = dataset.load(index)
        except DataFormatError as error:
            found.setdefault((error.file, error.reason), Problem(error.file, error.reason))
            continue
        counter.update(annotation, name=f"{split} sample {index}")
        report.turned += exif_orientation(dataset.samples[index][0]) != 1
    report.images = len(dataset)
    if not len(dataset):
        empty = Problem(str(root), f"split '{split}' holds no images")
        found.setdefault(tuple(empty), empty)
    report.problems = list(found.values())
    report.statistics = counter.result()
    report.palette = getattr(dataset, "palette", None)
    return report


def splits_table(reports: Sequence[SplitReport]) -> Table:
    """Images and problems per split."""
    table = Table(title="Splits")
    for column in ("split", "images", "problems", "status"):
        table.add_column(column)
    for report in reports:
        status = "checked" if report.missing is None else f"absent: {report.missing.problem}"
        table.add_row(
            Text(report.split), str(report.images), str(len(report.problems)), Text(status)
        )
    return table


def problems_table(reports: Sequence[SplitReport]) -> Table:
    """The first ``SHOWN_PROBLEMS`` problems: split, file, reason."""
    table = Table(title="Problems")
    for column in ("split", "file", "reason"):
        table.add_column(column, overflow="fold")
    rows = [(r.split, p.file, p.reason) for r in reports for p in r.problems]
    for row in rows[:SHOWN_PROBLEMS]:
        table.add_row(*map(Text, row))
    if len(rows) > SHOWN_PROBLEMS:
        table.caption = f"{len(rows) - SHOWN_PROBLEMS} more problems not shown"
    return table


def run_check(args: argparse.Namespace) -> int:
    """Check every split, print the tables, optionally plot; 1 when problems were found."""
    console = Console()
    root: Path = args.root
    if not root.exists():
        raise DatasetNotFoundError(f"data set root '{root}' does not exist")
    task = get_task(args.task)
    formats = list_datasets(task.name)
    if args.format not in formats:
        shown = ", ".join(name for name in FORMATS if name in formats)
        raise ValueError(
            f"--format {args.format} has no {task.annotations}; with --task {task.name} use {shown}"
        )
    if args.plot is not None and task.statistics_plot is None:
        plots = [get_task(name) for name in task_names()]
        drawn = ", ".join(
            f"{t.statistics_plot} (--task {t.name})" for t in plots if t.statistics_plot
        )
        raise ValueError(f"--plot draws {drawn}, which --task {task.name} has not")
    options = apply_overrides({}, args.options)
    splits = tuple(args.splits or default_splits(args.format, root))
    # a folder's splits are the folders found: one that cannot be read is a problem
    found = folder_splits(root) if args.format == "folder" else ()
    # every problem goes into the table, so the per-file skip warnings would only repeat it
    data_logger = logging.getLogger("fcnlab.data")
    level = data_logger.level
    data_logger.setLevel(logging.ERROR)
    try:
        with Progress(console=console, transient=True) as progress:
            reports = [
                check_split(
                    args.format,
                    root,
                    split,
                    progress,
                    required=bool(args.splits),
                    task=task,
                    options=options,
                    present=split in found,
                )
                for split in splits
            ]
    finally:
        data_logger.setLevel(level)
    if all(report.missing is not None for report in reports):
        raise reports[0].missing
    console.print(splits_table(reports))
    turned = sum(report.turned for report in reports)
    if turned:
        console.print(
            f"note: {turned} image{' carries' if turned == 1 else 's carry'} an EXIF orientation "
            "tag; fcnlab reads images and masks in their stored pixel order (as torchvision "
            "does), so masks must be drawn on the stored pixels, not on the turned photo that a "
            "viewer shows",
            markup=False,
        )
    if any(report.problems for report in reports):
        console.print(problems_table(reports))
    checked = [(r.split, r.statistics) for r in reports if r.statistics is not None]
    for split, statistics in checked:
        console.print(task.statistics_table(split, statistics))
    if args.plot is not None:
        palette = next((r.palette for r in reports if r.statistics is not None), None)
        figure = task.plot_statistics(checked, palette)
        assert figure is not None
        figure.savefig(args.plot, dpi=100)
        console.print(f"{task.statistics_plot} chart written to {args.plot}", markup=False)
    problems = sum(len(report.problems) for report in reports)
    if problems:
        plural = "" if problems == 1 else "s"
        console.print(f"[bold red]{problems} problem{plural} found[/bold red]")
        return 1
    console.print("[green]no problems found[/green]")
    return 0
