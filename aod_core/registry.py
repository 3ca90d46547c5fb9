"""A registry: one table per family of pluggable things (generator kinds, chat backends), by name.

``register(kind)`` adds a kind under ``kind.name`` and returns it, so a module's table is a list of
one-line registrations; everything that needs to know the family's members reads the table.
"""

from __future__ import annotations

from typing import Generic, TypeVar

K = TypeVar("K")


class Registry(dict[str, K], Generic[K]):
    def register(self, kind: K) -> K:
        self[kind.name] = kind  # type: ignore[attr-defined]
        return kind
