from __future__ import annotations

import subprocess
import sys

import pytest

from fcnlab import __version__
from fcnlab.cli.main import main


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"fcnlab {__version__}"


def test_help_lists_demo() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fcnlab", "--help"], capture_output=True, text=True, check=True
    )
    assert "demo" in result.stdout
