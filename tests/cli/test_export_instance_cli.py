"""``fcnlab export --format onnx`` of an instance segmentation checkpoint (CondInst, SOLOv2), then
``fcnlab predict --backend onnxruntime`` on the file: the same ``instances.json`` as PyTorch's
(the same instances with the same classes in the same order, scores to 1e-4, masks at the
image's size equal to within 0.5 % of their pixels)."""

from __future__ import annotations

import json
import re
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
from helpers.instance_exports import (
    BOX_TOLERANCE,
    ODD_SIZES,
    instance_model_config,
    spread_instance_model,
)
from PIL import Image
from pycocotools import mask as mask_utils

from fcnlab.cli.main import main
from fcnlab.config import Config, DataConfig, config_to_dict
from fcnlab.runtime.checkpoint import save_checkpoint

pytestmark = pytest.mark.skipif(
    not all(find_spec(m) for m in ("onnx", "onnxruntime", "onnxscript")),
    reason="the export extra (onnx, onnxruntime, onnxscript) is absent",
)
OUTPUTS = {
    "condinst": "cls_logits, ltrb, centerness, controller, mask_features, points, level",
    "solov2": "cate_logits, kernels, mask_features",
}


def instance_checkpoint(name: str, folder: Path) -> Path:
    """The narrow ``name`` for Shapes' disks, squares and triangles with its scores spread out
    (the deploy tests' model), in the engine's checkpoint format."""
    config = Config(
        model=instance_model_config(name, 3),
        data=DataConfig(name="shapes", options={"num_classes": 3, "num_images": 2}),
    )
    model = spread_instance_model(name, 3)
    payload = {"model": model.state_dict(), "config": config_to_dict(config)}
    return save_checkpoint(folder / f"{name}.pt", payload)


def write_images(folder: Path, sizes: tuple[tuple[int, int], ...]) -> list[str]:
    """Random RGB images of ``sizes``; their stems."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    stems = []
    for height, width in sizes:
        stems.append(f"image_{height}x{width}")
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{stems[-1]}.png")
    return stems


@pytest.mark.parametrize("name", ["condinst", "solov2"])
def test_onnxruntime_instances_match_pytorch(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint, exported = instance_checkpoint(name, tmp_path), tmp_path / f"{name}.onnx"
    write_images(tmp_path / "in", ODD_SIZES[name])
    argv = ["export", "--checkpoint", str(checkpoint), "--format", "onnx", "--out", str(exported)]
    assert main(argv) == 0
    report = " ".join(capsys.readouterr().out.split())
    assert f"wrote {exported} (onnx, {name}, 3 classes: disk, square, triangle)" in report
    checked = re.search(
        r"onnxruntime vs PyTorch at 64x64, 45x77: max \|difference\| (\S+) ", report
    )
    assert checked is not None and float(checked.group(1)) < 1e-3
    assert f"over {OUTPUTS[name]}" in report
    written = {}
    for backend, model in (("torch", checkpoint), ("onnxruntime", exported)):
        out = tmp_path / backend
        argv = ["predict", "--checkpoint", str(model), "--backend", backend, "--out", str(out)]
        # COCO's evaluation threshold: the spread models' instances score 0.05 to 0.7.
        argv += ["--device", "cpu", "--score-threshold", "0.05", str(tmp_path / "in")]
        assert main(argv) == 0
        assert "wrote 2 pictures of instances" in capsys.readouterr().out
        written[backend] = json.loads((out / "instances.json").read_text())
    onnx, torch_ = written["onnxruntime"], written["torch"]
    assert onnx["images"] == torch_["images"] and onnx["categories"] == torch_["categories"]
    sizes = {image["id"]: (image["height"], image["width"]) for image in torch_["images"]}
    assert len(onnx["annotations"]) == len(torch_["annotations"]) > 4 * len(sizes)
    for mine, reference in zip(onnx["annotations"], torch_["annotations"], strict=True):
        assert (mine["image_id"], mine["category_id"]) == (
            reference["image_id"],
            reference["category_id"],
        )
        assert mine["score"] == pytest.approx(reference["score"], abs=1e-4)
        assert mine["bbox"] == pytest.approx(reference["bbox"], abs=BOX_TOLERANCE[name])
        mask = mask_utils.decode(mine["segmentation"]).astype(bool)
        truth = mask_utils.decode(reference["segmentation"]).astype(bool)
        height, width = sizes[reference["image_id"]]
        assert mask.shape == truth.shape == (height, width)
        assert (mask != truth).sum() <= 0.005 * height * width
