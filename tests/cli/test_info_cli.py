from __future__ import annotations

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
