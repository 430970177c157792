"""What ``fcnlab`` prints when a command fails: one line, the file names as they are (brackets
are not markup, a long path is not wrapped), and an error from a DataLoader worker as the
worker's own message."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.folder_runs import folder_eval_run

from fcnlab.cli.main import main


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


def test_a_worker_error_reads_as_with_no_workers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    errors = {}
    for workers in (0, 1):
        root = tmp_path / str(workers)
        config, checkpoint, images = folder_eval_run(
            root, [(32, 32)] * 2, **{"data.num_workers": workers}
        )
        images[1].write_bytes(images[1].read_bytes()[:200])  # truncated
        argv = ["eval", "-c", str(config), "--checkpoint", str(checkpoint)]
        assert main([*argv, "--out", str(root / "eval")]) == 1
        errors[workers] = capsys.readouterr().err.splitlines()
        lines = errors[workers]
        assert len(lines) == 2 and "Traceback" not in lines[0] and "Caught" not in lines[0]
        assert lines[0].startswith(f"error: {images[1]}: cannot read image: ")
    assert errors[0][0].replace("/0/", "/1/") == errors[1][0]
