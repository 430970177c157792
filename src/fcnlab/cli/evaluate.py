"""``fcnlab eval``: score a checkpoint on a split, per class, and write metrics.json.

The model's task decides what is measured, printed and drawn: for a segmentation model IoU and
accuracy per class and ``confusion.png``; for a detector pycocotools' 12-line COCO summary, AP
and AP50 per class and ``pr_curve.png``. On a terminal a progress bar follows the batches.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from rich.console import Console

from fcnlab.cli.options import add_inference_arguments, check_dense_options, inference_options
from fcnlab.config import load_config
from fcnlab.engine.build import build_split, check_num_classes
from fcnlab.engine.loader import eval_loader
from fcnlab.inference import Predictor
from fcnlab.models.from_config import build_model_from_config
from fcnlab.runtime.checkpoint import load_model_weights
from fcnlab.runtime.console import Bars, print_literal
from fcnlab.runtime.distributed import DistInfo
from fcnlab.tasks import EvalSettings, class_names, run_evaluation, task_of


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``eval`` sub-command."""
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a checkpoint: per-class IoU and accuracy, confusion matrix; COCO AP "
        "and precision-recall curves for detectors",
    )
    parser.add_argument("-c", "--config", required=True, help="YAML config of the model and data")
    parser.add_argument(
        "--checkpoint", required=True, help="a checkpoint (.pt) or weights (.safetensors)"
    )
    parser.add_argument("--split", default=None, help="data split (default: data.val_split)")
    parser.add_argument(
        "--out", default=None, help="output folder (default: RUN_DIR/eval-SPLIT of the config)"
    )
    add_inference_arguments(parser)
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Build the model and split from the config, load the weights, evaluate, report."""
    config = load_config(args.config, args.overrides)
    split = args.split or config.data.val_split
    model = build_model_from_config(config.model)
    task = task_of(model)
    # One pass over the split: decoding it into memory first (data.cache) would save nothing.
    dataset = build_split(config.data, split, train=False, task=task.name, use_cache=False)
    check_num_classes(dataset, config.model.num_classes, split)
    load_model_weights(model, args.checkpoint)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    options = inference_options(args)
    check_dense_options(options, task, repr(config.model.name))
    loader = eval_loader(
        dataset, DistInfo(), config.eval.batch_size, config.data.num_workers,
        device.type == "cuda", task.collate(config.data.ignore_index),
    )  # fmt: skip
    names = class_names(dataset, config.model.num_classes)
    out = Path(args.out) if args.out else config.run_dir / f"eval-{split}"
    out.mkdir(parents=True, exist_ok=True)
    console = Console(highlight=False)
    if options.dense_only:
        # The loader's images are already normalised: the predictor gets no metadata to redo it.
        infer = Predictor(model, device, **options.predictor_options()).logits
    else:
        infer = task.inference(model, EvalSettings())
    evaluator = task.evaluator(config.model.num_classes, config, names)
    with Bars(console) as bars:
        result = run_evaluation(
            model, loader, evaluator, infer, lambda batches: bars.track(batches, "evaluating")
        )
    shown, pictures = task.report(result, names, dataset, out)
    for renderable in shown:
        console.print(renderable)
    record = result.record()
    record.update(kind="eval", split=split, checkpoint=str(args.checkpoint), classes=names)
    (out / "metrics.json").write_text(json.dumps(record, indent=2) + "\n")
    written = " and ".join(str(path) for path in [out / "metrics.json", *pictures])
    print_literal(console, f"wrote {written}")
    return 0
