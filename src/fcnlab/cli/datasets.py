"""``fcnlab datasets``: list the known data sets, and ``check`` a data set folder.

``check`` loads every image and mask of each split, collects the problems (file, reason) instead
of stopping at the first one, and tabulates images per split and class pixel frequencies (with
``--task detection``: every image and its boxes, and boxes per class); the exit status is 1 when
any problem was found.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import NullFormatter, ScalarFormatter
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from fcnlab.data import BoxCounter, FrequencyCounter, build_dataset, list_datasets
from fcnlab.data.io import DataFormatError, DatasetNotFoundError, Problem
from fcnlab.data.stats import BoxCounts, ClassFrequencies, median_frequency_weights

FORMATS = ("voc", "cityscapes", "coco", "ade20k", "folder")
TASKS = ("segmentation", "detection")
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
    frequencies: ClassFrequencies | None = None
    boxes: BoxCounts | None = None
    palette: np.ndarray | None = None
    missing: DatasetNotFoundError | None = None


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``datasets`` sub-command with ``list`` and ``check``."""
    parser = subparsers.add_parser("datasets", help="list data sets, check a data set folder")
    commands = parser.add_subparsers(dest="datasets_command", metavar="ACTION", required=True)
    listing = commands.add_parser("list", help="names accepted by --format and build_dataset")
    listing.add_argument("--task", choices=TASKS, default="segmentation")
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
        choices=TASKS,
        default="segmentation",
        help="check the masks (default) or the boxes (voc, coco) and count boxes per class",
    )
    check.add_argument("--plot", type=Path, help="draw the class-frequency bar chart to FILE.png")
    check.set_defaults(run=run_check)


def run_list(args: argparse.Namespace) -> int:
    """Print the names of the data sets registered for ``--task``."""
    for name in list_datasets(args.task):
        print(name)
    return 0


def default_splits(format_name: str, root: Path) -> tuple[str, ...]:
    """Splits to check: the format's own, or for a folder its ``images/`` sub-folders (or one)."""
    if format_name != "folder":
        return DEFAULT_SPLITS[format_name]
    images = root / "images"
    folders = sorted(p.name for p in images.iterdir() if p.is_dir()) if images.is_dir() else []
    return tuple(folders) or ("all",)


def check_split(
    format_name: str,
    root: Path,
    split: str,
    progress: Progress,
    required: bool,
    task: str = "segmentation",
) -> SplitReport:
    """Load every sample of one split, collecting problems and class frequencies (box counts
    for ``task="detection"``).

    A split that does not exist is an error when ``required`` (named on the command line), and
    merely reported otherwise.
    """
    report = SplitReport(split)
    options = {} if task == "segmentation" else {"task": task}
    try:
        dataset = build_dataset(format_name, root, split=split, skip_invalid=True, **options)
    except DatasetNotFoundError as error:
        if required:
            raise
        report.missing = error
        return report
    # files rejected while the data set was built (unpaired, unreadable) come first, once each
    found = {tuple(problem): problem for problem in dataset.skip_log.problems}
    if task == "detection":
        counter: BoxCounter | FrequencyCounter = BoxCounter(tuple(dataset.classes))
    else:
        counter = FrequencyCounter(tuple(dataset.classes), dataset.ignore_index)
    for index in progress.track(range(len(dataset)), description=f"{format_name} {split}"):
        try:
            _, annotation = dataset.load(index)
        except DataFormatError as error:
            found.setdefault((error.file, error.reason), Problem(error.file, error.reason))
            continue
        counter.update(annotation, name=f"{split} sample {index}")
    report.images = len(dataset)
    report.problems = list(found.values())
    if isinstance(counter, BoxCounter):
        report.boxes = counter.result()
    else:
        report.frequencies = counter.result()
        report.palette = dataset.palette
    return report


def splits_table(reports: Sequence[SplitReport]) -> Table:
    """Images and problems per split."""
    table = Table(title="Splits")
    for column in ("split", "images", "problems", "status"):
        table.add_column(column)
    for report in reports:
        status = (
            "checked" if report.missing is None else "absent: " + str(report.missing).split(";")[0]
        )
        table.add_row(report.split, str(report.images), str(len(report.problems)), status)
    return table


def problems_table(reports: Sequence[SplitReport]) -> Table:
    """The first ``SHOWN_PROBLEMS`` problems: split, file, reason."""
    table = Table(title="Problems")
    for column in ("split", "file", "reason"):
        table.add_column(column, overflow="fold")
    rows = [(r.split, p.file, p.reason) for r in reports for p in r.problems]
    for row in rows[:SHOWN_PROBLEMS]:
        table.add_row(*row)
    if len(rows) > SHOWN_PROBLEMS:
        table.caption = f"{len(rows) - SHOWN_PROBLEMS} more problems not shown"
    return table


