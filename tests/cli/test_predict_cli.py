"""``fcnlab predict``: index masks, colour masks and overlays at each input's size, with PyTorch
and with onnxruntime running an exported file."""

from __future__ import annotations

import contextlib
import io
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
from fcnlab.data.transforms import normalize
from fcnlab.inference import Predictor, metadata_from_config, parse_tta
from fcnlab.inference.export import export_safetensors
from fcnlab.models.from_config import build_model_from_config
from fcnlab.runtime.checkpoint import save_checkpoint

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


def add_unreadable_images(folder: Path) -> list[Path]:
    """A truncated PNG and a text file named .jpg in ``folder``, sorted before its good images
    (a run that stopped at the first bad file would write nothing)."""
    good = (folder / "tall.png").read_bytes()
    truncated, text = folder / "broken[final].png", folder / "notes.jpg"
    truncated.write_bytes(good[: len(good) // 2])
    text.write_text("not an image\n")
    return [truncated, text]


def check_unreadable_listed(err: str, bad: list[Path], total: int) -> None:
    """stderr: one line saying how many images failed, then each file (literally) and why."""
    lines = err.splitlines()
    assert lines[0] == (
        f"error: {len(bad)} of {total} images could not be read and have no predictions:"
    )
    assert len(lines) == 1 + len(bad)
    for line, path in zip(lines[1:], bad, strict=True):
        assert line.startswith(f"  {path}: cannot read image: ")


def test_predict_goes_on_past_unreadable_images_and_lists_them(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = write_images(tmp_path)
    del images["photo"]
    bad = add_unreadable_images(tmp_path / "in")
    out = tmp_path / "out"
    assert (
        main(["predict", "--checkpoint", str(weights), str(tmp_path / "in"), "--out", str(out)])
        == 1
    )
    captured = capsys.readouterr()
    assert "wrote 6 PNGs for 2 images" in captured.out
    check_outputs(out, images, Predictor(weights, "cpu"), alpha=0.5)
    check_unreadable_listed(captured.err, bad, total=4)
    assert sorted(path.name for path in out.iterdir()) == sorted(
        f"{stem}_{kind}.png" for stem in images for kind in ("mask", "color", "overlay")
    )


def tiny_detector(folder: Path) -> tuple[Path, torch.nn.Module]:
    """A CenterNet checkpoint in the engine's format for Shapes' disks and squares, untrained but
    with boxes to draw: every box 4 x 4 cells (16 px), heatmap peaks near 0.5."""
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
    return save_checkpoint(folder / "detector.pt", payload), model.eval()


def test_predict_with_a_detector_draws_boxes_and_writes_coco_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pycocotools.coco import COCO

    from fcnlab.inference import to_image_tensor
    from fcnlab.viz.boxes import draw_detections

    checkpoint, model = tiny_detector(tmp_path)
    images = write_images(tmp_path)
    out = tmp_path / "out"
    inputs = [str(tmp_path / "in"), str(tmp_path / "photo.jpg")]
    argv = ["predict", "--checkpoint", str(checkpoint), *inputs, "--out", str(out)]
    assert main([*argv, "--score-threshold", "0.5"]) == 0
    assert "wrote 3 pictures with boxes" in capsys.readouterr().out
    written = json.loads((out / "detections.json").read_text())
    assert written["categories"] == [{"id": 1, "name": "disk"}, {"id": 2, "name": "square"}]
    ids = {Path(image["file_name"]).stem: image["id"] for image in written["images"]}
    assert sorted(ids) == sorted(images)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(out / "detections.json"))  # pycocotools reads the file as it is
    assert len(coco.getAnnIds()) == len(written["annotations"]) > 0
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]  # the config's normalisation
    for stem, rgb in images.items():
        image = to_image_tensor(rgb)
        with torch.no_grad():
            found = model.decode(model(normalize(image[None], mean, std)), image.shape[1:])[0]
        keep = found["scores"] >= 0.5
        boxes, scores, labels = found["boxes"][keep], found["scores"][keep], found["labels"][keep]
        entries = [a for a in written["annotations"] if a["image_id"] == ids[stem]]
        assert len(entries) == len(boxes)
        for entry, box, score, label in zip(entries, boxes, scores, labels, strict=True):
            x1, y1, x2, y2 = box.tolist()
            assert entry["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1], abs=1e-4)
            assert entry["score"] == pytest.approx(float(score), abs=1e-6)
            assert entry["category_id"] == int(label) + 1
        drawn = np.asarray(Image.open(out / f"{stem}_boxes.png"))
        assert drawn.shape == rgb.shape
        palette = np.array([[230, 25, 75], [60, 180, 75]], dtype=np.uint8)  # Shapes' colours
        expected = draw_detections(rgb, boxes, labels, scores, ["disk", "square"], palette)
        np.testing.assert_array_equal(drawn, np.asarray(expected))
    cases = [
        (["--score-threshold", "1.5"], "--score-threshold 1.5 must be in [0, 1]"),
        (["--window", "32"], "--tta and --window apply to segmentation models"),
    ]
    for extra, message in cases:
        assert main([*argv, *extra]) == 1
        assert message in " ".join(capsys.readouterr().err.split())


def test_predict_with_a_detector_goes_on_past_unreadable_images(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint, _ = tiny_detector(tmp_path)
    images = write_images(tmp_path)
    bad = add_unreadable_images(tmp_path / "in")
    out = tmp_path / "out"
    inputs = [str(tmp_path / "in"), str(tmp_path / "photo.jpg")]
    assert main(["predict", "--checkpoint", str(checkpoint), *inputs, "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert "wrote 3 pictures with boxes" in captured.out
    check_unreadable_listed(captured.err, bad, total=5)
    written = json.loads((out / "detections.json").read_text())
    assert sorted(Path(image["file_name"]).stem for image in written["images"]) == sorted(images)
    assert [image["id"] for image in written["images"]] == [0, 1, 2]
    assert {entry["image_id"] for entry in written["annotations"]} <= {0, 1, 2}
    assert sorted(path.name for path in out.glob("*_boxes.png")) == sorted(
        f"{stem}_boxes.png" for stem in images
    )
