"""``fcnlab eval``: score a checkpoint on a split, per class, and write metrics.json.

Segmentation models get IoU and accuracy per class and ``confusion.png``; detectors (a model
whose ``task`` is ``"detection"``) pycocotools' 12-line COCO summary, AP and AP50 per class and
``pr_curve.png``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from fcnlab.cli.predict import add_inference_arguments, inference_options
from fcnlab.config import load_config
from fcnlab.data import detection_collate
from fcnlab.engine.build import build_model_from_config, build_split, check_num_classes
from fcnlab.engine.detection_evaluate import DetectionEvalResult, evaluate_detection
from fcnlab.engine.detection_report import detection_palette, write_pr_curves
from fcnlab.engine.evaluate import MEAN_KEYS, EvalResult, evaluate
from fcnlab.engine.loader import eval_loader
from fcnlab.engine.report import class_names, write_confusion
from fcnlab.engine.tasks import model_task
from fcnlab.inference import TTA, Predictor
from fcnlab.runtime.checkpoint import load_model_weights
from fcnlab.runtime.distributed import DistInfo


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


def results_table(result: EvalResult, names: list[str]) -> Table:
    """IoU and accuracy per class, then the four means, in percent."""
    table = Table(title="evaluation")
    for column in ("class", "IoU", "accuracy"):
        table.add_column(column, justify="left" if column == "class" else "right")

    for name, iou, accuracy in zip(names, result.iou, result.accuracy, strict=True):
        table.add_row(name, _percent(iou), _percent(accuracy))
    table.add_section()
    labels = ("mean IoU", "pixel accuracy", "mean accuracy", "f.w. IoU")
    for label, key in zip(labels, MEAN_KEYS, strict=True):
        table.add_row(f"[bold]{label}", _percent(getattr(result, key)), "")
    return table


def detection_table(result: DetectionEvalResult, names: list[str]) -> Table:
    """COCO AP (IoU 0.50:0.95) and AP50 per class, then over the classes, in percent."""
    table = Table(title="COCO AP per class")
    for column in ("class", "AP", "AP50"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, ap, ap50 in zip(names, result.per_class_ap, result.per_class_ap50, strict=True):
        table.add_row(name, _percent(ap), _percent(ap50))
    table.add_section()
    table.add_row("[bold]mean", _percent(result.stats["AP"]), _percent(result.stats["AP50"]))
    return table


def _percent(value: float) -> str:
    return "-" if value != value else f"{100 * value:.2f}"


def run(args: argparse.Namespace) -> int:
    """Build the model and split from the config, load the weights, evaluate, report."""
    config = load_config(args.config, args.overrides)
    split = args.split or config.data.val_split
    model = build_model_from_config(config.model)
    task = model_task(model)
    dataset = build_split(config.data, split, train=False, task=task)
    check_num_classes(dataset, config.model.num_classes, split)
    load_model_weights(model, args.checkpoint)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    options = inference_options(args)
    plain = options["window"] is None and options["tta"] == TTA()
    if task == "detection" and not plain:
        raise ValueError(
            f"--tta and --window apply to segmentation models; {config.model.name!r} is a "
            "detector, evaluated on whole images"
        )
    loader = eval_loader(
        dataset, DistInfo(), config.eval.batch_size, config.data.num_workers,
        device.type == "cuda", detection_collate if task == "detection" else None,
    )  # fmt: skip
    names = class_names(dataset, config.model.num_classes)
    out = Path(args.out) if args.out else config.run_dir / f"eval-{split}"
    out.mkdir(parents=True, exist_ok=True)
    console = Console(highlight=False)
    if task == "detection":
        result = evaluate_detection(model, loader, config.model.num_classes, class_names=names)
        console.print(result.extra["evaluation"].summary, markup=False)
        console.print(detection_table(result, names))
        palette = detection_palette(dataset, config.model.num_classes)
        picture = write_pr_curves(result, names, out / "pr_curve.png", palette)
    else:
        # The loader's images are already normalised: the predictor gets no metadata to redo it.
        infer = None if plain else Predictor(model, device, **options).logits
        result = evaluate(
            model, loader, config.model.num_classes, config.data.ignore_index, infer=infer
        )
        console.print(results_table(result, names))
        picture = write_confusion(result, names, out / "confusion.png")
    record = result.record()
    record.update(kind="eval", split=split, checkpoint=str(args.checkpoint), classes=names)
    (out / "metrics.json").write_text(json.dumps(record, indent=2) + "\n")
    console.print(f"wrote {out / 'metrics.json'} and {picture}", markup=False)
    return 0
