"""What the demos share: plan choice, the engine recipe, metrics.json and the results table."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
import torch
from rich.console import Console

import fcnlab.demos.common as common
from fcnlab.config import StageConfig
from fcnlab.demos.common import (
    QUICK_NOTE,
    DemoRun,
    ShapesPlan,
    demo_table,
    loader_workers,
    percent,
    shapes_config,
    shapes_options,
    vgg_model_config,
)


def test_percent_has_one_decimal_and_a_dash_for_nothing_measured() -> None:
    assert [percent(0.8567), percent(1.0), percent(0.0)] == ["85.7", "100.0", "0.0"]
    assert percent(None) == percent(math.nan) == "-"


def test_demo_table_names_rows_on_the_left_and_numbers_on_the_right() -> None:
    table = demo_table("Scores (%)", ("class", "AP"), [["all", "12.5"], ["disk", "-"]])
    assert table.title == "Scores (%)"
    assert [c.justify for c in table.columns] == ["left", "right"]
    assert [list(c.cells) for c in table.columns] == [["all", "disk"], ["12.5", "-"]]


def test_plan_is_the_given_one_else_quick_or_full() -> None:
    full, quick, mine = ShapesPlan(size=80), ShapesPlan(size=32), ShapesPlan(size=48)
    console = Console(file=io.StringIO())
    assert DemoRun.start(True, console, None).plan(None, full, quick) is quick
    assert DemoRun.start(False, console, None).plan(None, full, quick) is full
    assert DemoRun.start(True, console, None).plan(mine, full, quick) is mine
    # Progress bars only on a terminal unless asked for.
    assert DemoRun.start(False, console, None).progress is False
    assert DemoRun.start(False, console, True).progress is True


def test_finish_writes_metrics_json_with_quick_and_seconds_and_says_where(tmp_path: Path) -> None:
    printed = io.StringIO()
    run = DemoRun.start(True, Console(file=printed, width=300), False)
    summary = run.finish(
        tmp_path, {"AP": math.nan, "AP50": 0.5}, ["TABLE"], "toy demo", "a.png", "`look`"
    )
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written == summary
    assert list(written) == ["AP", "AP50", "quick", "seconds"]
    assert written["AP"] is None and written["quick"] is True and written["seconds"] >= 0
    lines = printed.getvalue().splitlines()
    assert lines[0] == "TABLE"
    assert lines[1] == QUICK_NOTE  # the quick table's numbers are labelled as meaningless
    assert lines[2] == (
        f"toy demo finished in {written['seconds']:.0f} s. Look at {tmp_path}/: metrics.json, "
        "a.png, config.yaml, checkpoints/ and final.safetensors. Next: `look`."
    )


def test_a_full_run_says_nothing_about_quick(tmp_path: Path) -> None:
    printed = io.StringIO()
    run = DemoRun.start(False, Console(file=printed, width=300), False)
    run.finish(tmp_path, {"AP": 0.5}, ["TABLE"], "toy demo", "a.png", "`look`")
    lines = printed.getvalue().splitlines()
    assert lines[0] == "TABLE" and lines[1].startswith("toy demo finished in")
    assert "--quick" not in printed.getvalue()


def test_shapes_config_holds_the_plan_and_the_shared_recipe() -> None:
    plan = ShapesPlan(size=48, seed=3, val_images=8, batch_size=4, width=0.25)
    model = vgg_model_config(plan, "fcn8s", 6, encoder_options={"fc6_kernel": 1}, x=1)
    assert model.encoder == plan.encoder
    assert model.options == {"encoder_options": {"width": 0.25, "fc6_kernel": 1}, "x": 1}
    stages = [StageConfig(name="train", epochs=2)]
    options = {**shapes_options(plan), "num_images": 16}
    config = shapes_config(plan, "out", "toy", model, options, stages, 7, 2, channels_last=True)
    assert config.model is model and config.stages == stages
    assert config.data.name == "shapes" and config.data.options == options
    assert config.data.val_options == {"num_images": 8}
    assert config.data.transforms.crop_size == 48 and config.data.transforms.flip == 0.5
    assert (config.train.batch_size, config.train.seed, config.train.warmup_steps) == (4, 3, 7)
    assert config.train.channels_last is True and config.eval.every_epochs == 2
    assert (config.output.root, config.output.name) == ("out", "toy")
    assert shapes_options(plan)["seed"] == 3 and shapes_options(plan)["cache"] is True


@pytest.mark.parametrize(
    ("cuda", "cores", "workers"), [(False, 16, 0), (True, 16, 8), (True, 4, 3), (True, 1, 1)]
)
def test_demos_draw_shapes_in_workers_only_beside_a_gpu(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cuda: bool, cores: int, workers: int
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(common.os, "cpu_count", lambda: cores)
    assert loader_workers() == workers
    seen = []
    monkeypatch.setattr(common, "train", lambda config, **kwargs: seen.append(config))
    config = shapes_config(
        ShapesPlan(),
        str(tmp_path),
        "toy",
        vgg_model_config(ShapesPlan(), "fcn8s", 6),
        {},
        [StageConfig(epochs=1)],
        0,
        1,
    )
    DemoRun.start(True, Console(file=io.StringIO()), False).train(config, torch.nn.Identity())
    assert seen[0].data.num_workers == workers and config.data.num_workers == 0
