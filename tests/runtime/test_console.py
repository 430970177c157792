"""Literal lines and progress: brackets stay text, long lines stay whole, and bars are drawn on
a terminal only (never into a pipe, a log or a test's captured output, nor under CI)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from fcnlab.runtime.console import Bars, error_line, print_literal, progress_wanted, status


def console(terminal: bool) -> tuple[Console, io.StringIO]:
    stream = io.StringIO()
    return Console(file=stream, force_terminal=terminal, width=60), stream


def test_a_literal_line_keeps_brackets_and_is_never_wrapped() -> None:
    out, stream = console(terminal=False)
    line = "/data/set[v2]/" + "x" * 150 + "/broken[final].jpg -> out/[bold]a.png"
    print_literal(out, line)
    assert stream.getvalue() == line + "\n"


@pytest.mark.parametrize("terminal", [False, True])
def test_an_error_line_is_one_line_whatever_the_width(terminal: bool) -> None:
    out, stream = console(terminal)
    message = "weights file '/tmp/" + "x" * 150 + "/pytest-0/missing.pt' does not exist"
    print_literal(out, error_line(message))
    assert stream.getvalue().count("\n") == 1 and message + "\n" in stream.getvalue()


def test_bars_draw_nothing_off_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    out, stream = console(terminal=False)
    with Bars(out) as bars:
        assert list(bars.track([1, 2, 3], "predicting")) == [1, 2, 3]
        count = bars.counter("windows")
        count(1, 2)
        count(2, 2)
        with status(out, "exporting"):
            pass
    assert stream.getvalue() == "" and not bars.enabled


def test_bars_draw_on_a_terminal_unless_ci_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    out, stream = console(terminal=True)
    assert progress_wanted(out)
    with Bars(out) as bars:
        assert list(bars.track(range(3), "evaluating")) == [0, 1, 2]
    assert "evaluating" in stream.getvalue() and "/3" in stream.getvalue()
    monkeypatch.setenv("CI", "true")
    assert not progress_wanted(out) and not Bars(out).enabled
