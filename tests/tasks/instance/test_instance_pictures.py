from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers.instance_models import FixedInstances, expected_masks
from PIL import Image

from fcnlab.config import TransformConfig
from fcnlab.data.transforms import normalize
from fcnlab.tasks.instance import pictures
from fcnlab.tasks.instance.pictures import write_instance_pictures


class TinyInstances(torch.utils.data.Dataset):
    """Three normalised 36 x 44 images with one ground-truth instance each."""

    classes = ("disk", "square")

    def __init__(self, transforms: TransformConfig) -> None:
        generator = torch.Generator().manual_seed(0)
        self.images = [torch.rand(3, 36, 44, generator=generator) for _ in range(3)]
        self.transforms = transforms

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        masks = torch.zeros(1, 36, 44, dtype=torch.bool)
        masks[0, 4 + index : 20, 6:30] = True
        target = {"masks": masks, "labels": torch.tensor([index % 2])}
        image = normalize(self.images[index][None], self.transforms.mean, self.transforms.std)
        return image[0], target


def test_instance_pictures_rows_of_image_truth_and_prediction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    transforms = TransformConfig()
    dataset = TinyInstances(transforms)
    drawn: dict[str, Any] = {}

    def recording(*args: Any) -> Any:
        drawn["args"] = args
        return plot_instances(*args)

    plot_instances = pictures.plot_instances
    monkeypatch.setattr(pictures, "plot_instances", recording)
    model = FixedInstances(min_brightness=-10.0).train()
    path = write_instance_pictures(model, dataset, 2, transforms, tmp_path / "instances.png")
    assert path == tmp_path / "instances.png" and model.training  # its mode is restored
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size == (1200, 800)  # two rows of three 4-inch panels
    images, targets, found, names, mean, std = drawn["args"]
    assert names == ["disk", "square"] and (mean, std) == (transforms.mean, transforms.std)
    assert len(images) == len(targets) == len(found) == 2
    torch.testing.assert_close(images[1], dataset[1][0])
    assert torch.equal(targets[1]["masks"], dataset[1][1]["masks"])
    # Predictions scoring at least 0.3, masks pasted at the image's size, most confident first.
    masks, kept = expected_masks(36, 44, 0.3)
    for prediction in found:
        assert prediction["masks"].dtype == torch.bool
        np.testing.assert_array_equal(prediction["masks"].numpy(), masks)
        assert prediction["scores"].tolist() == pytest.approx([s for _, s, _ in kept])
        assert prediction["labels"].tolist() == [label for label, _, _ in kept]
    # More rows asked for than there are images: all of them; none at all: no picture.
    assert write_instance_pictures(model, dataset, 10, transforms, tmp_path / "all.png")
    assert len(drawn["args"][0]) == 3
    assert write_instance_pictures(model, [], 4, transforms, tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()
    # Unnormalised data sets are drawn as they are.
    plain = TransformConfig(normalize=False)
    write_instance_pictures(model, TinyInstances(plain), 1, plain, tmp_path / "plain.png")
    assert drawn["args"][4:] == (None, None)


def test_instance_pictures_of_a_real_condinst_on_shapes(tmp_path: Path) -> None:
    from fcnlab.data import build_dataset, eval_transforms
    from fcnlab.models import build_model

    transforms = TransformConfig()
    dataset = build_dataset(
        "shapes", root=None, split="val", task="instance", num_images=2, size=36,
        transforms=eval_transforms(None, mean=transforms.mean, std=transforms.std),
    )  # fmt: skip
    torch.manual_seed(0)
    model = build_model(
        "condinst", len(dataset.classes), encoder="vgg16_bn", encoder_options={"width": 0.125},
        fpn_channels=32, head_depth=1, mask_branch_channels=16, mask_branch_depth=2,
    )  # fmt: skip
    path = write_instance_pictures(
        model, dataset, 2, transforms, tmp_path / "instances.png", score_threshold=0.0
    )
    assert path is not None and model.training
    with Image.open(path) as png:
        assert png.size == (1200, 800)
