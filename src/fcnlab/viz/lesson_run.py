"""Section 7 of the lesson: a training run's curves with its stages, read from ``metrics.jsonl``.

The run folder is the engine's (``fcnlab.runtime.run_dir``): one JSON record per line, ``kind``
``"train"`` (loss, lr) or ``"eval"`` (``mean_iou`` and friends), each with ``stage`` (0-based),
``epoch`` and ``step``. The curves are ``fcnlab.viz.plots.plot_curves``, drawn as the training
report draws them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from fcnlab.runtime.run_dir import read_metrics
from fcnlab.viz.plots import plot_curves, stage_label

METRICS_FILE = "metrics.jsonl"
# The staged-training section is about a segmentation run (the demo's): its curves show these.
CURVE_KEYS = ("mean_iou", "pixel_accuracy")


@dataclass(frozen=True)
class StageScore:
    """The last evaluation of one stage: the mIoU the stage ended with."""

    stage: Any  # 0-based index as logged, or a name
    step: int
    mean_iou: float | None  # None where the run logged no number (NaN is written as null)


def missing_metrics(run: Path | None) -> str | None:
    """Why a run section cannot be drawn (no run given, or no metrics in it), else None."""
    if run is None:
        return "give a training run folder with --run runs/NAME to draw it"
    if not (run / METRICS_FILE).is_file():
        return f"run folder '{run}' has no {METRICS_FILE}"
    return None


def stage_scores(records: Sequence[Mapping[str, Any]]) -> list[StageScore]:
    """The last ``"eval"`` record of each stage, in stage order of first appearance."""
    last: dict[Any, Mapping[str, Any]] = {}
    for record in sorted(records, key=lambda r: r.get("step", 0)):
        if record.get("kind") == "eval" and "stage" in record:
            last[record["stage"]] = record
    return [
        StageScore(stage, int(record.get("step", 0)), record.get("mean_iou"))
        for stage, record in last.items()
    ]


def plot_run_curves(run: str | Path) -> Figure:
    """Section 7: loss, learning rate and evaluations of ``run``, stage boundaries dashed."""
    return plot_curves(read_metrics(Path(run) / METRICS_FILE), CURVE_KEYS)


def run_facts(run: str | Path) -> list[str]:
    """One line per stage: the mIoU it ended with."""
    facts = []
    for score in stage_scores(read_metrics(Path(run) / METRICS_FILE)):
        miou = "not logged" if score.mean_iou is None else f"{score.mean_iou:.4f}"
        facts.append(f"{stage_label(score.stage)}: mIoU {miou} at step {score.step}")
    return facts or ["the run has no evaluation records yet"]
