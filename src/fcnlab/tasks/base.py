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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from matplotlib.figure import Figure
from rich.table import Table
from torch import nn
from torch.utils.data import Dataset

from fcnlab.config import Config

Infer = Callable[[torch.Tensor], Any]
LossFn = Callable[[Any, Any], torch.Tensor]


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

    def collate(self) -> Callable[[list[Any]], Any] | None:
        """The DataLoader's ``collate_fn`` (None: PyTorch's default stacking)."""
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


def run_evaluation(model: nn.Module, loader: Any, evaluator: Evaluator, infer: Infer) -> Evaluation:
    """The one evaluation loop: ``evaluator.process(infer(images), targets)`` for every batch
    of ``loader`` with ``model`` in eval mode (its mode is restored after), then
    ``evaluator.evaluate()``."""
    was_training = model.training
    model.eval()
    evaluator.reset()
    try:
        for images, targets in loader:
            evaluator.process(infer(images), targets)
    finally:
        model.train(was_training)
    return evaluator.evaluate()


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
