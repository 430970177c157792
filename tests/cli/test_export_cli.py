"""``fcnlab export``: a checkpoint as the engine writes it, to safetensors and TorchScript with
the run's metadata; clear errors. (ONNX from the command line: ``test_predict_cli.py``.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fcnlab.cli.main import main
from fcnlab.config import Config, DataConfig, ModelConfig, config_to_dict
from fcnlab.inference import load_trained
from fcnlab.inference.export import load_torchscript
from fcnlab.models.from_config import build_model_from_config
from fcnlab.runtime.checkpoint import save_checkpoint

CONFIG = Config(
    model=ModelConfig(name="fcn32s", num_classes=3, options={"encoder_options": {"width": 0.0625}}),
    data=DataConfig(name="shapes", options={"num_classes": 3}),
)


@pytest.fixture
def checkpoint(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    """``last.pt`` with a model and the config, in the engine's checkpoint format, outside any
    run folder (the config travels inside)."""
    torch.manual_seed(0)
    model = build_model_from_config(CONFIG.model).eval()
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"model": model.state_dict(), "config": config_to_dict(CONFIG)})
    return path, model


def test_export_safetensors_and_torchscript(
    tmp_path: Path, checkpoint: tuple[Path, torch.nn.Module], capsys: pytest.CaptureFixture[str]
) -> None:
    path, model = checkpoint
    out = tmp_path / "exported"
    for fmt, name in (("safetensors", "m.safetensors"), ("torchscript", "m.ts")):
        argv = ["export", "--checkpoint", str(path), "--format", fmt, "--out", str(out / name)]
        assert main(argv) == 0
        report = " ".join(capsys.readouterr().out.split())
        assert f"({fmt}, fcn32s, 3 classes: background, disk, square)" in report
    images = torch.randn(1, 3, 45, 37)
    with torch.no_grad():
        expected = model(images)
        loaded, metadata = load_trained(out / "m.safetensors")
        torch.testing.assert_close(loaded(images), expected)
        scripted, same = load_torchscript(out / "m.ts")
        torch.testing.assert_close(scripted(images), expected, atol=1e-5, rtol=1e-5)
    assert metadata == same and metadata.classes == ["background", "disk", "square"]
    assert metadata.mean == CONFIG.data.transforms.mean


def test_export_errors_are_one_line(
    tmp_path: Path, checkpoint: tuple[Path, torch.nn.Module], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = checkpoint
    missing = tmp_path / "missing.pt"
    argv = ["export", "--checkpoint", str(missing), "--format", "onnx", "--out", "x.onnx"]
    assert main(argv) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert f"weights file {str(missing)!r} does not exist" in err and "Traceback" not in err
    with pytest.raises(SystemExit):  # argparse lists the formats
        main(["export", "--checkpoint", str(path), "--format", "tflite", "--out", "x"])
    assert "invalid choice: 'tflite'" in capsys.readouterr().err
