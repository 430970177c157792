"""Small name -> builder registries (timm's ``register_model``, torchvision's ``get_model``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")
Builder = Callable[..., Any]


class Registry(Generic[T]):
    """Maps names to builder functions; ``register`` is a decorator, ``build`` calls by name."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._builders: dict[str, Builder] = {}

    def register(self, name: str | None = None) -> Callable[[Builder], Builder]:
        """Decorator that registers a builder under ``name`` (default: the function's name)."""

        def decorate(builder: Builder) -> Builder:
            key = name or builder.__name__
            if key in self._builders:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._builders[key] = builder
            return builder

        return decorate

    def get(self, name: str) -> Builder:
        """The builder registered under ``name``; a KeyError lists the known names otherwise."""
        try:
            return self._builders[name]
        except KeyError:
            known = ", ".join(sorted(self._builders)) or "none"
            raise KeyError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def build(self, name: str, *args: Any, **kwargs: Any) -> T:
        """Call the builder registered under ``name``."""
        return self.get(name)(*args, **kwargs)

    def names(self) -> list[str]:
        """All registered names, sorted."""
        return sorted(self._builders)

    def __contains__(self, name: object) -> bool:
        return name in self._builders
