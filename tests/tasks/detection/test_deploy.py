"""Detectors that deploy: the ONNX graph holds the raw head outputs by name at any size, and
fcnlab's decoding of onnxruntime's outputs gives PyTorch's detections (the same kept boxes, in
the same order, boxes to 1e-3 px and scores to 1e-4) at odd sizes."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import pytest
import torch
from torch import nn

from fcnlab.inference import ModelMetadata
from fcnlab.inference.export import export_model, onnx_metadata
from fcnlab.models.from_config import build_model_from_config
from fcnlab.tasks.detection.deploy import OUTPUT_MEANINGS, OnnxDetector
from fcnlab.tasks.detection.evaluate import detect

pytestmark = pytest.mark.skipif(
    not all(find_spec(m) for m in ("onnx", "onnxruntime", "onnxscript")),
    reason="the export extra (onnx, onnxruntime, onnxscript) is absent",
)
# Narrow detectors on VGG-16, whose floor-mode pools leave CenterNet's decoder a row and a
# column short at odd sizes (the edge padding must be in the graph at every size).
DETECTORS = {
    "fcos": {"encoder_options": {"width": 0.125}, "fpn_channels": 32, "head_depth": 1},
    "centernet": {"encoder_options": {"width": 0.125}},
}
OUTPUTS = {
    "fcos": ("cls_logits", "ltrb", "centerness", "points", "level"),
    "centernet": ("heatmap", "size", "offset"),
}
# (batch, height, width): odd sizes, neither a multiple of the encoder's stride.
SIZES = [(2, 67, 93), (1, 45, 77)]


def detector_metadata(name: str) -> ModelMetadata:
    return ModelMetadata(
        name=name,
        num_classes=3,
        classes=["disk", "square", "triangle"],
        palette=[[230, 25, 75], [60, 180, 75], [0, 130, 200]],
        mean=[0.5, 0.4, 0.3],
        std=[0.2, 0.25, 0.3],
        encoder="vgg16",
        options=DETECTORS[name],
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[nn.Module, Path]]:
    """Each detector with every weight moved at random (scores spread out, no ties), exported
    once without the graph optimiser (``fcnlab export`` runs it: ``tests/cli``)."""
    folder = tmp_path_factory.mktemp("detectors")
    generator = torch.Generator().manual_seed(0)
    exports = {}
    for name in DETECTORS:
        model = build_model_from_config(detector_metadata(name).model_config()).eval()
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
        path = export_model(
            model, detector_metadata(name), "onnx", folder / f"{name}.onnx", optimize=False
        )
        exports[name] = model, path
    return exports


@pytest.mark.parametrize("name", DETECTORS)
def test_the_graph_returns_the_raw_head_outputs_by_name(
    name: str, exported: dict[str, tuple[nn.Module, Path]]
) -> None:
    import onnx

    model, path = exported[name]
    graph = onnx.load(str(path)).graph
    assert tuple(output.name for output in graph.output) == OUTPUTS[name]
    dims = graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param != "" for d in dims] == [True, False, True, True]  # N, 3, H, W
    metadata = onnx_metadata(path)
    assert metadata.output == {key: OUTPUT_MEANINGS[key] for key in OUTPUTS[name]}
    assert metadata.model_config() == detector_metadata(name).model_config()
    detector = OnnxDetector(path)
    assert not list(detector.parameters())  # the rebuilt architecture holds no weights
    images = torch.randn(2, 3, 67, 93, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(images)
    found = detector(images)
    assert list(found) == list(expected)
    for key, value in expected.items():
        assert found[key].dtype == value.dtype
        torch.testing.assert_close(found[key], value, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("name", DETECTORS)
def test_onnxruntime_detections_match_pytorch(
    name: str, exported: dict[str, tuple[nn.Module, Path]]
) -> None:
    model, path = exported[name]
    detector = OnnxDetector(path)
    generator = torch.Generator().manual_seed(2)
    for batch, height, width in SIZES:
        images = torch.randn(batch, 3, height, width, generator=generator)
        # COCO's threshold 0.05: every candidate of the untrained FCOS goes through NMS.
        expected = detect(model, images, score_threshold=0.05)
        found = detect(detector, images, score_threshold=0.05)
        assert len(found) == batch
        for mine, reference in zip(found, expected, strict=True):
            assert len(reference["scores"]) > 3  # a comparison of something
            assert torch.equal(mine["labels"], reference["labels"])
            torch.testing.assert_close(mine["boxes"], reference["boxes"], atol=1e-3, rtol=0)
            torch.testing.assert_close(mine["scores"], reference["scores"], atol=1e-4, rtol=0)
