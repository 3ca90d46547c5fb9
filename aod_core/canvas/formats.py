"""String ``format``s as value languages: what the scaffold lets a formatted string slot spell.

Each language is a regular expression no stricter than needed and never looser than the
``jsonschema`` format checker (dates with real month lengths, octets up to 255 with no leading
zeros, RFC 3339 times with an offset), plus the characters it needs in the vocabulary (a uuid needs
every hex digit even if the seeds never used one) and the shortest spelling (the slot's least width).
A format without a language here is drawn from the seeds' values when the validator checks it.
"""

from __future__ import annotations

from dataclasses import dataclass

from aod_core.canvas.automaton import DATE_REGEX

_TIME = r"([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)"
_OCTET = r"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_HOST_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
_URI_CHARS = r"[A-Za-z0-9._~:/?#@!$&'()*+,;=%-]"
_POINTER = r"(/([^~/\x00-\x1f]|~[01])*)*"
_DIGITS = "0123456789"
_HEX = _DIGITS + "abcdef"


@dataclass(frozen=True)
class Format:
    regex: str
    chars: str  # characters every spelling may need, added to the vocabulary
    min_width: int


FORMATS: dict[str, Format] = {
    "date": Format(DATE_REGEX, _DIGITS + "-", 10),
    "date-time": Format(rf"{DATE_REGEX}T{_TIME}", _DIGITS + "-:T.Z+", 20),
    "time": Format(_TIME, _DIGITS + ":.Z+-", 9),
    "email": Format(r"[A-Za-z0-9._+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+", "@.abcdefghijklmnopqrstuvwxyz", 5),
    "idn-email": Format(r"[^\x00-\x1f@\s]+@[^\x00-\x1f@\s.]+(\.[^\x00-\x1f@\s.]+)+", "@.abcdefghijklmnopqrstuvwxyz", 5),
    "uri": Format(rf"[a-z][a-z0-9+.-]*:{_URI_CHARS}+", ":/.abcdefghijklmnopqrstuvwxyz", 3),
    "uri-reference": Format(rf"{_URI_CHARS}*", "/.abcdefghijklmnopqrstuvwxyz", 1),
    "iri": Format(r"[a-z][a-z0-9+.-]*:[^\x00-\x20<>\"{}|\\^`]+", ":/.abcdefghijklmnopqrstuvwxyz", 3),
    "uuid": Format("-".join(f"[0-9a-fA-F]{{{n}}}" for n in (8, 4, 4, 4, 12)), _HEX + "-", 36),
    "ipv4": Format(rf"{_OCTET}(\.{_OCTET}){{3}}", _DIGITS + ".", 7),
    "hostname": Format(rf"{_HOST_LABEL}(\.{_HOST_LABEL})*", "abcdefghijklmnopqrstuvwxyz.-", 1),
    "json-pointer": Format(_POINTER, "/abcdefghijklmnopqrstuvwxyz", 1),
    "relative-json-pointer": Format(rf"(0|[1-9]\d*)(#|{_POINTER})", _DIGITS + "/#", 1),
}
