"""Object detection as a :class:`~fcnlab.tasks.base.Task`: batches of (images, list of target
dicts), the model's own ``loss`` and ``decode``, COCO AP through ``COCOeval`` as the score."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from rich.text import Text
from torch import nn
from torch.utils.data import Dataset

from fcnlab.config import Config
from fcnlab.data import detection_collate
from fcnlab.data.stats import BoxCounter, BoxCounts
from fcnlab.data.transforms import IGNORE_INDEX
from fcnlab.inference.export import ExportGraph
from fcnlab.inference.metadata import ModelMetadata
from fcnlab.inference.options import PredictOptions
from fcnlab.inference.predictor import resolve_device
from fcnlab.runtime.console import Bars, print_literal
from fcnlab.tasks.base import EvalSettings, Infer, LossFn, Predictions, class_names
from fcnlab.tasks.detection import deploy, report, statistics
from fcnlab.tasks.detection.evaluate import DetectionEvalResult, DetectionEvaluator, detect
from fcnlab.tasks.detection.predict import write_detections
from fcnlab.tasks.registry import register_task


@register_task
class DetectionTask:
    """Boxes with classes and scores; the model computes its own loss and decodes its maps."""

    name = "detection"
    noun = "detector"
    annotations = "boxes"
    metric = "AP"
    curve_metrics = ("AP", "AP50")
    export_formats = ("onnx", "safetensors")
    dense_inference = False
    statistics_plot = None

    def collate(self, ignore_index: int = IGNORE_INDEX) -> Callable[[list[Any]], Any]:
        """Images padded to one size (bottom/right), targets kept as a list of dicts (a class
        map among them padded with ``ignore_index``)."""
        return functools.partial(detection_collate, ignore_index=ignore_index)

    def build_loss(self, config: Config, model: nn.Module, loss: nn.Module | None) -> LossFn:
        """``model.loss(outputs, targets)["loss"]``; a detector brings its own loss."""
        if loss is not None:
            raise ValueError(
                f"a model of the {self.name} task computes its own loss "
                "(model.loss(outputs, targets)); do not pass loss= to train it"
            )
        return lambda outputs, targets: model.loss(outputs, targets)["loss"]

    def targets_to(self, targets: Sequence[dict[str, Any]], device: torch.device) -> Any:
        """The target dicts as they are: the model's loss moves what it needs."""
        return targets

    def inference(self, model: nn.Module, settings: EvalSettings) -> Infer:
        """``model.decode`` per image at COCO's evaluation threshold (0.05, top 100)."""
        return lambda images: detect(model, images, settings.amp, settings.channels_last)

    def evaluator(
        self, num_classes: int, config: Config, names: Sequence[str]
    ) -> DetectionEvaluator:
        """COCOeval over the object classes ``names``."""
        return DetectionEvaluator(num_classes, names)

    def result_from_record(self, record: dict[str, Any]) -> DetectionEvalResult:
        """The inverse of ``DetectionEvalResult.record()``."""
        return DetectionEvalResult.from_record(record)

    def epoch_table(self, result: DetectionEvalResult, title: str) -> Table:
        """COCO AP, AP50, AP75 and AR@100 in percent."""
        return report.epoch_table(result, title)

    def report(
        self, result: DetectionEvalResult, names: list[str], dataset: Dataset, out: Path
    ) -> tuple[list[Any], list[Path]]:
        """pycocotools' 12-line summary, AP/AP50 per class; ``pr_curve.png``."""
        palette = report.detection_palette(dataset, len(names))
        picture = report.write_pr_curves(result.coco, names, out / "pr_curve.png", palette)
        summary = Text(result.coco.summary if result.coco is not None else "")
        return [summary, report.results_table(result, names)], [picture]

    def write_pictures(
        self, model: nn.Module, val_set: Dataset, last: Any | None, run_dir: Path, config: Config
    ) -> list[Path]:
        """``detections.png``: ground truth | prediction for the first validation images, and
        ``pr_curve.png`` (precision-recall per class at IoU 0.5) from the last evaluation."""
        written = []
        num_classes = config.model.num_classes
        if last is not None and last.coco is not None:
            names = class_names(val_set, num_classes)
            palette = report.detection_palette(val_set, num_classes)
            written.append(
                report.write_pr_curves(last.coco, names, run_dir / "pr_curve.png", palette)
            )
        pictures = report.write_detection_pictures(
            model,
            val_set,
            config.eval.num_overlays,
            config.data.transforms,
            run_dir / "detections.png",
            config.train.amp,
        )
        return written + ([pictures] if pictures is not None else [])

    def statistics_counter(self, dataset: Dataset) -> BoxCounter:
        """Boxes, images, crowd and difficult boxes per class."""
        return statistics.box_counter(dataset)

    def statistics_table(self, split: str, counts: BoxCounts) -> Table:
        """Boxes per class, images without boxes."""
        return statistics.box_table(split, counts)

    def plot_statistics(self, splits: Sequence[tuple[str, Any]], palette: Any | None) -> None:
        """No chart: the box table says it all."""
        return None

    def validate_config(self, config: Config) -> None:
        """Nothing beyond the shared sections: a detector's loss is its own."""

    def export_graph(self, model: nn.Module) -> ExportGraph:
        """The raw head outputs by name; decoding stays fcnlab's (``deploy.OnnxDetector``)."""
        return deploy.detector_graph(model)

    def write_predictions(
        self,
        model: nn.Module | Path,
        metadata: ModelMetadata,
        images: Sequence[Path],
        out: Path,
        options: PredictOptions,
        console: Console,
        bars: Bars,
    ) -> Predictions:
        """``NAME_boxes.png`` per image and ``detections.json`` (COCO results format);
        ``model`` may be an exported ``.onnx`` path (run with onnxruntime, decoded by fcnlab)."""
        if not isinstance(model, nn.Module):
            model = deploy.OnnxDetector(model)
        device = resolve_device(options.device)
        result = write_detections(
            model, metadata, images, out, device, options.score_threshold, console, bars
        )
        pictures = len(result.written) - 1
        print_literal(
            console, f"wrote {pictures} pictures with boxes and {result.written[-1]} to {out}"
        )
        return result
