from __future__ import annotations

import pytest
import torch

from fcnlab.data import build_dataset, list_datasets, registry
from fcnlab.registry import Registry


def test_list_datasets_names_every_format() -> None:
    assert set(list_datasets()) >= {"voc", "cityscapes", "coco", "ade20k", "folder", "shapes"}
    assert list_datasets() == sorted(list_datasets())


def test_build_dataset_passes_root_split_transforms_and_options(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[dict] = []
    monkeypatch.setattr(registry, "DATASETS", Registry("data set"))

    @registry.DATASETS.register("recording")
    def record(**kwargs: object) -> dict:
        calls.append(kwargs)
        return kwargs

    build_dataset("recording", "/some/root", split="val", size=3)
    assert registry.list_datasets() == ["recording"]
    assert calls == [{"root": "/some/root", "split": "val", "transforms": None, "size": 3}]


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"unknown data set 'pascal'; known: .*shapes"):
        build_dataset("pascal")


def test_built_dataset_applies_transforms() -> None:
    ds = build_dataset("shapes", num_images=2, size=16, transforms=lambda i, m: (i * 0, m))
    image, mask = ds[0]
    assert torch.equal(image, torch.zeros(3, 16, 16)) and mask.shape == (16, 16)
