"""``fcnlab demo``: the story of fully convolutional learning, end to end on built-in data."""

from __future__ import annotations

import argparse

from fcnlab.demos import DEMOS
from fcnlab.tasks import DEFAULT_TASK


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` sub-command, one ``--task`` choice per registered demo."""
    demos = {name: DEMOS.build(name) for name in DEMOS.names()}
    parser = subparsers.add_parser(
        "demo",
        help="a model trained end to end on built-in Shapes data, no download (--task "
        + "; ".join(f"{name}: {demo.summary}" for name, demo in demos.items())
        + ")",
        description=" ".join(f"--task {name}: {demo.description}" for name, demo in demos.items())
        + f" Without --task: {DEFAULT_TASK}. Each takes a few minutes on 2 CPU cores.",
    )
    parser.add_argument(
        "--task",
        choices=list(demos),
        default=DEFAULT_TASK,
        help="which demo (default %(default)s); its run folder: "
        + ", ".join(f"{name} '{demo.run_name}'" for name, demo in demos.items()),
    )
    models = {name: demo.models for name, demo in demos.items() if demo.models}
    parser.add_argument(
        "--model",
        choices=sorted({model for names in models.values() for model in names}),
        help="the model a demo trains, where it offers a choice: "
        + "; ".join(f"--task {task}: {', '.join(names)}" for task, names in models.items())
        + " (default: the first)",
    )
    parser.add_argument("--quick", action="store_true", help="a tiny version (under a minute)")
    parser.add_argument("--out", default="runs", help="folder for the run folder (runs)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the chosen demo (with the chosen model) and print where its results are."""
    demo = DEMOS.build(args.task)
    options = {}
    if args.model is not None:
        if args.model not in demo.models:
            offered = ", ".join(demo.models) if demo.models else "no choice of model"
            raise ValueError(f"--model {args.model}: the {args.task} demo offers {offered}")
        options["model"] = args.model
    demo.run(quick=args.quick, output_root=args.out, **options)
    return 0
