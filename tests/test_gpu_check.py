"""benchmarks/gpu_check.py, the one GPU script: each step under its own limit, a failing or
slow step reported and the next one run, tables gathered into one summary."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_step_past_its_limit_is_a_timeout_with_what_it_printed(
    gpu_check: ModuleType, tmp_path: Path
) -> None:
    code = "import time; print('started', flush=True); time.sleep(30)"
    step = gpu_check.Step("slow", python(code), timeout_s=1.0)
    outcome = gpu_check.run_step(step, tmp_path, seconds_left=100.0)
    assert outcome.result == "timeout (1 s)" and outcome.seconds < 10
    assert (tmp_path / "slow.log").read_text().strip() == "started"


def test_the_deadline_caps_a_step_and_skips_one_with_no_time_left(
    gpu_check: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gpu_check, "MIN_STEP_S", 0.5)
    step = gpu_check.Step("late", python("import time; time.sleep(30)"), timeout_s=60.0)
    assert gpu_check.run_step(step, tmp_path, seconds_left=1.0).result == "timeout (1 s)"
    skipped = gpu_check.run_step(step, tmp_path, seconds_left=0.4)
    assert skipped.result == "skipped" and skipped.seconds == 0.0


def test_a_failing_step_keeps_its_exit_status_and_tables_go_to_the_summary(
    gpu_check: ModuleType, tmp_path: Path
) -> None:
    table = "| a | b |\\n|---|---:|\\n| x | 1.5 |"
    failing = gpu_check.Step("bench", python(f"print('header'); print('{table}'); exit(3)"), 10.0)
    outcome = gpu_check.run_step(failing, tmp_path, seconds_left=100.0)
    assert outcome.result == "failed (rc 3)"
    assert outcome.tables == ["| a | b |\n|---|---:|\n| x | 1.5 |"]
    text = gpu_check.summary([outcome], 1.0)
    assert "| bench | failed (rc 3) |" in text and "## bench\n\n| a | b |" in text


def test_the_suite_step_reports_pytest_s_tally_and_failed_tests(
    gpu_check: ModuleType, tmp_path: Path
) -> None:
    output = "FAILED tests/x.py::test_y - boom\n2 failed, 40 passed, 3 skipped in 12.34s\n"
    code = f"import sys; sys.stdout.write({output!r}); exit(1)"
    outcome = gpu_check.run_step(gpu_check.Step("suite", python(code), 10.0, False), tmp_path, 99)
    assert outcome.figure == "2 failed, 40 passed, 3 skipped" and outcome.tables == []
    assert "## failed tests\n\nFAILED tests/x.py::test_y - boom" in gpu_check.summary([outcome], 1)


def test_the_full_check_fits_the_issue_s_eight_files(gpu_check: ModuleType) -> None:
    for quick in (False, True):
        names = [step.name for step in gpu_check.steps(quick, "cuda")]
        assert len(set(names)) == len(names) and len(names) + 1 <= 8  # one log each + summary
