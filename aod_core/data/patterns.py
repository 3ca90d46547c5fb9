"""A user's regular expressions (JSON Schema ``pattern`` and ``patternProperties``) run on RE2.

jsonschema checks these with Python's ``re``, which backtracks: ``^(a+)+$`` against ``"aaaa…a!"``
takes time that doubles with every character, and holds the GIL all along, so one uploaded schema
would stall every session of the app and every job running beside it. RE2 matches in time linear in
the text. It cannot run backreferences or lookarounds (nothing linear can), so a schema that uses
them is refused when it is loaded (``schema.check_patterns``), never handed to a slower engine instead.

``linear(cls)`` is a jsonschema validator class whose every keyword that runs a schema's regular
expression runs it on RE2: ``pattern``, ``patternProperties``, ``additionalProperties`` (which
skips the keys ``patternProperties`` matches) and ``unevaluatedProperties`` (which counts them as
evaluated). The ``format: "regex"`` checker is left to jsonschema: it compiles the value with
Python's ``re`` and never matches anything with it, and compiling does not backtrack.
"""

from __future__ import annotations

import functools
import json
import re
import types
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema.validators
import re2
from jsonschema.exceptions import ValidationError

from aod_core.errors import InputError

# RE2 reports a pattern it cannot compile as ``re2.error``; its own log would print it on stderr as
# well, beside the one line the CLI prints.
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False


class UnsafePattern(InputError):
    """A pattern the linear-time engine cannot run; ``reason`` says why."""

    def __init__(self, pattern: str, reason: str) -> None:
        self.pattern, self.reason = pattern, reason
        super().__init__(f"pattern {json.dumps(pattern, ensure_ascii=False)} cannot be checked safely ({reason})")


@functools.lru_cache(maxsize=4096)  # validation matches the same few patterns once per record and key
def compiled(pattern: str) -> Any:
    """``pattern`` compiled by RE2; ``UnsafePattern`` for one it cannot run."""
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as e:
        raise _unsafe(pattern, e) from None


def _unsafe(pattern: str, error: re2.error) -> UnsafePattern:
    detail = error.args[0].decode("utf-8", "replace") if error.args and isinstance(error.args[0], bytes) else str(error)
    if re.match(r"invalid escape sequence: \\[1-9]", detail):
        reason = "backreferences are not supported by the linear-time engine"
    elif detail.startswith("invalid perl operator: (?<"):
        reason = "lookbehind is not supported by the linear-time engine"
    elif detail.startswith(("invalid perl operator: (?=", "invalid perl operator: (?!")):
        reason = "lookahead is not supported by the linear-time engine"
    elif detail.startswith(("invalid repetition size", "bad repetition operator")):
        reason = "the linear-time engine takes repetition counts up to 1000, nested ones included"
    elif "pattern too large" in detail:
        reason = "it is too large for the linear-time engine"
    else:
        reason = f"the linear-time engine cannot read it: {detail}"
    return UnsafePattern(pattern, reason)


def search(pattern: str, text: str) -> bool:
    """Whether ``pattern`` matches anywhere in ``text`` (JSON Schema's reading of ``pattern``)."""
    return compiled(pattern).search(text) is not None


# -- the keywords --------------------------------------------------------------------------------


def _pattern(validator, patrn, instance, schema) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not search(patrn, instance):
        yield ValidationError(f"{instance!r} does not match {patrn!r}")


def _pattern_properties(validator, patternProperties, instance, schema) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patternProperties.items():
        for k, v in instance.items():
            if search(pattern, k):
                yield from validator.descend(v, subschema, path=k, schema_path=pattern)


def _find_additional_properties(instance, schema) -> Iterator[str]:
    """jsonschema's ``find_additional_properties`` on RE2: the keys neither ``properties`` nor
    ``patternProperties`` cover."""
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    for property in instance:
        if property not in properties and not any(search(p, property) for p in patterns):
            yield property


def _rebound(fn: Callable, *, recursive: bool = False, **names: Any) -> Callable:
    """A copy of ``fn`` reading the given global ``names`` as other objects; ``recursive``: where
    ``fn`` calls itself, the copy calls the copy. ``fn``'s module and every other caller keep the
    original. jsonschema keeps these helpers private, so a release that stops reading a name is
    refused loudly here: running its ``re`` would bring the freeze back."""
    missing = sorted((set(names) | ({fn.__name__} if recursive else set())) - set(fn.__code__.co_names))
    if missing:
        raise RuntimeError(
            f"jsonschema's {fn.__module__}.{fn.__qualname__} no longer reads {', '.join(missing)}: "
            "aod_core/data/patterns.py must follow its new internals before patterns can run safely"
        )
    scope = {**fn.__globals__, **names}
    copy = types.FunctionType(fn.__code__, scope, fn.__name__, fn.__defaults__, fn.__closure__)
    copy.__kwdefaults__ = fn.__kwdefaults__
    if recursive:
        scope[fn.__name__] = copy
    return copy


_RE2 = types.SimpleNamespace(search=search)  # what jsonschema's helpers call ``re`` (they only search)


def _unevaluated_properties(keyword: Callable) -> Callable:
    """``keyword`` (jsonschema's ``unevaluatedProperties`` of one draft) counting the keys that
    ``patternProperties`` match with RE2, through its own draft's helper."""
    helper = keyword.__globals__["find_evaluated_property_keys_by_schema"]
    return _rebound(keyword, find_evaluated_property_keys_by_schema=_rebound(helper, recursive=True, re=_RE2))


@functools.cache
def linear(cls: type) -> type:
    """The jsonschema validator class ``cls`` with every keyword that runs a schema's regular
    expression running it on RE2 (error messages as jsonschema words them)."""
    keywords: dict[str, Callable] = {"pattern": _pattern, "patternProperties": _pattern_properties}
    if "additionalProperties" in cls.VALIDATORS:
        keywords["additionalProperties"] = _rebound(
            cls.VALIDATORS["additionalProperties"], find_additional_properties=_find_additional_properties
        )
    if "unevaluatedProperties" in cls.VALIDATORS:
        keywords["unevaluatedProperties"] = _unevaluated_properties(cls.VALIDATORS["unevaluatedProperties"])
    return jsonschema.validators.extend(cls, keywords)
