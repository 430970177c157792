"""``fcnlab demo``: its ``--task`` choices are the registered demos, and it runs the chosen one
with the command line's options (the demos themselves are tested in ``tests/demos/``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fcnlab.cli.main import main
from fcnlab.demos import DEMOS, Demo
from fcnlab.registry import Registry

RUNNERS = {
    "segmentation": "fcnlab.demos.segmentation.run_segmentation_demo",
    "detection": "fcnlab.demos.detection.run_detection_demo",
    "instance": "fcnlab.demos.instance.run_instance_demo",
}


@pytest.mark.parametrize(
    ("options", "demo", "quick"),
    [
        (["--quick"], "segmentation", True),
        (["--task", "segmentation"], "segmentation", False),
        (["--task", "detection", "--quick"], "detection", True),
        (["--task", "instance", "--quick"], "instance", True),
    ],
)
def test_demo_runs_the_chosen_demo_with_the_options(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, options: list[str], demo: str, quick: bool
) -> None:
    # Without --task it stays the segmentation demo.
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(RUNNERS[demo], lambda **kwargs: calls.append(kwargs))
    assert main(["demo", *options, "--out", str(tmp_path)]) == 0
    assert calls == [{"quick": quick, "output_root": str(tmp_path)}]


def test_model_is_passed_to_a_demo_that_offers_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(RUNNERS["instance"], lambda **kwargs: calls.append(kwargs))
    assert main(["demo", "--task", "instance", "--model", "solov2", "--out", str(tmp_path)]) == 0
    assert calls == [{"quick": False, "output_root": str(tmp_path), "model": "solov2"}]


def test_a_model_the_demo_does_not_offer_is_one_line_naming_what_it_offers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(RUNNERS["detection"], lambda **kwargs: calls.append(kwargs))
    assert main(["demo", "--task", "detection", "--model", "solov2"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "--model solov2: the detection demo offers no choice of model" in err
    assert calls == []
    with pytest.raises(SystemExit):  # not a model any demo trains
        main(["demo", "--task", "instance", "--model", "fcos"])


def test_an_unregistered_task_is_refused() -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--task", "instances"])


def test_task_choices_are_the_registered_demos(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert DEMOS.names() == sorted(RUNNERS)
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    shown = capsys.readouterr().out
    for name in DEMOS.names():
        assert f"{name} '{DEMOS.build(name).run_name}'" in shown
    # With another registry its one demo is the only choice, and the one that runs.
    calls: list[dict[str, Any]] = []
    toy = Registry[Demo]("demo")
    toy.register("toy")(lambda: Demo(lambda **kw: calls.append(kw), "toy_run", "toy", "toy."))
    monkeypatch.setattr("fcnlab.cli.demo.DEMOS", toy)
    assert main(["demo", "--task", "toy", "--quick"]) == 0
    assert calls == [{"quick": True, "output_root": "runs"}]
    for name in DEMOS.names():
        with pytest.raises(SystemExit):
            main(["demo", "--task", name])
