"""What ``fcnlab`` prints when a command fails: one line, the file names as they are (brackets
are not markup, a long path is not wrapped), and an error from a DataLoader worker as the
worker's own message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers.tinyrun import write_run
from PIL import Image

from fcnlab.cli.main import main
from fcnlab.config import config_to_dict


def test_an_error_prints_a_long_bracketed_path_whole_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "set[v2]" / ("a folder name long enough to wrap " * 4).strip()
    missing = folder / "[final]" / "missing[best].pt"
    out = tmp_path / "model[v2].safetensors"
    argv = ["export", "--checkpoint", str(missing), "--format", "safetensors", "--out", str(out)]
    assert main(argv) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(str(missing)) > 200
    assert lines == [
        f"error: weights file {str(missing)!r} does not exist",
        "(run with --debug for the full traceback)",
    ]


def folder_eval_config(root: Path, num_workers: int) -> Path:
    """A tiny run's model evaluated on a ``folder`` set of two images, the second truncated."""
    config, _ = write_run(root)
    data = root / "data[v2]"
    rng = np.random.default_rng(0)
    for stem in ("a", "b"):
        for kind in ("images", "masks"):
            (data / kind / "val").mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(data / "images" / "val" / f"{stem}.png")
        mask = rng.integers(0, 3, (32, 32), dtype=np.uint8)
        Image.fromarray(mask).save(data / "masks" / "val" / f"{stem}.png")
    broken = data / "images" / "val" / "b.png"
    broken.write_bytes(broken.read_bytes()[:200])
    settings = config_to_dict(config)
    settings["data"] = {
        "name": "folder",
        "root": str(data),
        "options": {"classes": ["background", "disk", "square"]},
        "num_workers": num_workers,
    }
    path = root / f"folder_{num_workers}.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def test_a_worker_error_reads_as_with_no_workers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    errors = {}
    for workers in (0, 1):
        config = folder_eval_config(tmp_path / str(workers), workers)
        checkpoint = tmp_path / str(workers) / "tiny" / "checkpoints" / "last.pt"
        argv = ["eval", "-c", str(config), "--checkpoint", str(checkpoint), "--out"]
        assert main([*argv, str(tmp_path / str(workers) / "eval")]) == 1
        errors[workers] = capsys.readouterr().err.splitlines()
    broken = str(tmp_path / "{}" / "data[v2]" / "images" / "val" / "b.png")
    for workers, lines in errors.items():
        assert len(lines) == 2 and "Traceback" not in lines[0] and "Caught" not in lines[0]
        assert lines[0].startswith(f"error: {broken.format(workers)}: cannot read image: ")
    assert errors[0][0].replace("/0/", "/1/") == errors[1][0]
