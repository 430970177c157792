"""The segmentation demo's quick run: its run folder, its scores and the model it builds."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from helpers.demo_runs import QuickRun, run_quick

from fcnlab.demos.segmentation import (
    FULL_PLAN,
    QUICK_PLAN,
    RUN_NAME,
    fcn_from_classifier,
    run_segmentation_demo,
    segmentation_config,
)
from fcnlab.engine import load_weights
from fcnlab.models import build_classifier, build_model
from fcnlab.tasks import task_of_model_name
from fcnlab.tasks.segmentation.metrics import segmentation_scores


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> QuickRun:
    return run_quick(run_segmentation_demo, tmp_path_factory.mktemp("demo"), RUN_NAME)


@pytest.fixture(scope="module")
def quick_demo(quick: QuickRun) -> Path:
    return quick.run_dir


def test_quick_demo_writes_the_whole_run_folder(quick_demo: Path) -> None:
    for name in ("metrics.json", "metrics.jsonl", "config.yaml", "curves.png", "confusion.png",
                 "overlays.png", "final.safetensors", "checkpoints/last.pt"):  # fmt: skip
        assert (quick_demo / name).is_file(), name


def test_metrics_json_holds_held_out_scores_at_the_top_level(quick_demo: Path) -> None:
    metrics = json.loads((quick_demo / "metrics.json").read_text())
    for key in ("mean_iou", "pixel_accuracy", "mean_accuracy", "fw_iou", "classifier_accuracy"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert len(metrics["iou"]) == len(metrics["classes"]) == 6
    assert metrics["after_fine_tuning"]["mean_iou"] == metrics["mean_iou"]
    assert "after_frozen_encoder" in metrics and metrics["quick"] is True


def test_run_returns_what_metrics_json_holds_and_prints_the_table(quick: QuickRun) -> None:
    summary, printed = quick.summary, quick.printed
    assert json.loads((quick.run_dir / "metrics.json").read_text()) == summary
    assert summary["held_out_images"] == QUICK_PLAN.val_images and summary["seconds"] > 0
    assert "Held-out Shapes images (%)" in printed
    assert f"{100 * summary['mean_iou']:.1f}" in printed
    assert f"demo finished in {summary['seconds']:.0f} s." in printed


def test_final_scores_agree_with_the_logged_confusion_matrix(quick_demo: Path) -> None:
    # The last evaluation line of metrics.jsonl carries the confusion matrix; the published
    # definitions recomputed from it must give the numbers in metrics.json.
    lines = [json.loads(line) for line in (quick_demo / "metrics.jsonl").read_text().splitlines()]
    last = [line for line in lines if line.get("kind") == "eval"][-1]
    scores = segmentation_scores(torch.tensor(last["confusion"]))
    metrics = json.loads((quick_demo / "metrics.json").read_text())
    for key in ("mean_iou", "pixel_accuracy", "mean_accuracy", "fw_iou"):
        assert math.isclose(scores[key], metrics[key], rel_tol=1e-9), key


def test_final_weights_are_an_fcn8s_with_a_convolutionalized_encoder(quick_demo: Path) -> None:
    weights = load_weights(quick_demo / "final.safetensors")
    assert "encoder.fc.0.weight" in weights  # fc6 as a convolution
    assert weights["encoder.fc.0.weight"].dim() == 4


def test_fcn_from_classifier_is_the_builder_given_the_classifiers_weights() -> None:
    # The demo builds from its config and loads the classifier into the encoder afterwards; the
    # same seed must give the model the builder makes with the weights passed in.
    plan = QUICK_PLAN
    classifier = build_classifier(plan.encoder, num_classes=6, width=plan.width, fc6_kernel=1)
    torch.manual_seed(0)
    mine = fcn_from_classifier(segmentation_config(plan, "runs").model, classifier)
    torch.manual_seed(0)
    options = {"width": plan.width, "fc6_kernel": 1}
    expected = build_model(
        "fcn8s", 6, plan.encoder, classifier.state_dict(), encoder_options=options
    )
    assert mine.state_dict().keys() == expected.state_dict().keys()
    for key, value in expected.state_dict().items():
        torch.testing.assert_close(mine.state_dict()[key], value, rtol=0, atol=0, msg=key)


def test_the_demo_trains_a_model_of_the_task_it_is_registered_under() -> None:
    assert task_of_model_name(segmentation_config(FULL_PLAN, "runs").model.name).name == (
        "segmentation"
    )
