"""Weights written before the code moved still load: a checkpoint whose stored config has the
segmentation loss keys under ``train`` (fcnlab 0.1) rebuilds its model without a warning."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import yaml
from helpers.tinyrun import tiny_config, write_run

from fcnlab.config import config_to_dict
from fcnlab.inference import load_trained, read_metadata
from fcnlab.runtime.checkpoint import save_checkpoint


def old_config_dict(root: Path) -> dict:
    """The tiny run's config as fcnlab 0.1 stored it: loss keys in ``train``, no section."""
    data = config_to_dict(tiny_config(root))
    section = data.pop("segmentation")
    data["train"].update(section)
    return data


def test_an_old_checkpoint_loads_for_eval_predict_and_export(tmp_path: Path) -> None:
    _, model = write_run(tmp_path)
    old = tmp_path / "old.pt"
    save_checkpoint(old, {"model": model.state_dict(), "config": old_config_dict(tmp_path)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing for the user to edit inside a checkpoint
        loaded, metadata = load_trained(old)
    assert metadata.name == "fcn8s" and metadata.classes == ["background", "disk", "square"]
    image = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(loaded(image), model(image))


def test_an_old_run_folder_config_is_read_with_a_warning(tmp_path: Path) -> None:
    config, _ = write_run(tmp_path)
    (config.run_dir / "config.yaml").write_text(yaml.safe_dump(old_config_dict(tmp_path)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metadata = read_metadata(config.run_dir / "final.safetensors")
    assert metadata.name == "fcn8s"
    assert any("train.loss, train.class_weights, train.aux_weight moved" in str(w.message)
               for w in caught)  # fmt: skip
