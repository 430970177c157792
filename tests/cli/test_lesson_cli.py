from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.figure import Figure

from fcnlab.cli import lesson as lesson_cli
from fcnlab.cli.main import main
from fcnlab.viz import lesson
from fcnlab.viz.lesson import LessonContext, Section


def one_line(context: LessonContext) -> Figure:
    fig = Figure(figsize=(2, 2))
    fig.subplots().plot([0, 1])
    return fig


@pytest.fixture
def tiny_sections(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's wiring is under test here, not the figures (tests/viz renders those)."""
    sections = [
        Section("tiny", "Tiny", "a line", [one_line]),
        Section(
            "runs",
            "From a run",
            "a run",
            [one_line],
            unavailable=lambda c: None if c.run else "no --run",
        ),
    ]
    monkeypatch.setattr(lesson, "SECTIONS", sections)


@pytest.mark.usefixtures("tiny_sections")
def test_lesson_writes_the_page_and_prints_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    monkeypatch.setattr(lesson_cli.webbrowser, "open", lambda url: opened.append(url) or True)
    assert main(["lesson", "--out", str(tmp_path / "site")]) == 0
    page = tmp_path / "site" / "index.html"
    assert page.is_file() and (tmp_path / "site" / "tiny-1.png").is_file()
    assert not (tmp_path / "site" / "runs-1.png").exists()
    assert str(page) in capsys.readouterr().out
    assert opened == []


@pytest.mark.usefixtures("tiny_sections")
def test_open_flag_opens_the_page_in_a_browser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    monkeypatch.setattr(lesson_cli.webbrowser, "open", lambda url: opened.append(url) or True)
    assert main(["lesson", "--out", str(tmp_path), "--open"]) == 0
    assert opened == [(tmp_path / "index.html").resolve().as_uri()]


@pytest.mark.usefixtures("tiny_sections")
def test_run_flag_reaches_the_sections(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "demo"
    run.mkdir(parents=True)
    assert main(["lesson", "--out", str(tmp_path / "site"), "--run", str(run)]) == 0
    assert (tmp_path / "site" / "runs-1.png").is_file()


def test_missing_run_directory_is_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["lesson", "--out", str(tmp_path), "--run", str(tmp_path / "absent")]) == 1
    err = capsys.readouterr().err
    assert "run directory" in err and "absent" in err and "Traceback" not in err


def test_out_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["lesson"])
    assert exit_info.value.code == 2
    assert "--out" in capsys.readouterr().err
