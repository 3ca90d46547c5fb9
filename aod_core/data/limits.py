"""Input limits and strict JSON: what a file may be before the engine reads it.

Every input (schema, seeds, holdout, prompt file, uploads in the app) goes through these limits so a
hostile or broken file ends in one ``InputError`` line instead of a traceback, a hang or a silently
different reading. The limits come from the environment, so a user can raise them without code:

* ``AOD_MAX_INPUT_MB`` (default 50): the largest input file, also Streamlit's
  ``server.maxUploadSize`` in ``.streamlit/config.toml``;
* ``AOD_MAX_CELL_MB`` (default 1): the largest CSV cell or JSONL line;
* ``AOD_MAX_DEPTH`` (default 100): the deepest nesting of objects and arrays;
* ``AOD_MAX_CHOICES`` (default 10,000): the most choice values (enum members, the seeds' values of a
  categorical field) one scaffold may hold: each is a token of the generator's vocabulary, and a
  100,000-value enum makes every fitting step crawl.

JSON is read strictly: a key twice in one object (which ``json.loads`` would silently resolve to
the last value), ``NaN`` / ``Infinity`` (not JSON), a number beyond a 64-bit float (``1e400``, which
``json.loads`` reads as infinity) and a lone surrogate escape (``"\\ud800"``, which no UTF-8 file can
hold) are refused.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any

from aod_core.errors import InputError

DEFAULT_MAX_INPUT_MB = 50
DEFAULT_MAX_CELL_MB = 1
DEFAULT_MAX_DEPTH = 100
DEFAULT_MAX_CHOICES = 10_000


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InputError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise InputError(f"{name} must be > 0, got {raw!r}")
    return value


def max_input_mb() -> float:
    return _env_number("AOD_MAX_INPUT_MB", DEFAULT_MAX_INPUT_MB)


def max_cell_mb() -> float:
    return _env_number("AOD_MAX_CELL_MB", DEFAULT_MAX_CELL_MB)


def max_input_bytes() -> int:
    return int(max_input_mb() * 2**20)


def max_cell_bytes() -> int:
    return int(max_cell_mb() * 2**20)


def max_depth() -> int:
    return int(_env_number("AOD_MAX_DEPTH", DEFAULT_MAX_DEPTH))


def max_choices() -> int:
    return int(_env_number("AOD_MAX_CHOICES", DEFAULT_MAX_CHOICES))


def _mb(n: int) -> str:
    return f"{n / 2**20:.3g} MB"


def check_size(size: int, where: str) -> None:
    """InputError when a file of ``size`` bytes is over the input limit."""
    if size > max_input_bytes():
        raise InputError(
            f"file is too large ({_mb(size)}; the limit is {max_input_mb():g} MB, set AOD_MAX_INPUT_MB to change it)",
            where=where,
        )


def check_file_size(path: str | os.PathLike, where: str | None = None) -> None:
    try:
        size = os.path.getsize(path)
    except OSError:
        return  # the reader reports a missing or unreadable file in its own words
    check_size(size, where or os.fspath(path))


def check_cell(length: int, what: str, where: str) -> None:
    if length > max_cell_bytes():
        raise InputError(
            f"{what} is too long ({_mb(length)}; the limit is {max_cell_mb():g} MB, set AOD_MAX_CELL_MB to change it)",
            where=where,
        )


def not_utf8(path: str | os.PathLike, what: str = "file") -> str:
    """ "<what> is not UTF-8 text at line L (byte B: reason)" for a file that failed to decode; the
    position comes from the whole file (a text-mode reader reports it within its own buffer)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # the BOM Windows' "Unicode" writes
            return f"{what} is UTF-16 text; save it as UTF-8"
        data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        start = e.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)
        line = data.count(b"\n", 0, start) + 1
        return f"{what} is not UTF-8 text at line {line} (byte {start}: {e.reason}); save it as UTF-8"
    except OSError:
        pass
    return f"{what} is not UTF-8 text"


class StrictJSONError(ValueError):
    """A JSON text that parses but is refused (duplicate key, NaN, too deep)."""


class UnreadableValue(StrictJSONError):
    """A value no consumer can use, at ``path`` (``$.x``): a number beyond a 64-bit float, a lone
    surrogate. ``str()`` is ``"<path>: <what>"``."""

    def __init__(self, path: str, what: str) -> None:
        self.path, self.what = path, what
        super().__init__(f"{path}: {what}")


