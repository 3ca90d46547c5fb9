"""Implausible-but-valid records built from real ones, for measuring a judge (``bench_judge.py``).

Every negative is schema-valid and not a copy of a seed; each kind breaks realism in one way:

* ``independent``: every top-level field drawn from a different real record (a product of the
  marginals: each value is real, their combination is not).
* ``far_number``: one number moved beyond the seeds' range, inside the schema's bounds: placed past
  the seeds' extreme by half the seeds' range, or up to the schema's bound when that is closer. A
  field qualifies only when the schema leaves room of at least 10% of the seeds' range beyond it.
* ``random_text``: one free-text value (a string field without enum, pattern or format whose seed
  values rarely repeat) replaced by random letters of the same length, keeping its spaces and
  capitals in place.
* ``swapped``: one number of a record replaced by the same field's value from a record of another
  category (a Gentoo's body mass given to an Adelie). The category and the number are the pair
  whose seeds show the strongest dependence (the largest share of the number's variance explained
  by the category), so the swap moves a value that the category matters for.

The real records are a dataset's holdout. Everything is drawn from ``random.Random(seed)``.
"""

from __future__ import annotations

import json
import math
import random
import string
from typing import Any

KINDS = ("independent", "far_number", "random_text", "swapped")


def _canon(r: Any) -> str:
    return json.dumps(r, sort_keys=True, ensure_ascii=False)


def _leaf_schema(schema: dict, path: list) -> dict:
    node = schema
    for p in path:
        if isinstance(p, int):
            node = node.get("items") if isinstance(node.get("items"), dict) else {}
        else:
            node = (node.get("properties") or {}).get(p, {})
    return node if isinstance(node, dict) else {}


def _leaves(value: Any, path: list | None = None) -> list[tuple[list, Any]]:
    path = path or []
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in _leaves(v, path + [k])]
    if isinstance(value, list):
        return [x for i, v in enumerate(value) for x in _leaves(v, path + [i])]
    return [(path, value)]


def _fold(path: list) -> tuple:
    return tuple("*" if isinstance(p, int) else p for p in path)


def _set(record: Any, path: list, value: Any) -> Any:
    out = json.loads(json.dumps(record))
    node = out
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return out


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _decimals(values: list[float]) -> int:
    d = 0
    for v in values:
        if isinstance(v, float):
            text = repr(v)
            d = max(d, len(text.split(".")[1]) if "." in text and "e" not in text else 0)
    return d


