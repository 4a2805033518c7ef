"""Things of one kind by name (timm's `@register_model`, baal's `get_heuristic`): filled by a
decorator where each thing is defined, read by name from a config. An unknown name is one
ConfigError line that names the key and lists the valid names, so Tune can search over names and
a typo says what to type instead."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pipeline.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """`key` is how a user names the choice ("acquisition", "memory.policy"), for the error line."""

    def __init__(self, key: str):
        self.key = key
        self._entries: dict[str, T] = {}
        self._tags: dict[str, dict[str, Any]] = {}

    def register(self, name: str, **tags: Any) -> Callable[[T], T]:
        """Decorator: `name` is the config's word for the decorated class or function; a class gets it
        as its `name` attribute. `tags`: facts about the entry that need no instance (a model reads
        "pixels" or "tokens")."""

        def wrap(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.key} '{name}' is registered twice")
            self._entries[name], self._tags[name] = entry, tags
            if isinstance(entry, type):
                entry.name = name  # type: ignore[attr-defined]
            return entry

        return wrap

    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise ConfigError(f"unknown {self.key} '{name}': choose one of {', '.join(self.names())}")
        return self._entries[name]

    def tag(self, name: str, tag: str) -> Any:
        return self._tags[name][tag]

    def __contains__(self, name: object) -> bool:
        return name in self._entries
