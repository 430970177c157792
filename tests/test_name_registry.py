from __future__ import annotations

import pytest

from fcnlab.registry import Registry


def test_register_build_and_list() -> None:
    registry: Registry[int] = Registry("widget")

    @registry.register()
    def small(scale: int = 1) -> int:
        return 2 * scale

    @registry.register("big")
    def make_big() -> int:
        return 100

    assert registry.names() == ["big", "small"]
    assert registry.build("small", scale=3) == 6
    assert "big" in registry and "huge" not in registry


def test_unknown_and_duplicate_names_are_errors() -> None:
    registry: Registry[int] = Registry("widget")
    registry.register("a")(lambda: 1)
    with pytest.raises(KeyError, match="unknown widget 'b'; known: a"):
        registry.build("b")
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("a")(lambda: 2)
