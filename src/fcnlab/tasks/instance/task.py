"""Instance segmentation as a :class:`~fcnlab.tasks.base.Task`: detection's batches (images, list
of target dicts, each with its instance ``masks``) and the model's own ``loss``, plus a mask per
detection; COCO mask AP through ``COCOeval`` (``segm``) as the score, box AP beside it.

What it shares with detection (collate, loss, targets, the box counter) it inherits from
:class:`~fcnlab.tasks.detection.task.DetectionTask`; what differs is written here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from torch import nn
from torch.utils.data import Dataset

from fcnlab.config import Config
from fcnlab.data.stats import BoxCounts
from fcnlab.inference.export import ExportGraph
from fcnlab.inference.metadata import ModelMetadata
from fcnlab.inference.options import PredictOptions
from fcnlab.inference.predictor import resolve_device
from fcnlab.runtime.console import Bars, print_literal
from fcnlab.tasks.base import EvalSettings, Infer, Predictions, class_names
from fcnlab.tasks.deploy import OnnxArchitecture
from fcnlab.tasks.detection import statistics
from fcnlab.tasks.detection.report import detection_palette, write_pr_curves
from fcnlab.tasks.detection.task import DetectionTask
from fcnlab.tasks.instance import deploy, report
from fcnlab.tasks.instance.evaluate import (
    InstanceEvalResult,
    InstanceEvaluator,
    segment_instances,
)
from fcnlab.tasks.instance.pictures import write_instance_pictures
from fcnlab.tasks.instance.predict import write_instances
from fcnlab.tasks.registry import register_task


@register_task
class InstanceTask(DetectionTask):
    """A mask, a box, a class and a score per object; the model computes its own loss and
    decodes its maps into instances."""

    name = "instance"
    noun = "instance segmentation model"
    annotations = "instance masks"
    metric = "mask AP"
    curve_metrics = ("mask_AP", "mask_AP50", "box_AP")
    export_formats = ("onnx", "safetensors")
    dense_inference = False
    statistics_plot = None

    def inference(self, model: nn.Module, settings: EvalSettings) -> Infer:
        """``model.decode`` per image at COCO's evaluation threshold (0.05, top 100), masks as
        probabilities at ``model.mask_stride``."""
        return lambda images: segment_instances(model, images, settings.amp, settings.channels_last)

    def evaluator(
        self, num_classes: int, config: Config, names: Sequence[str]
    ) -> InstanceEvaluator:
        """COCOeval of masks and boxes over the object classes ``names``."""
        return InstanceEvaluator(num_classes, names)

    def result_from_record(self, record: dict[str, Any]) -> InstanceEvalResult:
        """The inverse of ``InstanceEvalResult.record()``."""
        return InstanceEvalResult.from_record(record)

    def epoch_table(self, result: InstanceEvalResult, title: str) -> Table:  # type: ignore[override]
        """COCO mask AP, AP50, AP75 and box AP in percent."""
        return report.epoch_table(result, title)

    def report(  # type: ignore[override]
        self, result: InstanceEvalResult, names: list[str], dataset: Dataset, out: Path
    ) -> tuple[list[Any], list[Path]]:
        """pycocotools' 12-line summaries of masks and boxes, mask AP / AP50 and box AP per
        class; ``pr_curve.png`` of the masks at IoU 0.5."""
        palette = detection_palette(dataset, len(names))
        picture = write_pr_curves(result.mask_coco, names, out / "pr_curve.png", palette)
        return [*report.summaries(result), report.results_table(result, names)], [picture]

    def write_pictures(
        self, model: nn.Module, val_set: Dataset, last: Any | None, run_dir: Path, config: Config
    ) -> list[Path]:
        """``instances.png``: image | ground truth | prediction for the first validation
        images, and ``pr_curve.png`` (mask precision-recall per class at IoU 0.5) from the last
        evaluation."""
        written = []
        num_classes = config.model.num_classes
        if last is not None and last.mask_coco is not None:
            names = class_names(val_set, num_classes)
            palette = detection_palette(val_set, num_classes)
            written.append(
                write_pr_curves(last.mask_coco, names, run_dir / "pr_curve.png", palette)
            )
        pictures = write_instance_pictures(
            model,
            val_set,
            config.eval.num_overlays,
            config.data.transforms,
            run_dir / "instances.png",
            config.train.amp,
        )
        return written + ([pictures] if pictures is not None else [])

    def statistics_table(self, split: str, counts: BoxCounts) -> Table:
        """Instances per class (and crowd regions), images without instances."""
        return statistics.box_table(split, counts, objects="instances", difficult=False)

    def export_graph(self, model: nn.Module) -> ExportGraph:
        """The raw forward outputs by name (CondInst: FCOS's, "controller", "mask_features";
        SOLOv2: "cate_logits", "kernels", "mask_features"); the post-processing stays fcnlab's,
        the architecture's own ``decode`` (``fcnlab.tasks.deploy.OnnxArchitecture``)."""
        return deploy.instance_graph(model)

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
        """``NAME_instances.png`` and ``NAME_instance_ids.png`` per image, ``instances.json``
        (COCO results format, RLE masks); ``model`` may be an exported ``.onnx`` path (run with
        onnxruntime, decoded by fcnlab)."""
        if not isinstance(model, nn.Module):
            model = OnnxArchitecture(model)
        device = resolve_device(options.device)
        result = write_instances(
            model, metadata, images, out, device, options.score_threshold, console, bars
        )
        images_written = (len(result.written) - 1) // 2
        print_literal(
            console,
            f"wrote {images_written} pictures of instances with their instance-id maps and "
            f"{result.written[-1]} to {out}",
        )
        return result
