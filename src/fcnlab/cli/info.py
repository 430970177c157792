"""``fcnlab info``: what this installation offers: models, data sets, encoders and devices.

Encoders are listed with what each one is (its builder's first docstring line), so that
``unet``, U-Net's own contracting path, is not taken for a pretrained backbone family."""

from __future__ import annotations

import argparse
import inspect
import platform

import torch
from rich.console import Console
from rich.table import Table
from rich.text import Text

from fcnlab import __version__


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``info`` sub-command."""
    parser = subparsers.add_parser("info", help="list models, encoders, data sets and devices")
    parser.set_defaults(run=run)


def devices() -> list[tuple[str, str]]:
    """(device, description) for the CPU and every visible CUDA device."""
    found = [
        ("cpu", f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    ]
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        found.append((f"cuda:{index}", f"{props.name}, {props.total_memory / 2**30:.0f} GiB"))
    return found


def encoder_summaries() -> list[tuple[str, str]]:
    """(encoder, what it is) for every registered encoder: its builder's first docstring line,
    without reST markup."""
    from fcnlab.models.registry import ENCODERS

    return [
        (name, (inspect.getdoc(ENCODERS.get(name)) or "").split("\n")[0].replace("``", ""))
        for name in ENCODERS.names()
    ]


def run(args: argparse.Namespace) -> int:
    """Print the models and data sets of every task, the encoders and the devices."""
    from fcnlab.data import list_datasets
    from fcnlab.models import list_models, model_task
    from fcnlab.tasks import task_names

    console = Console()
    console.print(
        f"fcnlab {__version__}, torch {torch.__version__}, Python {platform.python_version()}"
    )
    lines = []
    for task in task_names():
        models = [name for name in list_models() if model_task(name) == task]
        lines += [(f"{task} models", models), (f"{task} data sets", list_datasets(task))]
    for title, names in lines:
        console.print(f"[bold]{title}:[/bold] " + ", ".join(names), highlight=False)
    encoders = Table("encoder", "what it is", title="encoders (model.encoder)")
    for name, summary in encoder_summaries():
        encoders.add_row(name, Text(summary))
    console.print(encoders)
    table = Table("device", "description", title="devices")
    for name, description in devices():
        table.add_row(name, description)
    console.print(table)
    return 0