def _pairs(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise StrictJSONError(f"duplicate key {json.dumps(k, ensure_ascii=False)} in one object")
        out[k] = v
    return out


def _no_constant(name: str) -> Any:
    raise StrictJSONError(f"{name} is not valid JSON")


def _depth_before_parsing(text: str, limit: int) -> None:
    """Refuse nesting past ``limit`` by counting brackets outside strings: the parser recurses, and
    10,000 open brackets would end in a RecursionError deep inside it."""
    if text.count("[") + text.count("{") <= limit:
        return
    depth, in_str, esc = 0, False, False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                raise StrictJSONError(f"nested deeper than {limit} levels (set AOD_MAX_DEPTH to change it)")
        elif ch in "]}":
            depth -= 1


class _Overflow:
    """A number in the text that no 64-bit float holds, kept as written until its path is known."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


_FLOAT_MAX = sys.float_info.max
# A JSON escape of a UTF-16 surrogate: paired ones are joined by the parser, a lone one survives
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
# Text that may hold a number beyond a float: an exponent of 100 or more, or 309 digits in a row
_BIG_NUMBER = re.compile(r"[eE]\+?0*[1-9]\d{2}|\d{309}")


def _unreadable(value: Any, path: tuple = ()) -> UnreadableValue | None:
    """The first overflowed number or lone surrogate in a parsed value (depth already bounded)."""
    from aod_core.records import render_path  # records imports nothing of aod_core

    if isinstance(value, _Overflow):
        shown = value.text if len(value.text) <= 24 else f"{value.text[:12]}… ({len(value.text)} characters)"
        return UnreadableValue(
            render_path(path, quote=True), f"{shown} is not a finite number (beyond ±{_FLOAT_MAX:.3g})"
        )
    if isinstance(value, str):
        bad = next((ch for ch in value if "\ud800" <= ch <= "\udfff"), None)
        if bad is not None:
            return UnreadableValue(
                render_path(path, quote=True),
                f"text holds a lone surrogate \\u{ord(bad):04x}, which is not Unicode text",
            )
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        if isinstance(k, str):
            found = _unreadable(k, path)
            if found is not None:
                return UnreadableValue(found.path, f"a key's {found.what}")
        found = _unreadable(v, (*path, k))
        if found is not None:
            return found
    return None


def strict_loads(text: str) -> Any:
    """``json.loads`` that refuses duplicate keys, NaN/Infinity, numbers beyond a 64-bit float,
    lone surrogates and nesting past ``max_depth()``.

    Raises ``json.JSONDecodeError`` for text that is not JSON, ``UnreadableValue`` (naming the
    value's path) for an overflowed number or a lone surrogate, and ``StrictJSONError`` for the rest.
    """
    _depth_before_parsing(text, max_depth())
    overflowed: list[_Overflow] = []
    hooks: dict[str, Any] = {}
    if _BIG_NUMBER.search(text):  # only then: a Python call per number is slow on big files

        def number(s: str, kind: type) -> Any:
            digits = len(s.lstrip("-"))
            if kind is int and digits <= 309 and abs(int(s)) <= _FLOAT_MAX:  # int() of 5,000 digits raises
                return int(s)
            if kind is float and abs(float(s)) <= _FLOAT_MAX:
                return float(s)
            overflowed.append(_Overflow(s))
            return overflowed[-1]

        hooks = {"parse_float": lambda s: number(s, float), "parse_int": lambda s: number(s, int)}
    try:
        value = json.loads(text, object_pairs_hook=_pairs, parse_constant=_no_constant, **hooks)
    except RecursionError:  # belt and braces: the bracket count above should have stopped it
        raise StrictJSONError("nested too deeply to read") from None
    except StrictJSONError as e:
        found = _duplicate_key_at(text) if str(e).startswith("duplicate key") else None
        if found is None:
            raise
        key, pos = found
        line, col = text.count("\n", 0, pos) + 1, pos - text.rfind("\n", 0, pos)
        where = f"column {col}" if "\n" not in text else f"line {line}, column {col}"
        raise StrictJSONError(
            f"duplicate key {json.dumps(key, ensure_ascii=False)} at {where} (a key may appear once per object)"
        ) from None
    if overflowed or _SURROGATE_ESCAPE.search(text):
        found = _unreadable(value)
        if found is not None:
            raise found
    return value


def _duplicate_key_at(text: str) -> tuple[str, int] | None:
    """The first key that repeats within one object and where its second spelling starts. Only called
    on text the parser has read (so it is well formed and not too deep): containers are tracked on a
    stack, and a string is a key when it follows ``{`` or ``,`` inside an object."""
    from json.decoder import scanstring

    stack: list[set[str] | None] = []  # a set of keys per open object, None per open array
    expect_key, i, n = False, 0, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            value, end = scanstring(text, i + 1)
            if expect_key and stack and stack[-1] is not None:
                if value in stack[-1]:
                    return value, i
                stack[-1].add(value)
            expect_key, i = False, end
            continue
        if ch == "{":
            stack.append(set())
            expect_key = True
        elif ch == "[":
            stack.append(None)
        elif ch in "]}":
            stack.pop()
            expect_key = False
        elif ch == ",":
            expect_key = bool(stack) and stack[-1] is not None
        i += 1
    return None
