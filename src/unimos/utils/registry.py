"""A tiny name -> factory registry, so a new method is one file plus one test."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from unimos.errors import UnimosError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories; `register` is a decorator, `get` gives a clear error listing known names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorate(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = factory
            return factory
        return decorate

    def get(self, name: str) -> Callable[..., T]:
        if name not in self._entries:
            raise UnimosError(f"{self.kind} '{name}'", "is not known", f"use one of {self.names()}")
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)
