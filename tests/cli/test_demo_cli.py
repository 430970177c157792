from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from fcnlab.cli.main import main
from fcnlab.engine import load_weights
from fcnlab.metrics import segmentation_scores


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    return out / "demo"


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
