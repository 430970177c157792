"""Instance segmentation models that deploy: the ONNX graph of CondInst and SOLOv2 holds their raw
forward outputs by name at any size, described with the model's numbers, and fcnlab's decoding
of onnxruntime's outputs gives PyTorch's instances at odd sizes: the same kept instances with
the same labels in the same order, scores to 1e-4, masks pasted at the input's size equal to
within 0.5 % of their pixels."""

from __future__ import annotations

import math
from importlib.util import find_spec
from pathlib import Path

import pytest
import torch
from helpers.instance_exports import (
    BOX_TOLERANCE,
    ODD_SIZES,
    instance_model_config,
    spread_instance_model,
)
from torch import nn

from fcnlab.inference import ModelMetadata
from fcnlab.inference.export import export_model, onnx_metadata
from fcnlab.models.instance.dynamic import dynamic_params_count
from fcnlab.ops.masks import paste_masks
from fcnlab.tasks.deploy import SAMPLE_SIZE, OnnxArchitecture
from fcnlab.tasks.detection.deploy import OUTPUT_MEANINGS as DETECTION_MEANINGS
from fcnlab.tasks.instance.deploy import output_meanings
from fcnlab.tasks.instance.evaluate import segment_instances

pytestmark = pytest.mark.skipif(
    not all(find_spec(m) for m in ("onnx", "onnxruntime", "onnxscript")),
    reason="the export extra (onnx, onnxruntime, onnxscript) is absent",
)
MODELS = ("condinst", "solov2")
OUTPUTS = {
    "condinst": (
        "cls_logits", "ltrb", "centerness", "controller", "mask_features", "points", "level",
    ),
    "solov2": ("cate_logits", "kernels", "mask_features"),
}  # fmt: skip
# (batch, height, width) of the comparisons: the helper's odd sizes, the first with 2 images.
SIZES = {
    name: [(2 - k, height, width) for k, (height, width) in enumerate(sizes)]
    for name, sizes in ODD_SIZES.items()
}
CLASSES = ["disk", "square", "triangle"]


def instance_metadata(name: str) -> ModelMetadata:
    config = instance_model_config(name, len(CLASSES))
    return ModelMetadata(
        name=name,
        num_classes=len(CLASSES),
        classes=CLASSES,
        palette=[[230, 25, 75], [60, 180, 75], [0, 130, 200]],
        mean=[0.5, 0.4, 0.3],
        std=[0.2, 0.25, 0.3],
        encoder=config.encoder,
        options=config.options,
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[nn.Module, Path]]:
    """Each model with its weights moved at random (scores spread out), exported once without
    the graph optimiser (``fcnlab export`` runs it: ``tests/cli``)."""
    folder = tmp_path_factory.mktemp("instance_models")
    exports = {}
    for name in MODELS:
        model = spread_instance_model(name, len(CLASSES))
        path = export_model(
            model, instance_metadata(name), "onnx", folder / f"{name}.onnx", optimize=False
        )
        exports[name] = model, path
    return exports


@pytest.mark.parametrize("name", MODELS)
def test_the_graph_returns_the_raw_outputs_by_name_and_describes_them(
    name: str, exported: dict[str, tuple[nn.Module, Path]]
) -> None:
    import onnx

    model, path = exported[name]
    graph = onnx.load(str(path)).graph
    assert tuple(output.name for output in graph.output) == OUTPUTS[name]
    dims = graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param != "" for d in dims] == [True, False, True, True]  # N, 3, H, W
    metadata = onnx_metadata(path)
    assert metadata.model_config() == instance_metadata(name).model_config()
    with torch.no_grad():
        sample = model(torch.zeros(1, 3, *SAMPLE_SIZE))
    assert metadata.output == output_meanings(model, sample)
    assert set(metadata.output) == set(OUTPUTS[name])
    # The numbers the meanings quote are the model's own.
    meaning = metadata.output
    if name == "condinst":
        for key in ("cls_logits", "ltrb", "centerness", "points", "level"):
            assert meaning[key] == DETECTION_MEANINGS[key]  # FCOS's, as detectors export them
        assert f"P = {dynamic_params_count(8 + 2, 8, 3)}:" in meaning["controller"]  # 169
        assert "64, 128, 256, 512, 1024 from the finest" in meaning["controller"]
        assert "E = 8, 8 input pixels per cell" in meaning["mask_features"]
    else:
        cells = sum(s * s for s in (40, 36, 24, 16, 12))
        assert f"L = {cells}: the S x S grids S = 40, 36, 24, 16, 12" in meaning["cate_logits"]
        assert "E = 16 channels" in meaning["kernels"]
        assert "E = 16, 4 input pixels per cell" in meaning["mask_features"]
    deployed = OnnxArchitecture(path)
    assert not list(deployed.parameters())  # the rebuilt architecture holds no weights
    assert (deployed.task, deployed.num_classes, deployed.mask_stride) == ("instance", 3, 4)
    images = torch.randn(2, 3, 67, 93, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(images)
    found = deployed(images)
    assert list(found) == list(expected)
    for key, value in expected.items():
        assert found[key].dtype == value.dtype and found[key].shape == value.shape
        torch.testing.assert_close(found[key], value, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_onnxruntime_instances_match_pytorch(
    name: str, exported: dict[str, tuple[nn.Module, Path]]
) -> None:
    model, path = exported[name]
    deployed = OnnxArchitecture(path)
    generator = torch.Generator().manual_seed(2)
    for batch, height, width in SIZES[name]:
        images = torch.randn(batch, 3, height, width, generator=generator)
        # COCO's threshold 0.05 and top 100, as the evaluation decodes.
        expected = segment_instances(model, images, score_threshold=0.05)
        found = segment_instances(deployed, images, score_threshold=0.05)
        assert len(found) == batch
        for mine, reference in zip(found, expected, strict=True):
            assert len(reference["scores"]) > 3  # a comparison of something
            assert torch.equal(mine["labels"], reference["labels"])
            torch.testing.assert_close(mine["scores"], reference["scores"], atol=1e-4, rtol=0)
            tolerance = BOX_TOLERANCE[name]
            torch.testing.assert_close(mine["boxes"], reference["boxes"], atol=tolerance, rtol=0)
            size = (height, width)
            assert mine["masks"].shape[-2:] == (math.ceil(height / 4), math.ceil(width / 4))
            pasted = paste_masks(mine["masks"], mine["mask_stride"], size)
            truth = paste_masks(reference["masks"], reference["mask_stride"], size)
            assert truth.flatten(1).any(dim=1).sum() > 3  # masks with pixels to compare
            differing = (pasted != truth).flatten(1).sum(dim=1)
            assert int(differing.max()) <= 0.005 * height * width
