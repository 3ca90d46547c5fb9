"""Records: the generated JSON values every layer passes around, and what is done to them everywhere.

A *record* is one JSON value a generator wrote. Generators, the judge, the metrics, the audit, the
charts, the export and the studio all compare records and walk their fields, so the three ways of
doing that live here, once, below every other module (nothing else of ``aod_core`` is imported):

* ``Candidate``: one generated record as produced — its text, the parsed value, or why there is none;
* ``canonical_json``: the text by which JSON values are compared and hashed (key order never makes
  two equal values differ);
* ``walk`` and ``render_path``: the one leaf walker, which yields *structured* paths (a tuple of
  object keys, array indices and ``LENGTH``), and the one way to spell such a path as text. Each
  caller picks the spelling its readers see, all of the same syntax::

      render_path(p)                           $.birds[0].sex    indexed (metrics, the judge)
      render_path(p, items="*")                $.birds[*].sex    every item pooled (audit fields)
      render_path(p, items="*", quote=True)    $["a b"][*]       as the scaffold spells field keys
      render_path(p, root="", items="")        birds[].sex       chart features
      render_path(p, root="")                  birds.sex         export columns (arrays not walked)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any


@dataclass
class Candidate:
    """One generated record as produced: its JSON text, the parsed value, or why there is none."""

    text: str | None
    record: Any = None
    error: str | None = None

    @property
    def parsed(self) -> bool:
        return self.error is None

    @classmethod
    def from_text(cls, text: str) -> Candidate:
        try:
            return cls(text=text, record=json.loads(text))
        except ValueError as e:
            return cls(text=text, error=f"not valid JSON: {e}")

    @classmethod
    def of(cls, item: Any) -> Candidate:
        """``item`` itself when it is a Candidate, else a parsed record that came with no text."""
        return item if isinstance(item, cls) else cls(text=None, record=item)


def canonical_json(value: Any, *, compact: bool = True) -> str:
    """Canonical JSON text of a value: sorted keys, non-ASCII kept. Two values are equal exactly
    when their texts are, with either spacing.

    ``compact`` (the default) writes no whitespace (``{"a":1,"b":[1,2]}``): the form records are
    compared, deduplicated, embedded and hashed by in the metrics, the audit, the judge and the run
    store. ``compact=False`` keeps ``json.dumps``' default ``", "`` / ``": "`` spacing
    (``{"a": 1, "b": [1, 2]}``): the canvas's identity of a choice, which fitted models store, so
    it must stay byte for byte what it was."""
    if compact:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


class _Length:
    """The path step that names an array's length (spelled ``[#]``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "LENGTH"


LENGTH = _Length()
Step = str | int | _Length  # an object key, an array index, or LENGTH
Path = tuple[Step, ...]


def walk(
    value: Any, *, arrays: bool = True, lengths: bool = False, stop: Callable[[Path], bool] | None = None
) -> list[tuple[Path, Any]]:
    """(path, value) for every leaf of a JSON value, depth first in document order.

    A leaf is anything but a non-empty object or array: a scalar, ``{}`` or ``[]``. Object keys
    are steps as strings, array items as their index. ``arrays=False``: arrays are leaves, never
    entered. ``lengths=True``: every array entered first gives ``(path + (LENGTH,), len)``, and an
    empty array then gives nothing else. ``stop(path)`` true: the value there is a leaf whatever
    it holds.

    >>> walk({"a": 1, "b": [{"c": "x"}]}, lengths=True)
    [(('a',), 1), (('b', LENGTH), 1), (('b', 0, 'c'), 'x')]
    """
    out: list[tuple[Path, Any]] = []

    def visit(v: Any, path: Path) -> None:
        if stop is not None and stop(path):
            out.append((path, v))
        elif isinstance(v, dict) and v:
            for k, x in v.items():
                visit(x, (*path, str(k)))
        elif arrays and isinstance(v, list) and (v or lengths):
            if lengths:
                out.append(((*path, LENGTH), len(v)))
            for i, x in enumerate(v):
                visit(x, (*path, i))
        else:
            out.append((path, v))

    visit(value, ())
    return out


@lru_cache(maxsize=1 << 16)  # records of one schema share their paths: each is spelled once
def render_path(path: Path, *, root: str = "$", items: str | None = None, quote: bool = False) -> str:
    """The text of a structured path: ``root``, then ``.key`` for each key (just ``key`` while the
    text is still empty), ``[i]`` for each array index (``[items]`` instead when ``items`` is given:
    ``"*"`` pools every item under one path) and ``[#]`` for ``LENGTH``. ``quote``: a key that is not
    an identifier is written ``["key"]`` (JSON-quoted), as the scaffold spells field keys.

    >>> render_path(("birds", 0, "sex")), render_path(("birds", 0, "sex"), items="*")
    ('$.birds[0].sex', '$.birds[*].sex')
    """
    out = root
    for step in path:
        if step is LENGTH:
            out += "[#]"
        elif isinstance(step, int):
            out += f"[{step if items is None else items}]"
        elif quote and not step.isidentifier():
            out += f"[{json.dumps(step, ensure_ascii=False)}]"
        else:
            out += f".{step}" if out else step
    return out


def leaves(value: Any) -> list[tuple[str, Any]]:
    """(indexed path text, value) for every leaf of a JSON value: ``$.birds[0].sex``; an empty object
    or array is itself a leaf."""
    return [(render_path(p), v) for p, v in walk(value)]
