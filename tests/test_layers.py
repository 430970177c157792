"""The house's import rules (issue 12), checked on the source: layers point one way, inference
never imports the trainer, no private name crosses a module, no task dispatch by name."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "fcnlab"
# package -> packages it must never import (layers point one way: ops -> nn -> models -> tasks
# -> engine -> cli; inference and export sit beside the engine; runtime below all of them).
FORBIDDEN = {
    "ops": ("nn", "models", "tasks", "engine", "cli", "inference", "data", "demos", "viz"),
    "nn": ("models", "tasks", "engine", "cli", "inference", "demos"),
    "runtime": ("models", "tasks", "engine", "cli", "inference", "data", "demos", "viz"),
    "data": ("models", "tasks", "engine", "cli", "inference", "demos"),
    "models": ("tasks", "engine", "cli", "inference", "demos"),
    "viz": ("engine", "cli", "demos", "tasks"),
    "inference": ("engine", "cli", "demos"),
    "tasks": ("engine", "cli", "demos"),
    "engine": ("cli", "demos"),
}


def modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def imported(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every ``from X import names`` and ``import X`` in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
    return found


def package_of(path: Path) -> str:
    return path.relative_to(SRC).parts[0].removesuffix(".py")


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_layers_point_one_way(path: Path) -> None:
    forbidden = FORBIDDEN.get(package_of(path), ())
    for module, _ in imported(path):
        parts = module.split(".")
        if parts[0] == "fcnlab" and len(parts) > 1:
            assert parts[1] not in forbidden, f"{path.relative_to(SRC)} imports {module}"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_no_private_name_is_imported_from_another_module(path: Path) -> None:
    for module, names in imported(path):
        if module.startswith("fcnlab"):
            private = [n for n in names if n.startswith("_") and not n.endswith("__")]
            assert not private, f"{path.relative_to(SRC)} imports {private} from {module}"


def test_task_names_are_compared_only_in_tasks_and_registries() -> None:
    # A comparison with a task name, or a tuple of them, is dispatch that belongs to a Task.
    dispatch = re.compile(
        r"""(==|!=|\bin)\s*\(?\s*["'](segmentation|detection)["']|["'](segmentation|detection)["']\s*(==|!=)|TASKS\s*=\s*\("""
    )
    allowed = ("tasks", "registry.py")
    offenders = [
        f"{path.relative_to(SRC)}:{number}: {line.strip()}"
        for path in modules()
        if not any(part in allowed for part in path.relative_to(SRC).parts)
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if dispatch.search(line)
    ]
    assert not offenders, "\n".join(offenders)