def frequency_table(report: SplitReport) -> Table:
    """Class pixels, share, images and SegNet's median-frequency weight for one split."""
    freqs = report.frequencies
    assert freqs is not None
    table = Table(title=f"Class pixel frequencies: {report.split}")
    for column in ("class", "pixels", "share %", "images", "freq", "median-freq weight"):
        table.add_column(column, justify="left" if column == "class" else "right")
    present = bool(freqs.pixels.any())
    weights = median_frequency_weights(freqs).tolist() if present else [0.0] * len(freqs.classes)
    for c, name in enumerate(freqs.classes):
        table.add_row(
            name,
            str(int(freqs.pixels[c])),
            f"{100 * float(freqs.share[c]):.2f}",
            str(int(freqs.images[c])),
            f"{float(freqs.frequency[c]):.4f}",
            f"{weights[c]:.3f}",
        )
    table.caption = f"ignored pixels: {freqs.ignored} of {freqs.total}"
    return table


def box_table(report: SplitReport) -> Table:
    """Boxes, share, images, crowd and difficult boxes per class for one split."""
    counts = report.boxes
    assert counts is not None
    table = Table(title=f"Boxes per class: {report.split}")
    for column in ("class", "boxes", "share %", "images", "crowd", "difficult"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for c, name in enumerate(counts.classes):
        table.add_row(
            name,
            str(int(counts.boxes[c])),
            f"{100 * float(counts.share[c]):.2f}",
            str(int(counts.images[c])),
            str(int(counts.crowd[c])),
            str(int(counts.difficult[c])),
        )
    table.caption = f"images without boxes: {counts.empty_images} of {counts.total_images}"
    return table


def plot_class_frequencies(reports: Sequence[SplitReport]) -> Figure:
    """Bar chart of each class's share of labelled pixels (log scale), one bar group per class
    and one bar per split (hatched differently), coloured by the data set's palette."""
    checked = [r for r in reports if r.frequencies is not None]
    # splits of a folder data set may imply different class counts: draw the longest list
    widest = max(checked, key=lambda r: len(r.frequencies.classes), default=None)
    classes = widest.frequencies.classes if widest else ()
    palette = widest.palette if widest else None
    fig = Figure(figsize=(max(6.0, 0.45 * len(classes) + 2), 4.0))
    ax = fig.add_subplot()
    width = 0.8 / max(len(checked), 1)
    x = np.arange(len(classes))
    hatches = ("", "//", "..", "xx")
    for k, report in enumerate(checked):
        share = np.zeros(len(classes))
        share[: len(report.frequencies.classes)] = 100 * report.frequencies.share.numpy()
        colours = None if palette is None else np.asarray(palette)[: len(classes)] / 255.0
        ax.bar(
            x + (k - (len(checked) - 1) / 2) * width,
            share,
            width,
            color=colours,
            edgecolor="black",
            hatch=hatches[k % len(hatches)],
        )
    ax.set_xticks(x, classes, rotation=60, ha="right")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel("share of labelled pixels (%)")
    ax.set_title("Class pixel frequencies")
    if len(checked) > 1:
        handles = [
            Patch(
                facecolor="white", edgecolor="black", hatch=hatches[k % len(hatches)], label=r.split
            )
            for k, r in enumerate(checked)
        ]
        ax.legend(handles=handles)
    fig.tight_layout()
    return fig


def run_check(args: argparse.Namespace) -> int:
    """Check every split, print the tables, optionally plot; 1 when problems were found."""
    console = Console()
    root: Path = args.root
    if not root.exists():
        raise DatasetNotFoundError(f"data set root '{root}' does not exist")
    detection = list_datasets("detection")
    if args.task == "detection" and args.format not in detection:
        shown = ", ".join(name for name in FORMATS if name in detection)
        raise ValueError(f"--format {args.format} has no boxes; with --task detection use {shown}")
    if args.task == "detection" and args.plot is not None:
        raise ValueError("--plot draws class pixel frequencies, which --task detection has not")
    splits = tuple(args.splits or default_splits(args.format, root))
    # every problem goes into the table, so the per-file skip warnings would only repeat it
    data_logger = logging.getLogger("fcnlab.data")
    level = data_logger.level
    data_logger.setLevel(logging.ERROR)
    try:
        with Progress(console=console, transient=True) as progress:
            reports = [
                check_split(args.format, root, split, progress, bool(args.splits), args.task)
                for split in splits
            ]
    finally:
        data_logger.setLevel(level)
    if all(report.missing is not None for report in reports):
        raise reports[0].missing
    console.print(splits_table(reports))
    if any(report.problems for report in reports):
        console.print(problems_table(reports))
    for report in reports:
        if report.frequencies is not None:
            console.print(frequency_table(report))
        if report.boxes is not None:
            console.print(box_table(report))
    if args.plot is not None:
        plot_class_frequencies(reports).savefig(args.plot, dpi=100)
        console.print(f"class-frequency chart written to {args.plot}")
    problems = sum(len(report.problems) for report in reports)
    if problems:
        plural = "" if problems == 1 else "s"
        console.print(f"[bold red]{problems} problem{plural} found[/bold red]")
        return 1
    console.print("[green]no problems found[/green]")
    return 0
