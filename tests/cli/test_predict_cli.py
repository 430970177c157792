"""``fcnlab predict``: index masks, colour masks and overlays at each input's size, with PyTorch
and with onnxruntime running an exported file."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fcnlab.cli.main import main
from fcnlab.config import Config, DataConfig, ModelConfig
from fcnlab.engine.build import build_model_from_config
from fcnlab.export import export_safetensors
from fcnlab.inference import Predictor, metadata_from_config, parse_tta

# (height, width) of the test images: odd sizes, portrait and landscape.
SIZES = {"tall": (70, 33), "wide": (37, 61), "photo": (45, 45)}


def tiny_weights(folder: Path) -> Path:
    """FCN-8s at 1/16 width for 3 Shapes classes, random scores, exported as safetensors with
    its metadata (classes, palette, mean/std): all ``fcnlab predict`` needs."""
    config = Config(
        model=ModelConfig(
            name="fcn8s", num_classes=3, options={"encoder_options": {"width": 0.0625}}
        ),
        data=DataConfig(name="shapes", options={"num_classes": 3}),
    )
    torch.manual_seed(0)
    model = build_model_from_config(config.model)
    with torch.no_grad():
        for parameter in model.parameters():
            if not parameter.any() and parameter.dim() > 1:  # FCN's zero-initialised scores
                parameter.normal_()
                parameter.sub_(parameter.mean(dim=1, keepdim=True))
    return export_safetensors(model, metadata_from_config(config), folder / "tiny.safetensors")


def write_images(folder: Path) -> dict[str, np.ndarray]:
    """Smooth random RGB images; 'photo' as a JPEG passed by name, the others in a folder."""
    rng = np.random.default_rng(0)
    images = {}
    (folder / "in").mkdir(parents=True)
    for stem, (height, width) in SIZES.items():
        base = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8)
        image = Image.fromarray(base).resize((width, height), Image.Resampling.BILINEAR)
        path = folder / ("photo.jpg" if stem == "photo" else f"in/{stem}.png")
        image.save(path, quality=95)
        images[stem] = np.asarray(Image.open(path).convert("RGB"))
    return images


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_weights(tmp_path_factory.mktemp("model"))


def check_outputs(
    out: Path, images: dict[str, np.ndarray], predictor: Predictor, alpha: float
) -> None:
    """Each image's three PNGs: at its size, the predictor's labels, palette colours, blend."""
    assert predictor.metadata is not None
    palette = predictor.metadata.palette_array()
    for stem, rgb in images.items():
        mask = np.asarray(Image.open(out / f"{stem}_mask.png"))
        color = np.asarray(Image.open(out / f"{stem}_color.png"))
        blend = np.asarray(Image.open(out / f"{stem}_overlay.png"))
        assert mask.shape == rgb.shape[:2] and mask.dtype == np.uint8
        assert color.shape == blend.shape == rgb.shape
        expected = predictor.predict(rgb).labels.numpy()
        np.testing.assert_array_equal(mask, expected)
        np.testing.assert_array_equal(color, palette[mask])
        mixed = np.round((1 - alpha) * rgb.astype(float) + alpha * palette[mask].astype(float))
        np.testing.assert_array_equal(blend, mixed.astype(np.uint8))


def test_predict_writes_three_pngs_per_image(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = write_images(tmp_path)
    out = tmp_path / "out"
    argv = [
        "predict",
        "--checkpoint",
        str(weights),
        str(tmp_path / "in"),
        str(tmp_path / "photo.jpg"),
    ]
    assert main([*argv, "--out", str(out), "--alpha", "0.4"]) == 0
    assert "wrote 9 PNGs for 3 images" in capsys.readouterr().out
    check_outputs(out, images, Predictor(weights, "cpu"), alpha=0.4)
    assert len(np.unique(np.asarray(Image.open(out / "tall_mask.png")))) > 1  # not one class


def test_predict_with_windows_and_tta(tmp_path: Path, weights: Path) -> None:
    images = {"tall": write_images(tmp_path)["tall"]}
    out = tmp_path / "out"
    options = ["--tta", "flip,scales=0.75,1", "--window", "32", "--overlap", "0.5"]
    argv = ["predict", "--checkpoint", str(weights), str(tmp_path / "in" / "tall.png")]
    assert main([*argv, "--out", str(out), *options]) == 0
    predictor = Predictor(
        weights, "cpu", window=32, overlap=0.5, tta=parse_tta("flip,scales=0.75,1")
    )
    check_outputs(out, images, predictor, alpha=0.5)


@pytest.mark.skipif(
    not all(find_spec(m) for m in ("onnx", "onnxruntime", "onnxscript")),
    reason="the export extra (onnx, onnxruntime, onnxscript) is absent",
)
def test_predict_with_onnxruntime_from_an_exported_file(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = write_images(tmp_path)
    del images["photo"]  # the folder's two images
    exported = tmp_path / "tiny.onnx"
    export = ["export", "--checkpoint", str(weights), "--format", "onnx", "--out", str(exported)]
    assert main(export) == 0
    assert "onnxruntime vs PyTorch at 64x64, 45x77" in capsys.readouterr().out
    argv = ["predict", "--checkpoint", str(exported), "--backend", "onnxruntime"]
    assert main([*argv, str(tmp_path / "in"), "--out", str(tmp_path / "onnx")]) == 0
    onnx_predictor = Predictor(exported)
    assert onnx_predictor.backend == "onnxruntime"
    check_outputs(tmp_path / "onnx", images, onnx_predictor, alpha=0.5)
    # The same labels as PyTorch's (their logits agree within 1e-4).
    argv = ["predict", "--checkpoint", str(weights), str(tmp_path / "in")]
    assert main([*argv, "--out", str(tmp_path / "pt")]) == 0
    for stem in images:
        onnx_mask = np.asarray(Image.open(tmp_path / "onnx" / f"{stem}_mask.png"))
        torch_mask = np.asarray(Image.open(tmp_path / "pt" / f"{stem}_mask.png"))
        np.testing.assert_array_equal(onnx_mask, torch_mask)


def test_predict_errors_are_one_line(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_images(tmp_path)
    base = ["predict", "--checkpoint", str(weights), "--out", str(tmp_path / "o")]
    cases = [
        ([str(tmp_path / "nope.png")], "input '" + str(tmp_path / "nope.png") + "' is neither"),
        ([str(tmp_path / "in"), "--alpha", "2"], "--alpha 2.0 must be in [0, 1]"),
        ([str(tmp_path / "in"), "--backend", "onnxruntime"], "onnxruntime runs .onnx files"),
        ([str(tmp_path / "in"), "--tta", "flop"], "unknown item 'flop'"),
        ([str(tmp_path / "in"), "--overlap", "1"], "--overlap 1.0 must be in [0, 1)"),
    ]
    for extra, message in cases:
        assert main([*base, *extra]) == 1
        err = " ".join(capsys.readouterr().err.split())
        assert message in err and "Traceback" not in err
