"""``fcnlab eval`` of a segmentation model on a validation set whose images differ in size: any
``eval.batch_size`` works, and padding never adds a pixel to the scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers.folder_runs import folder_eval_run
from PIL import Image

from fcnlab.cli.main import main

SIZES = [(32, 32), (40, 24), (24, 48), (32, 32), (36, 28)]


def test_eval_batches_images_of_different_sizes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = {}
    for batch_size in (1, 2):
        root = tmp_path / str(batch_size)
        config, checkpoint, _ = folder_eval_run(root, SIZES, **{"eval.batch_size": batch_size})
        argv = ["eval", "-c", str(config), "--checkpoint", str(checkpoint)]
        assert main([*argv, "--out", str(root / "eval")]) == 0
        records[batch_size] = json.loads((root / "eval" / "metrics.json").read_text())
    assert "Traceback" not in capsys.readouterr().err
    masks = [np.asarray(Image.open(p)) for p in sorted((tmp_path / "1").glob("data*/masks/val/*"))]
    labelled = sum(int((mask != 255).sum()) for mask in masks)
    for record in records.values():
        assert int(np.sum(record["confusion"])) == labelled  # no padded pixel counted
    # Batched, a smaller image's pixels near its bottom and right edges see the zero padding
    # through the network's receptive field; the rest are as without a batch.
    assert records[2]["mean_iou"] == pytest.approx(records[1]["mean_iou"], abs=0.02)
