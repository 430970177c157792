"""Model metadata: JSON round trip, checks, and what a run's config says about its classes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.tinyrun import tiny_config

from fcnlab.data.palettes import voc_palette
from fcnlab.data.shapes import SHAPES_PALETTE
from fcnlab.inference.metadata import ModelMetadata, metadata_from_config


def test_round_trip_through_json(tmp_path: Path) -> None:
    meta = metadata_from_config(tiny_config(tmp_path))
    assert ModelMetadata.from_json(meta.to_json()) == meta
    data = json.loads(meta.to_json())
    assert data["input"]["layout"] == "NCHW" and data["output"]["name"] == "logits"
    assert data["options"] == {"encoder_options": {"width": 0.0625}}


def test_classes_and_palette_come_from_the_data_set(tmp_path: Path) -> None:
    meta = metadata_from_config(tiny_config(tmp_path))
    assert meta.classes == ["background", "disk", "square"]
    assert meta.palette == SHAPES_PALETTE[:3].tolist()
    assert (meta.mean, meta.std) == ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def test_missing_data_falls_back_to_numbers_and_voc_colours(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    config.data.name, config.data.root, config.data.options = "voc", str(tmp_path / "no"), {}
    config.data.transforms.normalize = False
    meta = metadata_from_config(config)
    assert meta.classes == ["0", "1", "2"]
    assert meta.palette == voc_palette(3).tolist()
    assert (meta.mean, meta.std) == ([0.0, 0.0, 0.0], [1.0, 1.0, 1.0])


def test_inconsistent_or_foreign_metadata_is_refused() -> None:
    with pytest.raises(ValueError, match="3 classes but 2 names and 3 palette colours"):
        ModelMetadata("m", 3, ["a", "b"], [[0, 0, 0]] * 3)
    with pytest.raises(ValueError, match=r"x\.onnx: unreadable fcnlab metadata"):
        ModelMetadata.from_json('{"version": 99}', "x.onnx")
    with pytest.raises(ValueError, match="unreadable fcnlab metadata"):
        ModelMetadata.from_json("not json")
