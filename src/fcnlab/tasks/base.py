"""What a task is: the one place that knows how semantic segmentation, detection (and later
instance segmentation) differ.

A :class:`Task` says how batches are collated, how a batch's loss is computed from the model's
outputs, how the model is evaluated (an :class:`Evaluator` in detectron2's ``reset`` /
``process`` / ``evaluate`` form, whose result's ``score`` picks ``best.pt``), how an evaluation is
printed and drawn, how predictions on new images are written and which export formats hold the
model. The engine, the command line, inference and export ask the task (``task_of(model)``) and
never compare task names. One evaluation loop, :func:`run_evaluation`, serves every task.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table
from torch import nn
from torch.utils.data import Dataset

from fcnlab.config import Config
from fcnlab.data.io import DataFormatError, Problem
from fcnlab.data.transforms import IGNORE_INDEX
from fcnlab.inference.export import ExportGraph
from fcnlab.inference.metadata import ModelMetadata
from fcnlab.inference.options import PredictOptions
from fcnlab.inference.predictor import to_image_tensor
from fcnlab.runtime.console import Bars

Infer = Callable[[torch.Tensor], Any]
LossFn = Callable[[Any, Any], torch.Tensor]
# Wraps a loop's iterable to show its progress (``Bars.track``); the loop itself prints nothing.
Track = Callable[[Iterable[Any]], Iterable[Any]]


class Evaluation(Protocol):
    """An evaluation result: a score for choosing the best model and a ``metrics.jsonl`` line."""

    stage: int
    epoch: int
    step: int

    @property
    def score(self) -> float: ...

    def record(self) -> dict[str, Any]: ...


class Evaluator(Protocol):
    """Accumulates one evaluation (detectron2's ``DatasetEvaluator``): ``reset``, then
    ``process`` per batch, then ``evaluate`` (which combines the processes of a distributed run,
    so every process returns the scores of the whole set)."""

    def reset(self) -> None: ...

    def process(self, predictions: Any, targets: Any) -> None: ...

    def evaluate(self) -> Evaluation: ...


@dataclass
class Predictions:
    """What ``write_predictions`` wrote, and the input images it could not read (file and
    reason), which it skipped to go on with the others."""

    written: list[Path] = field(default_factory=list)
    unreadable: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class EvalSettings:
    """How a model is run for evaluation: precision, memory format, the task's thresholds."""

    amp: str = "off"
    channels_last: bool = False


class Task(Protocol):
    """Everything that differs between tasks, asked for by the engine, the CLI and export."""

    name: str
    #: What its models are called in messages: "segmentation model", "detector".
    noun: str
    #: What its data sets annotate, in messages: "masks", "boxes".
    annotations: str
    #: The name of the evaluation's ``score`` (it picks ``best.pt``), e.g. ``"mIoU"``, ``"AP"``.
    metric: str
    #: ``(record key, label)`` of the evaluation numbers ``curves.png`` draws, score first.
    curve_metrics: tuple[tuple[str, str], ...]
    #: The ``fcnlab export`` formats that hold this task's models.
    export_formats: tuple[str, ...]
    #: Whether sliding-window inference and test-time augmentation apply (``--window``/``--tta``).
    dense_inference: bool
    #: What ``fcnlab datasets check --plot`` draws of this task's data (None: no plot).
    statistics_plot: str | None

    def collate(self, ignore_index: int = IGNORE_INDEX) -> Callable[[list[Any]], Any] | None:
        """The DataLoader's ``collate_fn`` (None: PyTorch's default stacking); what it pads a
        class map with is ``ignore_index`` (the config's ``data.ignore_index``)."""
        ...

    def build_loss(self, config: Config, model: nn.Module, loss: nn.Module | None) -> LossFn:
        """``loss_fn(outputs, targets) -> scalar`` for training ``model`` by ``config``
        (``loss``: a module given by the caller in place of the configured one)."""
        ...

    def targets_to(self, targets: Any, device: torch.device) -> Any:
        """A batch's targets on ``device``."""
        ...

    def inference(self, model: nn.Module, settings: EvalSettings) -> Infer:
        """``images (N, 3, H, W) -> predictions`` as the task's evaluator takes them."""
        ...

    def evaluator(self, num_classes: int, config: Config, names: Sequence[str]) -> Evaluator:
        """A fresh evaluator for a model of ``num_classes`` trained by ``config``."""
        ...

    def result_from_record(self, record: dict[str, Any]) -> Evaluation:
        """The inverse of ``result.record()``."""
        ...

    def epoch_table(self, result: Any, title: str) -> Table:
        """The short table printed after each evaluation during training."""
        ...

    def report(
        self, result: Any, names: list[str], dataset: Dataset, out: Path
    ) -> tuple[list[Any], list[Path]]:
        """What ``fcnlab eval`` prints (rich renderables) and the pictures it writes to ``out``."""
        ...

    def write_pictures(
        self, model: nn.Module, val_set: Dataset, last: Any | None, run_dir: Path, config: Config
    ) -> list[Path]:
        """A finished run's pictures of the validation set (besides ``curves.png``)."""
        ...

    def statistics_counter(self, dataset: Dataset) -> Any:
        """A counter of ``dataset``'s annotations (``update(annotation, name)``, ``result()``)
        for ``fcnlab datasets check``."""
        ...

    def statistics_table(self, split: str, statistics: Any) -> Table:
        """The counter's result for one split as a table."""
        ...

    def plot_statistics(
        self, splits: Sequence[tuple[str, Any]], palette: Any | None
    ) -> Figure | None:
        """The ``statistics_plot`` chart of the splits' counts (None where there is none)."""
        ...

    def validate_config(self, config: Config) -> None:
        """Raise on options of ``config`` that this task cannot use, naming the key."""
        ...

    def export_graph(self, model: nn.Module) -> ExportGraph:
        """What an ONNX export of ``model`` computes: its outputs, their names and layout."""
        ...

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
        """``fcnlab predict``: run ``model`` on every readable image of ``images`` and write its
        predictions to ``out``; an image that cannot be read is skipped and listed."""
        ...


def run_evaluation(
    model: nn.Module,
    loader: Any,
    evaluator: Evaluator,
    infer: Infer,
    progress: Track | None = None,
) -> Evaluation:
    """The one evaluation loop: ``evaluator.process(infer(images), targets)`` for every batch
    of ``loader`` with ``model`` in eval mode (its mode is restored after), then
    ``evaluator.evaluate()``. ``progress`` wraps the batches to show how far it is."""
    was_training = model.training
    model.eval()
    evaluator.reset()
    try:
        for images, targets in progress(loader) if progress is not None else loader:
            evaluator.process(infer(images), targets)
    finally:
        model.train(was_training)
    return evaluator.evaluate()


def readable_images(
    paths: Iterable[Path], unreadable: list[Problem]
) -> Iterator[tuple[Path, torch.Tensor]]:
    """``(path, image (3, H, W) in [0, 1])`` for each of ``paths`` that reads as an image; one
    that does not (truncated, not an image, gone) is added to ``unreadable`` and skipped."""
    for path in paths:
        try:
            image = to_image_tensor(path)
        except (OSError, ValueError) as error:
            reason = error.reason if isinstance(error, DataFormatError) else str(error)
            unreadable.append(Problem(str(path), reason))
            continue
        yield path, image


def class_names(dataset: Dataset, num_classes: int) -> list[str]:
    """``dataset.classes`` when it has one per class, else ``"0", "1", ...``."""
    names = getattr(dataset, "classes", None)
    if names is not None and len(names) == num_classes:
        return [str(name) for name in names]
    return [str(i) for i in range(num_classes)]


def percent(value: float) -> str:
    """``value`` as a percentage with two decimals, ``"-"`` for NaN (nothing to measure)."""
    return "-" if value != value else f"{100 * value:.2f}"


def scores_table(title: str, scores: Sequence[tuple[str, float]]) -> Table:
    """One row of labelled scores in percent (the table printed after each evaluation)."""
    table = Table(title=title)
    for label, _ in scores:
        table.add_column(label, justify="right")
    table.add_row(*(percent(value) for _, value in scores))
    return table


def per_class_table(
    title: str,
    columns: Sequence[str],
    names: Sequence[str],
    per_class: Sequence[Sequence[float]],
    summary: Sequence[tuple[str, Sequence[float]]],
) -> Table:
    """Scores per class (one row per name, one column per ``columns`` entry), then a section of
    labelled summary rows (fewer values than columns leave the rest empty), in percent."""
    table = Table(title=title)
    table.add_column("class", justify="left")
    for column in columns:
        table.add_column(column, justify="right")
    for name, values in zip(names, zip(*per_class, strict=True), strict=True):
        table.add_row(name, *(percent(v) for v in values))
    table.add_section()
    for label, values in summary:
        cells = [percent(v) for v in values] + [""] * (len(columns) - len(values))
        table.add_row(f"[bold]{label}", *cells)
    return table
