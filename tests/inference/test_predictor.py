"""Predictor: any input type and size, normalisation, checkpoints and run folders, windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers.devices import DEVICES
from helpers.tinyrun import random_model, tiny_config, write_run
from PIL import Image
from torch import nn

from fcnlab.config import save_config
from fcnlab.data.io import read_image
from fcnlab.inference import TTA, ModelMetadata, Predictor, tiles, to_image_tensor
from fcnlab.runtime.checkpoint import CheckpointError, save_safetensors


def metadata(num_classes: int = 2, mean: float = 0.5, std: float = 0.25) -> ModelMetadata:
    return ModelMetadata(
        name="conv",
        num_classes=num_classes,
        classes=[f"c{i}" for i in range(num_classes)],
        palette=[[10 * i, 0, 0] for i in range(num_classes)],
        mean=[mean] * 3,
        std=[std] * 3,
    )


def test_image_inputs_of_every_kind(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (13, 17, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "x.png")
    expected = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255
    for image in (
        tmp_path / "x.png",
        str(tmp_path / "x.png"),
        Image.fromarray(rgb),
        rgb,
        rgb.astype(np.float32) / 255,
        torch.from_numpy(rgb).permute(2, 0, 1),
        expected,
    ):
        torch.testing.assert_close(to_image_tensor(image), expected)
    torch.testing.assert_close(to_image_tensor(tmp_path / "x.png"), read_image(tmp_path / "x.png"))
    grey = to_image_tensor(rgb[..., 0])
    torch.testing.assert_close(grey, expected[:1].expand(3, -1, -1))
    with pytest.raises(ValueError, match=r"got shape \(4, 5, 6\)"):
        to_image_tensor(np.zeros((4, 5, 6), np.uint8))


@torch.no_grad()
def test_images_are_normalised_by_the_metadata() -> None:
    torch.manual_seed(0)
    model = nn.Conv2d(3, 2, 1)
    predictor = Predictor(model, "cpu", metadata=metadata(mean=0.5, std=0.25))
    images = torch.rand(1, 3, 9, 11)
    torch.testing.assert_close(predictor.logits(images), model((images - 0.5) / 0.25))
    torch.testing.assert_close(Predictor(model, "cpu").logits(images), model(images))


@torch.no_grad()
def test_predictions_at_the_input_size() -> None:
    torch.manual_seed(0)
    model = nn.Conv2d(3, 4, 3, padding=1)
    predictor = Predictor(model, "cpu", metadata=metadata(4))
    single = predictor.predict(torch.rand(3, 45, 37), probs=True)
    assert single.labels.shape == (45, 37) and single.labels.dtype == torch.int64
    assert single.probs is not None and single.probs.shape == (4, 45, 37)
    torch.testing.assert_close(single.probs.sum(0), torch.ones(45, 37))
    assert torch.equal(single.probs.argmax(0), single.labels)
    several = predictor.predict([torch.rand(3, 20, 30), np.zeros((7, 9, 3), np.uint8)])
    assert [p.labels.shape for p in several] == [(20, 30), (7, 9)]
    assert several[0].probs is None
    batch = torch.rand(2, 3, 16, 19)
    labels = [p.labels for p in predictor.predict(batch)]
    assert torch.equal(torch.stack(labels), model((batch - 0.5) / 0.25).argmax(1))


@torch.no_grad()
def test_padding_for_networks_that_need_multiples() -> None:
    calls = []

    def strict(x: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(x.shape[-2:]))
        if x.shape[-2] % 32 or x.shape[-1] % 32:
            raise RuntimeError(f"size {tuple(x.shape[-2:])} is not a multiple of 32")
        return F.avg_pool2d(x[:, :2], 3, 1, 1)

    class Strict(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return strict(x)

    predictor = Predictor(Strict(), "cpu", multiple=32)
    assert predictor.predict(torch.rand(3, 45, 37)).labels.shape == (45, 37)
    assert calls == [(64, 64)]


@torch.no_grad()
def test_sliding_window_predictor_equals_whole_image_for_a_pointwise_model() -> None:
    torch.manual_seed(0)
    model = nn.Conv2d(3, 3, 1)
    whole = Predictor(model, "cpu", metadata=metadata(3))
    windowed = Predictor(model, "cpu", metadata=metadata(3), window=24, overlap=0.33)
    images = torch.rand(1, 3, 61, 90)
    torch.testing.assert_close(windowed.logits(images), whole.logits(images), atol=1e-5, rtol=0)


@torch.no_grad()
def test_a_windowed_predictor_reports_its_windows() -> None:
    done: list[tuple[int, int]] = []
    predictor = Predictor(
        nn.Conv2d(3, 3, 1), "cpu", window=24, overlap=0.33, batch_size=2,
        window_progress=lambda *count: done.append(count),
    )  # fmt: skip
    predictor.predict(torch.rand(3, 61, 90))
    total = len(list(tiles(61, 90, (24, 24), 0.33)))
    assert done == [(min(k, total), total) for k in range(2, total + 2, 2)]


@torch.no_grad()
def test_checkpoint_and_run_weights_load_with_their_config(tmp_path: Path) -> None:
    config, model = write_run(tmp_path)
    images = torch.rand(1, 3, 45, 37)
    mean = torch.tensor(config.data.transforms.mean).view(1, 3, 1, 1)
    std = torch.tensor(config.data.transforms.std).view(1, 3, 1, 1)
    expected = model((images - mean) / std)
    for path in (
        config.run_dir / "checkpoints" / "last.pt",
        config.run_dir / "final.safetensors",
    ):
        predictor = Predictor(path, "auto")
        assert predictor.backend == "torch" and predictor.device.type in ("cpu", "cuda", "mps")
        assert predictor.metadata is not None
        assert predictor.metadata.classes == ["background", "disk", "square"]
        assert predictor.metadata.mean == config.data.transforms.mean
        torch.testing.assert_close(predictor.logits(images), expected, atol=1e-4, rtol=1e-4)


def test_weights_without_a_config_ask_for_one(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    save_safetensors(random_model(config), tmp_path / "loose" / "weights.safetensors")
    with pytest.raises(CheckpointError, match=r"carries no config.*pass the run's config"):
        Predictor(tmp_path / "loose" / "weights.safetensors")
    with pytest.raises(CheckpointError, match=r"weights file '.*nothing\.safetensors' does not"):
        Predictor(tmp_path / "nothing.safetensors")
    save_config(config, tmp_path / "any.yaml")
    predictor = Predictor(tmp_path / "loose" / "weights.safetensors", config=tmp_path / "any.yaml")
    assert predictor.metadata is not None and predictor.metadata.num_classes == 3


@torch.no_grad()
def test_tta_and_windows_on_a_real_model(tmp_path: Path) -> None:
    config, _ = write_run(tmp_path)
    predictor = Predictor(
        config.run_dir / "final.safetensors",
        "cpu",
        window=32,
        overlap=0.5,
        tta=TTA(flip=True, scales=(0.75, 1.0)),
    )
    prediction = predictor.predict(torch.rand(3, 70, 45), probs=True)
    assert prediction.labels.shape == (70, 45)
    assert prediction.probs is not None and torch.isfinite(prediction.probs).all()


@torch.no_grad()
@pytest.mark.parametrize("device", DEVICES)
def test_a_predictor_on_the_device_gives_the_cpus_logits_and_labels(
    tmp_path: Path, device: str
) -> None:
    config, _ = write_run(tmp_path)
    weights = config.run_dir / "final.safetensors"
    images = torch.rand(2, 3, 45, 37, generator=torch.Generator().manual_seed(0))
    windows_and_tta = {"window": 32, "overlap": 0.5, "tta": TTA(flip=True, scales=(0.75, 1.0))}
    for options in ({}, windows_and_tta):
        expected = Predictor(weights, "cpu", **options).logits(images)
        predictor = Predictor(weights, device, **options)
        assert predictor.model is not None
        assert {p.device.type for p in predictor.model.parameters()} == {device}
        with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):  # float32 convolutions
            logits = predictor.logits(images)
            labels = torch.stack([p.labels for p in predictor.predict(images)])
        assert logits.device.type == labels.device.type == "cpu"
        torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)
        # The CPU's labels, but where two classes' logits nearly tie.
        top2 = expected.topk(2, dim=1).values
        clear = top2[:, 0] - top2[:, 1] > 1e-3
        assert clear.float().mean() > 0.95
        assert torch.equal(labels[clear], expected.argmax(dim=1)[clear])
