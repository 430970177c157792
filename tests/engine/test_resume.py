"""A resumed run continues the same run: a config that would change its data position or its
optimisation is refused, naming every changed key; logging and device keys may change."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.tinyseg import tiny_config, train_squares

from fcnlab.config import StageConfig, config_to_dict
from fcnlab.engine import CheckpointError, TrainingInterrupted, read_metrics
from fcnlab.engine.resume import changed_keys, flatten


def test_flatten_numbers_the_stages_and_keeps_number_lists_whole() -> None:
    config = config_to_dict(tiny_config(Path("runs")))
    flat = flatten(config)
    assert flat["train.batch_size"] == 4 and flat["stages.1.lr"] == 0.05
    assert flat["train.betas"] == [0.9, 0.999] and "model.options" not in flat  # empty
    assert "stages.2.lr" not in flat


def test_changed_keys_name_old_and_new_values_and_skip_harmless_ones(tmp_path: Path) -> None:
    saved = config_to_dict(tiny_config(tmp_path))
    config = tiny_config(tmp_path, batch_size=2, log_every=7, checkpoint_every_steps=5)
    config.stages.append(StageConfig(name="more", iterations=2))
    config.data.num_workers, config.output.tensorboard = 2, True
    config.data.cache = True  # the same batches, bit for bit
    assert changed_keys(saved, config) == [
        "stages.2.encoder: (absent) -> 'trainable'",
        "stages.2.encoder_lr_mult: (absent) -> 1.0",
        "stages.2.epochs: (absent) -> None",
        "stages.2.iterations: (absent) -> 2",
        "stages.2.lr: (absent) -> 0.01",
        "stages.2.name: (absent) -> 'more'",
        "train.batch_size: 4 -> 2",
    ]


def test_resume_with_another_batch_size_is_refused_naming_each_key(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    with pytest.raises(TrainingInterrupted):
        train_squares(config, stop_after_steps=3)
    changed = tiny_config(tmp_path, batch_size=2, log_every=2)
    changed.stages[1].lr = 0.1
    with pytest.raises(CheckpointError) as error:
        train_squares(changed, resume=True)
    run = tmp_path / "run"
    assert str(error.value) == (
        f"checkpoint '{run / 'checkpoints/last.pt'}' was written under another config, and "
        "resuming would change the run's data position or optimisation (stages.1.lr: 0.05 -> "
        f"0.1; train.batch_size: 4 -> 2); resume with the run's own config (-c "
        f"{run / 'config.yaml'}) or start a new run from these weights with "
        f"model.init_from={run / 'checkpoints/last.pt'}"
    )
    assert not (run / "run.lock").exists()
    assert "batch_size: 4" in (run / "config.yaml").read_text()  # the run's own, as suggested

    harmless = tiny_config(tmp_path, log_every=2, checkpoint_every_steps=2)
    result = train_squares(harmless, resume=True)
    assert result.step == 13
    steps = [r["step"] for r in read_metrics(result.run_dir) if r["kind"] == "train"]
    assert steps == [1, 2, 3, 4, 6, 8, 10, 12, 13]  # every step before, every 2nd after
