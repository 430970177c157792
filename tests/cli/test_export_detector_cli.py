"""``fcnlab export --format onnx`` of a detector checkpoint, then ``fcnlab predict --backend
onnxruntime`` on the file: the same ``detections.json`` as PyTorch's (boxes to 1e-3 px, scores
to 1e-4, the same boxes kept)."""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.detectors import with_fixed_boxes
from PIL import Image

from fcnlab.cli.main import main
from fcnlab.config import Config, DataConfig, ModelConfig, config_to_dict
from fcnlab.models.from_config import build_model_from_config
from fcnlab.runtime.checkpoint import save_checkpoint

pytestmark = pytest.mark.skipif(
    not all(find_spec(m) for m in ("onnx", "onnxruntime", "onnxscript")),
    reason="the export extra (onnx, onnxruntime, onnxscript) is absent",
)
# (height, width) of the images: odd, portrait and landscape.
SIZES = {"wide": (67, 93), "tall": (77, 45)}


def detector_checkpoint(folder: Path) -> Path:
    """A narrow CenterNet for Shapes' disks and squares in the engine's checkpoint format,
    untrained but with boxes above the default threshold (``with_fixed_boxes``)."""
    config = Config(
        model=ModelConfig(
            name="centernet", num_classes=2, encoder="vgg16",
            options={"encoder_options": {"width": 0.0625}, "decoder_channels": [8, 8, 8],
                     "head_channels": 8},
        ),
        data=DataConfig(name="shapes", options={"num_classes": 2, "num_images": 2}),
    )  # fmt: skip
    torch.manual_seed(0)
    model = with_fixed_boxes(build_model_from_config(config.model))
    payload = {"model": model.state_dict(), "config": config_to_dict(config)}
    return save_checkpoint(folder / "detector.pt", payload)


def write_images(folder: Path) -> None:
    """Smooth random RGB images of ``SIZES``."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for stem, (height, width) in SIZES.items():
        base = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8)
        image = Image.fromarray(base).resize((width, height), Image.Resampling.BILINEAR)
        image.save(folder / f"{stem}.png")


def test_onnxruntime_predictions_match_pytorch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint, exported = detector_checkpoint(tmp_path), tmp_path / "detector.onnx"
    write_images(tmp_path / "in")
    argv = ["export", "--checkpoint", str(checkpoint), "--format", "onnx", "--out", str(exported)]
    assert main(argv) == 0
    report = " ".join(capsys.readouterr().out.split())
    assert f"wrote {exported} (onnx, centernet, 2 classes: disk, square)" in report
    assert "onnxruntime vs PyTorch at 64x64, 45x77: max |difference|" in report
    assert "over heatmap, size, offset" in report
    written = {}
    for backend, model in (("torch", checkpoint), ("onnxruntime", exported)):
        out = tmp_path / backend
        argv = ["predict", "--checkpoint", str(model), "--backend", backend, "--out", str(out)]
        assert main([*argv, "--device", "cpu", str(tmp_path / "in")]) == 0
        assert "wrote 2 pictures with boxes" in capsys.readouterr().out
        written[backend] = json.loads((out / "detections.json").read_text())
    onnx, torch_ = written["onnxruntime"], written["torch"]
    assert onnx["images"] == torch_["images"] and onnx["categories"] == torch_["categories"]
    assert len(onnx["annotations"]) == len(torch_["annotations"]) > 2 * len(SIZES)
    for mine, reference in zip(onnx["annotations"], torch_["annotations"], strict=True):
        assert (mine["image_id"], mine["category_id"]) == (
            reference["image_id"],
            reference["category_id"],
        )
        assert mine["bbox"] == pytest.approx(reference["bbox"], abs=1e-3)
        assert mine["score"] == pytest.approx(reference["score"], abs=1e-4)
