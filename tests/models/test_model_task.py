"""``model_task`` knows a model's task from its builder without building it."""

from __future__ import annotations

import pytest

from fcnlab.models import build_model, list_models, model_task


@pytest.mark.parametrize("name", list_models())
def test_model_task_without_building_agrees_with_the_built_model(name: str) -> None:
    options = {} if name == "unet" else {"encoder_options": {"width": 0.0625}}
    if name in ("centernet", "fcos", "condinst", "solov2"):
        options["encoder"] = "vgg16"  # their default ResNets come at full width only
    built = build_model(name, 3, **options)
    assert model_task(name) == getattr(built, "task", "segmentation")


def test_detectors_are_detection() -> None:
    assert model_task("centernet") == model_task("fcos") == "detection"
    assert model_task("fcn8s") == "segmentation"
    assert model_task("condinst") == model_task("solov2") == "instance"
    with pytest.raises(KeyError, match="nope"):
        model_task("nope")