class NegativeFactory:
    def __init__(self, schema: dict, seeds: list[Any], real: list[Any], seed: int = 0):
        self.schema, self.seeds, self.real = schema, seeds, real
        self.rng = random.Random(seed)
        self.seed_keys = {_canon(s) for s in seeds}
        values: dict[tuple, list[Any]] = {}
        for s in seeds:
            for path, v in _leaves(s):
                values.setdefault(_fold(path), []).append(v)
        self.seed_values = values

    def far_fields(self) -> dict[tuple, tuple[float | None, float | None, int, bool]]:
        """Numeric fields with room beyond the seeds: folded path -> (value above, value below, decimals, integer)."""
        out = {}
        for path, vals in self.seed_values.items():
            nums = [float(v) for v in vals if _is_num(v)]
            if len(nums) < 5 or len(nums) < 0.5 * len(vals):
                continue
            node = _leaf_schema(self.schema, [0 if p == "*" else p for p in path])
            lo, hi = min(nums), max(nums)
            span = hi - lo
            if span <= 0:
                continue
            integer = all(isinstance(v, int) for v in vals if _is_num(v)) or "integer" in str(node.get("type"))
            smax = node.get("exclusiveMaximum", node.get("maximum", math.inf))
            smin = node.get("exclusiveMinimum", node.get("minimum", -math.inf))
            dec = 0 if integer else _decimals([v for v in vals if isinstance(v, float)])
            up = down = None
            room_up, room_down = smax - hi, lo - smin
            if room_up >= 0.1 * span:
                up = hi + min(0.5 * span, room_up * 0.999)
                up = math.floor(up) if integer else math.floor(up * 10**dec) / 10**dec
            if room_down >= 0.1 * span:
                down = lo - min(0.5 * span, room_down * 0.999)
                down = math.ceil(down) if integer else math.ceil(down * 10**dec) / 10**dec
            if up is not None or down is not None:
                out[path] = (up, down, dec, integer)
        return out

    def text_fields(self) -> list[tuple]:
        out = []
        for path, vals in self.seed_values.items():
            strs = [v for v in vals if isinstance(v, str)]
            if len(strs) < 10 or len(set(strs)) <= 0.4 * len(strs):
                continue
            node = _leaf_schema(self.schema, [0 if p == "*" else p for p in path])
            if any(k in node for k in ("enum", "const", "pattern", "format")):
                continue
            out.append(path)
        return out

    def category_fields(self) -> list[str]:
        top = self.schema.get("properties") or {}
        out = []
        for name in top:
            vals = self.seed_values.get((name,), [])
            distinct = {_canon(v) for v in vals}
            if vals and 2 <= len(distinct) <= 30 and not all(_is_num(v) for v in vals if v is not None):
                out.append(name)
        return out

    def swap_pair(self) -> tuple[str, str] | None:
        """(category field, numeric field) with the largest eta^2 of the number given the category."""
        if hasattr(self, "_pair"):
            return self._pair
        best, self._pair = 0.0, None
        top = list(self.schema.get("properties") or {})
        for cat in self.category_fields():
            for f in top:
                pairs = [
                    (_canon(s.get(cat)), float(s[f])) for s in self.seeds if isinstance(s, dict) and _is_num(s.get(f))
                ]
                if len(pairs) < 10 or f == cat:
                    continue
                xs = [x for _, x in pairs]
                mean = sum(xs) / len(xs)
                total = sum((x - mean) ** 2 for x in xs)
                groups: dict[str, list[float]] = {}
                for k, x in pairs:
                    groups.setdefault(k, []).append(x)
                within = sum(sum((x - sum(g) / len(g)) ** 2 for x in g) for g in groups.values())
                eta = 1 - within / total if total else 0.0
                if eta > best:
                    best, self._pair = eta, (cat, f)
        return self._pair

    def _random_letters(self, text: str) -> str:
        out = []
        for ch in text:
            if ch.isspace():
                out.append(ch)
            elif ch.isupper():
                out.append(self.rng.choice(string.ascii_uppercase))
            else:
                out.append(self.rng.choice(string.ascii_lowercase))
        return "".join(out)

    def make(self, kind: str, n: int, validate) -> list[Any]:
        """Up to ``n`` negatives of ``kind`` (fewer when the data offers no way to build them)."""
        out, tries = [], 0
        while len(out) < n and tries < 50 * n:
            tries += 1
            rec = self._one(kind)
            if rec is None:
                if tries > 20 and not out:
                    break
                continue
            if _canon(rec) in self.seed_keys or not validate(rec):
                continue
            out.append(rec)
        return out

    def _one(self, kind: str) -> Any:
        rng = self.rng
        base = rng.choice(self.real)
        if kind == "independent":
            keys = list(base)
            donors = rng.sample(self.real, min(len(keys), len(self.real)))
            return {
                k: donors[i % len(donors)].get(k, base[k])
                for i, k in enumerate(keys)
                if k in donors[i % len(donors)] or k in base
            }
        if kind == "far_number":
            fields = self.far_fields()
            spots = [(p, v) for p, v in _leaves(base) if _fold(p) in fields and _is_num(v)]
            if not spots:
                return None
            path, _v = rng.choice(spots)
            up, down, _dec, integer = fields[_fold(path)]
            x = rng.choice([c for c in (up, down) if c is not None])
            return _set(base, path, int(x) if integer else float(x))
        if kind == "random_text":
            fields = set(self.text_fields())
            spots = [(p, v) for p, v in _leaves(base) if _fold(p) in fields and isinstance(v, str) and v.strip()]
            if not spots:
                return None
            path, v = rng.choice(spots)
            return _set(base, path, self._random_letters(v))
        if kind == "swapped":
            pair = self.swap_pair()
            if pair is None:
                return None
            cat, f = pair
            others = [r for r in self.real if _canon(r.get(cat)) != _canon(base.get(cat))]
            if not others or not _is_num(base.get(f)):
                return None
            donor = rng.choice(others)
            if not _is_num(donor.get(f)) or donor[f] == base[f]:
                return None
            return dict(base, **{f: donor[f]})
        raise ValueError(kind)
