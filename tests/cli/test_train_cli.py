from __future__ import annotations

import json
from pathlib import Path

import pytest

from fcnlab.cli.main import main

DEMO = str(Path(__file__).parents[2] / "configs" / "demo.yaml")


def tiny(root: Path) -> list[str]:
    """Overrides that shrink the demo recipe to a few seconds."""
    return [
        f"output.root={root}",
        "output.plots=false",
        "model.options.encoder_options.width=0.0625",
        "data.options.num_images=8",
        "data.options.size=32",
        "data.val_options.num_images=4",
        "data.transforms.crop_size=32",
        "train.batch_size=4",
        "eval.batch_size=4",
        "stages.0.epochs=1",
        "stages.1.epochs=1",
    ]


def test_train_then_eval_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "-c", DEMO, *tiny(tmp_path)]) == 0
    run = tmp_path / "demo"
    assert "done: 4 steps" in capsys.readouterr().out
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if r["kind"] == "eval"] == [2, 4]

    checkpoint = str(run / "final.safetensors")
    assert main(["eval", "-c", DEMO, "--checkpoint", checkpoint, *tiny(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "background" in out and "mean IoU" in out
    metrics = json.loads((run / "eval-val" / "metrics.json").read_text())
    assert metrics["mean_iou"] == pytest.approx(lines[-1]["mean_iou"])  # same weights, same set
    assert (run / "eval-val" / "confusion.png").stat().st_size > 0


def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "-c", DEMO, "train.amp=fp8"]) == 1
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert "train.amp = 'fp8' is not allowed; allowed: 'off', 'bf16', 'fp16'" in err
    assert "Traceback" not in err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["eval", "-c", DEMO, "--checkpoint", str(bad), *tiny(tmp_path)]) == 1
    assert "bad.pt' cannot be read" in " ".join(capsys.readouterr().err.split())
