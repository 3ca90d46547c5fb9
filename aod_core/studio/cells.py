"""The pages' data editors: what a cell handed back holds (blank or not, a typed value), and a
content hash that keys an editor (or a cache) by what it shows.

An editor returns ``None``, ``NaN`` (pandas' empty number cell) or whitespace for an empty cell,
and text for what a person typed; the seed-fix table, the pin/forbid tables and the compiled-edit
table all read their cells through these functions, so an empty cell means the same everywhere.
"""

from __future__ import annotations

import json
import math
from typing import Any


def parse_cell_value(text: Any) -> Any:
    """A pin/forbid value typed in a table cell: JSON when it parses (``42``, ``null``, ``"x"``,
    ``true``), else the text itself as a string."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def blank(v: Any) -> bool:
    """Whether an editor cell is empty: None, NaN or only whitespace."""
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip())


def content_hash(value: Any) -> str:
    """A short stable hash of a JSON value (keys page widgets by what they show)."""
    import hashlib

    return hashlib.sha1(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:10]
