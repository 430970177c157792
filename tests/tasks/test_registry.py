"""The task registry and the Task protocol: every registered task answers every question the
engine, the command line and export ask."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from fcnlab.models import build_model, list_models, model_task
from fcnlab.tasks import (
    DEFAULT_TASK,
    Task,
    get_task,
    run_evaluation,
    task_names,
    task_of,
    task_of_model_name,
)
from fcnlab.tasks.base import per_class_table, percent, scores_table

PROTOCOL_METHODS = [
    name for name, value in vars(Task).items() if inspect.isfunction(value) and name[0] != "_"
]
PROTOCOL_FIELDS = list(Task.__annotations__)


def test_every_task_is_registered() -> None:
    assert task_names() == ["detection", "instance", "segmentation"]
    assert get_task("detection") is get_task("detection")  # one shared instance
    with pytest.raises(
        KeyError, match="unknown task 'panoptic'; known: detection, instance, segmentation"
    ):
        get_task("panoptic")


@pytest.mark.parametrize("name", ["detection", "instance", "segmentation"])
def test_every_task_implements_the_protocol(name: str) -> None:
    task = get_task(name)
    assert task.name == name
    missing = [m for m in PROTOCOL_METHODS + PROTOCOL_FIELDS if not hasattr(task, m)]
    assert not missing
    assert set(task.export_formats) <= {"onnx", "safetensors", "torchscript"}


@pytest.mark.parametrize("name", ["fcn8s", "unet", "centernet", "fcos"])
def test_task_of_a_model_matches_its_name(name: str) -> None:
    model = build_model(name, 3, encoder="vgg16", encoder_options={"width": 0.125})
    assert task_of(model) is task_of_model_name(name) is get_task(model_task(name))


def test_a_model_without_a_task_attribute_segments_and_an_unknown_one_is_refused() -> None:
    assert task_of(nn.Conv2d(3, 2, 1)).name == DEFAULT_TASK == "segmentation"
    odd = nn.Conv2d(3, 2, 1)
    odd.task = "panoptic"  # type: ignore[assignment]
    with pytest.raises(ValueError, match="Conv2d has task 'panoptic'; known tasks"):
        task_of(odd)


def test_every_registered_model_has_a_registered_task() -> None:
    assert {model_task(name) for name in list_models()} <= set(task_names())


class Counting:
    """An evaluator that records what the loop hands it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def reset(self) -> None:
        self.calls.append("reset")

    def process(self, predictions: torch.Tensor, targets: torch.Tensor) -> None:
        self.calls.append(f"process {predictions.sum().item():g} {targets.item()}")

    def evaluate(self) -> list[str]:
        self.calls.append("evaluate")
        return self.calls


def test_run_evaluation_resets_processes_every_batch_evaluates_and_restores_the_mode() -> None:
    model = nn.Identity().train()
    loader = [(torch.ones(1, 2), torch.tensor(7)), (torch.full((1, 3), 2.0), torch.tensor(8))]
    seen_modes = []

    def infer(images: torch.Tensor) -> torch.Tensor:
        seen_modes.append(model.training)
        return images

    calls = run_evaluation(model, loader, Counting(), infer)
    assert calls == ["reset", "process 2 7", "process 6 8", "evaluate"]
    assert seen_modes == [False, False] and model.training


def test_run_evaluation_shows_its_progress_through_the_wrapper_it_is_given() -> None:
    loader = [(torch.ones(1, 2), torch.tensor(k)) for k in range(3)]
    shown = []

    def progress(batches: list) -> Iterator:
        for batch in batches:
            yield batch
            shown.append(len(shown) + 1)

    calls = run_evaluation(nn.Identity(), loader, Counting(), lambda images: images, progress)
    assert shown == [1, 2, 3] and calls[1:-1] == [f"process 2 {k}" for k in range(3)]


def test_tables_print_percent_and_dashes_for_nan() -> None:
    assert percent(0.12345) == "12.35" and percent(float("nan")) == "-"
    table = per_class_table("t", ("IoU", "acc"), ["a", "b"], ([0.5, 1.0], [0.25, float("nan")]),
                            [("mean", [0.75])])  # fmt: skip
    assert [c.header for c in table.columns] == ["class", "IoU", "acc"]
    assert list(table.columns[1].cells) == ["50.00", "100.00", "75.00"]
    assert list(table.columns[2].cells) == ["25.00", "-", ""]
    assert list(scores_table("s", [("AP", 0.5)]).columns[0].cells) == ["50.00"]
