"""Semantic segmentation as a :class:`~fcnlab.tasks.base.Task`: (image, mask) batches, a
per-pixel loss from the config, Long et al.'s four metrics with mIoU as the score."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table
from torch import nn
from torch.utils.data import Dataset

from fcnlab.config import Config
from fcnlab.data.collate import collate_masks
from fcnlab.data.stats import ClassFrequencies, FrequencyCounter
from fcnlab.data.transforms import IGNORE_INDEX
from fcnlab.inference.export import ExportGraph, logits_graph
from fcnlab.inference.metadata import ModelMetadata
from fcnlab.inference.options import PredictOptions
from fcnlab.runtime.console import Bars
from fcnlab.tasks.base import EvalSettings, Infer, LossFn, Predictions, class_names
from fcnlab.tasks.registry import register_task
from fcnlab.tasks.segmentation import report, statistics
from fcnlab.tasks.segmentation.evaluate import EvalResult, SegmentationEvaluator, predict
from fcnlab.tasks.segmentation.losses import build_loss


def build_loss_from_config(config: Config) -> nn.Module:
    """``build_loss`` with the configured spec, class weights and aux weight (the config's
    ``segmentation`` section); a bad spec is an error that names its config key."""
    options = config.segmentation
    try:
        return build_loss(
            options.loss,
            class_weights=options.class_weights,
            ignore_index=config.data.ignore_index,
            aux_weight=options.aux_weight,
        )
    except (KeyError, ValueError, TypeError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        raise ValueError(f"segmentation.loss: {message}") from None


@register_task
class SegmentationTask:
    """Every pixel gets a class: masks (N, H, W) as targets, logits (N, K, H, W) as output."""

    name = "segmentation"
    noun = "segmentation model"
    annotations = "masks"
    metric = "mIoU"
    curve_metrics = ("mean_iou", "pixel_accuracy")
    export_formats = ("onnx", "safetensors", "torchscript")
    dense_inference = True
    statistics_plot = "class pixel frequencies"

    def collate(self, ignore_index: int = IGNORE_INDEX) -> Callable[[list[Any]], Any]:
        """Images and masks of different sizes padded to the batch's largest (masks with
        ``ignore_index``, so padded pixels never count): evaluation at each image's own size
        works with any ``eval.batch_size``."""
        return functools.partial(collate_masks, ignore_index=ignore_index)

    def build_loss(self, config: Config, model: nn.Module, loss: nn.Module | None) -> LossFn:
        """The configured per-pixel loss (``train.loss``), or ``loss`` when given."""
        return loss if loss is not None else build_loss_from_config(config)

    def targets_to(self, targets: torch.Tensor, device: torch.device) -> torch.Tensor:
        """The masks on ``device``."""
        return targets.to(device, non_blocking=True)

    def inference(self, model: nn.Module, settings: EvalSettings) -> Infer:
        """Logits (N, K, H, W) at the images' size, in float32."""
        return lambda images: predict(model, images, settings.amp, settings.channels_last)

    def evaluator(
        self, num_classes: int, config: Config, names: Sequence[str]
    ) -> SegmentationEvaluator:
        """A confusion matrix over ``num_classes`` that skips ``data.ignore_index``."""
        return SegmentationEvaluator(num_classes, config.data.ignore_index)

    def result_from_record(self, record: dict[str, Any]) -> EvalResult:
        """The inverse of ``EvalResult.record()``."""
        return EvalResult.from_record(record)

    def epoch_table(self, result: EvalResult, title: str) -> Table:
        """The four means in percent."""
        return report.epoch_table(result, title)

    def report(
        self, result: EvalResult, names: list[str], dataset: Dataset, out: Path
    ) -> tuple[list[Any], list[Path]]:
        """IoU and accuracy per class; ``confusion.png``."""
        picture = report.write_confusion(result, names, out / "confusion.png")
        return [report.results_table(result, names)], [picture]

    def write_pictures(
        self, model: nn.Module, val_set: Dataset, last: Any | None, run_dir: Path, config: Config
    ) -> list[Path]:
        """``confusion.png`` (from the last evaluation) and ``overlays.png``."""
        written = []
        if last is not None:
            names = class_names(val_set, config.model.num_classes)
            written.append(report.write_confusion(last, names, run_dir / "confusion.png"))
        overlays = report.write_overlays(
            model,
            val_set,
            config.eval.num_overlays,
            config.data.transforms,
            config.data.ignore_index,
            run_dir / "overlays.png",
            config.train.amp,
        )
        return written + ([overlays] if overlays is not None else [])

    def statistics_counter(self, dataset: Dataset) -> FrequencyCounter:
        """Pixels per class (``ignore_index`` left out) and images per class."""
        return statistics.frequency_counter(dataset)

    def statistics_table(self, split: str, counts: ClassFrequencies) -> Table:
        """Class pixel frequencies with SegNet's median-frequency weights."""
        return statistics.frequency_table(split, counts)

    def plot_statistics(
        self, splits: Sequence[tuple[str, ClassFrequencies]], palette: Any | None
    ) -> Figure:
        """Each class's share of labelled pixels per split (log scale)."""
        return statistics.plot_class_frequencies(splits, palette)

    def validate_config(self, config: Config) -> None:
        """The loss spec must build (the error names ``train.loss``)."""
        build_loss_from_config(config)

    def export_graph(self, model: nn.Module) -> ExportGraph:
        """The logits (N, K, H, W), named ``logits``."""
        return logits_graph(model)

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
        """Index mask, colour mask and overlay per image (any size: sliding windows and TTA
        as ``options`` say); ``model`` may be an exported ``.onnx`` path."""
        from fcnlab.inference import Predictor
        from fcnlab.tasks.segmentation.predict import write_segmentations

        predictor = Predictor(
            model, options.device, metadata=metadata, **options.predictor_options()
        )
        return write_segmentations(predictor, images, out, options, console, bars)
