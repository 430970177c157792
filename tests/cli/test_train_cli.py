from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.full_disk import on_a_full_disk

from fcnlab.cli.main import main
from fcnlab.config import load_config
from fcnlab.demos import DEMOS

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
        "eval.every_epochs=1",
        "stages.0.epochs=2",
    ]


def test_train_then_eval_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "-c", DEMO, *tiny(tmp_path)]) == 0
    run = tmp_path / "fcn8s_shapes"
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
    err = " ".join(capsys.readouterr().err.split())
    assert "bad.pt' is not a PyTorch checkpoint" in err and "101" not in err


def test_a_second_train_into_a_run_folder_is_refused_until_told_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "-c", DEMO, *tiny(tmp_path)]) == 0
    run = tmp_path / "fcn8s_shapes"
    final = (run / "final.safetensors").read_bytes()
    capsys.readouterr()
    assert main(["train", "-c", DEMO, *tiny(tmp_path)]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert f"run folder '{run}' already holds a run (config.yaml, metrics.jsonl" in err
    assert "continue it with --resume, replace it with --overwrite" in err
    assert (run / "final.safetensors").read_bytes() == final

    assert main(["train", "-c", DEMO, *tiny(tmp_path), "train.batch_size=2", "--resume"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "was written under another config" in err and "train.batch_size: 4 -> 2" in err

    assert main(["train", "-c", DEMO, *tiny(tmp_path), "--overwrite"]) == 0
    assert "--overwrite: removed the previous run's config.yaml" in capsys.readouterr().out
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps)  # one run's records, not two appended

    with pytest.raises(SystemExit):
        main(["train", "-c", DEMO, "--resume", "--overwrite"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_shipped_configs_and_demos_write_to_different_run_folders() -> None:
    configs = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))
    folders = {path.name: load_config(path).run_dir for path in configs}
    folders |= {f"fcnlab demo --task {name}": Path("runs") / DEMOS.build(name).run_name
                for name in DEMOS.names()}  # fmt: skip
    assert len(set(folders.values())) == len(folders), folders
    assert folders["demo.yaml"] == Path("runs/fcn8s_shapes")


def test_a_full_disk_is_one_sentence_naming_the_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    on_a_full_disk(monkeypatch, room=4096)
    assert main(["train", "-c", DEMO, *tiny(tmp_path)]) == 1
    err = " ".join(capsys.readouterr().err.split())
    last = tmp_path / "fcn8s_shapes" / "checkpoints" / "last.pt"
    assert f"error: cannot write '{last}': no space left on device; free some space" in err
    assert "unexpected pos" not in err and "Traceback" not in err
    assert not (tmp_path / "fcn8s_shapes" / "run.lock").exists()
