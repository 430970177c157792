"""Export: ONNX (dynamic batch and size, checker, onnxruntime == PyTorch), metadata carried by
every format, safetensors back into ``build_model``, TorchScript traced and checked."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import pytest
import torch
from torch import nn

from fcnlab.inference import ModelMetadata, load_trained
from fcnlab.inference.export import (
    export_model,
    export_safetensors,
    export_torchscript,
    load_torchscript,
    onnx_metadata,
)
from fcnlab.inference.onnx_backend import require_export_extra
from fcnlab.models import list_models, model_task
from fcnlab.models.from_config import build_model_from_config

HAS_EXPORT_EXTRA = all(find_spec(m) for m in ("onnx", "onnxruntime", "onnxscript"))
needs_export_extra = pytest.mark.skipif(
    not HAS_EXPORT_EXTRA, reason="the export extra (onnx, onnxruntime, onnxscript) is absent"
)
SEGMENTATION = ("fcn32s", "fcn16s", "fcn8s", "segnet", "deconvnet", "unet")
TINY = {"encoder_options": {"width": 0.0625}}
# (batch, height, width): a square, odd sizes in both directions, not multiples of 32.
SIZES = [(2, 64, 64), (1, 45, 37), (1, 33, 70)]


def tiny_metadata(name: str, num_classes: int = 3) -> ModelMetadata:
    return ModelMetadata(
        name=name,
        num_classes=num_classes,
        classes=[f"class {i}" for i in range(num_classes)],
        palette=[[40 * i, 255 - 40 * i, 7] for i in range(num_classes)],
        mean=[0.5, 0.4, 0.3],
        std=[0.2, 0.25, 0.3],
        options=TINY,
    )


def perturbed(model: nn.Module, seed: int = 0) -> nn.Module:
    """Every parameter and batch-norm statistic moved at random, so that FCN's zero-initialised
    scores, the bilinear upsampling and the normalisation all leave a trace in the logits."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
        for name, buffer in model.named_buffers():
            if name.endswith("running_var"):
                buffer.uniform_(0.5, 2.0, generator=generator)
    return model.eval()


def tiny_model(name: str) -> nn.Module:
    return perturbed(build_model_from_config(tiny_metadata(name).model_config()))


def test_every_segmentation_architecture_is_covered() -> None:
    assert {name for name in list_models() if model_task(name) == "segmentation"} == set(
        SEGMENTATION
    )


@pytest.fixture(scope="module")
def onnx_exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[nn.Module, Path]]:
    """Each architecture exported once (the slow part), shared by the tests below. The graph
    optimiser is skipped here to save time; ``fcnlab export`` in ``test_predict_cli.py`` runs it
    and checks its file the same way."""
    folder = tmp_path_factory.mktemp("onnx")
    exports = {}
    torch.manual_seed(0)  # the same weights whichever tests ran before
    for name in SEGMENTATION:
        model = tiny_model(name)
        path = export_model(model, tiny_metadata(name), "onnx", folder / name, optimize=False)
        exports[name] = model, path
    return exports


@needs_export_extra
@pytest.mark.parametrize("name", SEGMENTATION)
def test_onnx_matches_pytorch_at_several_sizes(
    name: str, onnx_exports: dict[str, tuple[nn.Module, Path]]
) -> None:
    import onnx
    import onnxruntime as ort

    model, path = onnx_exports[name]
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    assert {o.domain: o.version for o in proto.opset_import}[""] >= 17
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param != "" for d in dims] == [True, False, True, True]  # N, 3, H, W
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(1)
    for batch, height, width in SIZES:
        images = torch.randn(batch, 3, height, width, generator=generator)
        with torch.no_grad():
            expected = model(images)
        (logits,) = session.run(None, {"image": images.numpy()})
        assert logits.shape == (batch, 3, height, width)
        assert expected.abs().max() > 0.1  # the comparison is not one of zeros
        torch.testing.assert_close(torch.from_numpy(logits), expected, atol=1e-4, rtol=0)


@needs_export_extra
def test_onnx_metadata_round_trip(onnx_exports: dict[str, tuple[nn.Module, Path]]) -> None:
    from fcnlab.inference.onnx_backend import OnnxModel

    _, path = onnx_exports["fcn8s"]
    assert onnx_metadata(path) == tiny_metadata("fcn8s")
    assert OnnxModel(path).metadata == tiny_metadata("fcn8s")


def test_safetensors_round_trip_into_build_model(tmp_path: Path) -> None:
    model, meta = tiny_model("unet"), tiny_metadata("unet")
    path = export_safetensors(model, meta, tmp_path / "unet.safetensors")
    loaded, found = load_trained(path)
    assert found == meta
    assert type(loaded) is type(model)
    expected = model.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in loaded.state_dict().items())
    images = torch.randn(1, 3, 45, 37)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), model(images))


def test_torchscript_round_trip_at_another_size(tmp_path: Path) -> None:
    model, meta = tiny_model("fcn8s"), tiny_metadata("fcn8s")
    path = export_torchscript(model, meta, tmp_path / "fcn8s.pt")
    scripted, found = load_torchscript(path)
    assert found == meta
    images = torch.randn(1, 3, 70, 33)
    with torch.no_grad():
        torch.testing.assert_close(scripted(images), model(images), atol=1e-5, rtol=1e-5)


def test_torchscript_refuses_models_it_cannot_trace(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cannot be traced to TorchScript.*--format onnx"):
        export_torchscript(tiny_model("segnet"), tiny_metadata("segnet"), tmp_path / "s.pt")
    assert not (tmp_path / "s.pt").exists()


def test_missing_extra_names_the_install_command() -> None:
    with pytest.raises(ImportError, match=r"'no_such_onnx_module'.*pip install 'fcnlab\[export\]'"):
        require_export_extra("no_such_onnx_module", "ONNX export")


def test_unknown_format_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="unknown export format 'tflite'; known: onnx, safetensors"):
        export_model(tiny_model("fcn32s"), tiny_metadata("fcn32s"), "tflite", tmp_path / "x")


def test_detectors_export_as_onnx_or_safetensors_not_torchscript(tmp_path: Path) -> None:
    meta = tiny_metadata("centernet")
    meta.encoder = "vgg16"
    model = perturbed(build_model_from_config(meta.model_config()))
    with pytest.raises(
        ValueError, match=r"'centernet' is a detector.*--format onnx or --format safetensors"
    ):
        export_model(model, meta, "torchscript", tmp_path / "x")
    path = export_model(model, meta, "safetensors", tmp_path / "centernet.safetensors")
    loaded, found = load_trained(path)
    assert found == meta
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected, got = model(images), loaded(images)
    for key in ("heatmap", "size", "offset"):
        torch.testing.assert_close(got[key], expected[key])
