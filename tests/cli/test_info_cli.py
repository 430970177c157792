from __future__ import annotations

import re

import pytest

from fcnlab.cli.main import main
from fcnlab.data import list_datasets
from fcnlab.models import list_encoders, list_models


def test_info_lists_every_registered_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for name in [*list_models(), *list_encoders(), *list_datasets()]:
        assert name in out
    assert "cpu" in out
    assert "detection models: centernet, fcos" in out
    assert f"detection data sets: {', '.join(list_datasets('detection'))}" in out


def test_info_says_what_each_encoder_is(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"│ unet\s+│ U-Net's contracting path \(64 to 1024 channels", out)
    assert re.search(r"│ vgg16_bn\s+│ VGG-16 with batch norm after every convolution", out)
    assert re.search(r"│ resnet101\s+│ ResNet-101: bottlenecks \[3, 4, 23, 3\]", out)
