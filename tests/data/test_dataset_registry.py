from __future__ import annotations

import pytest
import torch

from fcnlab.data import build_dataset, dataset_tasks, list_datasets, registry
from fcnlab.data.registry import DatasetRegistry


def test_list_datasets_names_every_format() -> None:
    assert set(list_datasets()) >= {"voc", "cityscapes", "coco", "ade20k", "folder", "shapes"}
    assert list_datasets() == sorted(list_datasets())


def test_build_dataset_passes_root_split_transforms_and_options(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[dict] = []
    monkeypatch.setattr(registry, "DATASETS", DatasetRegistry())

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


def test_views_are_registered_per_task_and_the_tasks_are_learnt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    views = DatasetRegistry()
    monkeypatch.setattr(registry, "DATASETS", views)

    @views.register("plain")
    @views.register("both")
    def class_maps(**kwargs: object) -> str:
        return "class maps"

    @views.register("both", task="keypoints")
    def points(**kwargs: object) -> str:
        return "points"

    assert dataset_tasks() == ["keypoints", "segmentation"]
    assert list_datasets() == ["both", "plain"] and list_datasets("keypoints") == ["both"]
    assert list_datasets(None) == ["both", "plain"] and list_datasets("depth") == []
    assert build_dataset("both") == "class maps" and build_dataset("both", task="keypoints") == (
        "points"
    )
    with pytest.raises(ValueError, match=r"'plain' has no keypoints annotations; .* are both$"):
        build_dataset("plain", task="keypoints")
    with pytest.raises(ValueError, match=r"task='depth': expected one of 'keypoints', 'segm"):
        build_dataset("both", task="depth")
    with pytest.raises(ValueError, match=r"data set 'both' has two views .* task='keypoints'"):
        views.register("both", task="keypoints")(points)


def test_every_format_names_its_task_views() -> None:
    assert {"segmentation", "detection"} <= set(dataset_tasks())
    assert set(list_datasets("detection")) >= {"coco", "shapes", "voc"}
    assert set(list_datasets(None)) == set(list_datasets()) | set(list_datasets("detection"))
