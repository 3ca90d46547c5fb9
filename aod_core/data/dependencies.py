"""Dependencies: the exact facts of the seeds that tie fields together, found once and used everywhere.

Real tables carry facts no marginal shows and no sampler keeps by luck:

* a **functional dependency** ``A -> B``: every value of A always comes with the same B (``iso_num`` and
  ``continent`` are fixed by ``country``). Found when the seeds show it with support: at least
  ``MIN_GROUPS`` values of A seen twice or more, ``MIN_CONFIRMATIONS`` repeats in all, B the same in
  every repeat, and agreement that chance would give less than ``CHANCE`` of the time (the product,
  over A's repeated values, of the chance that B's marginal draws the same value for all of them);
* an **identifier**: a field of codes (short values without spaces, or integers) that another field
  fixes or that names itself as a code (``iso_num``, ``customer_id``): shown to the user, compared
  exactly, never binned into magnitudes;
* a **key**: one code-like field, or two repeating fields, whose value (or combination) no two seeds
  share, with room for new ones (the seeds use at most ``KEY_COVERAGE`` of the combinations their
  values allow): ``(country, year)``. A new record that reuses a seed's key describes the same thing
  as that seed.

Fields mutually fixed (``country`` <-> ``iso_alpha`` <-> ``iso_num``) form one class; the class's first
field in schema order is its *determinant*, and every other field has at most one *parent* (the
determinant with the fewest values that fixes it), so the generator can decide each parent first and
write its dependents from the seeds' map (``canvas/conditioning.py``). The judge rejects a record
that breaks a dependency its seeds know, naming both fields and the seeds' value; the audit counts
violations and key reuse. ``DependencySettings`` is the user's say: ``off``, dependencies to ignore,
and dependencies or keys to add (their map is still read from the seeds).

Only fields outside arrays take part (paths as the scaffold spells them: ``$.country``, ``$.a.b``).
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from aod_core.errors import InputError
from aod_core.records import canonical_json, render_path, walk

MIN_GROUPS = 3  # values of the determinant seen at least twice
MIN_CONFIRMATIONS = 10  # repeats in all (sum over repeated values of count - 1)
CHANCE = 1e-6  # a dependency the seeds could show by chance more often than this is not one
KEY_COVERAGE = 0.5  # a key's seeds use at most this share of the combinations its values allow
MIN_KEY_SEEDS = 20
REPEATING = 0.5  # a key field of two repeats: at most this many distinct values per seed
MAX_FIELDS = 64  # fields compared pairwise (the first in schema order)
MODES = ("auto", "off")

_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-./:+]{0,23}$")
_ID_NAME = re.compile(r"(^|[_\-.])(id|code|num|no|number|iso|key|uuid)$|[a-z](Id|ID|Code|Num|Key)$", re.IGNORECASE)


@dataclass(frozen=True)
class Dependency:
    """``determinant -> dependent``: the seeds' map from each value of one field to the other's."""

    determinant: str
    dependent: str
    mapping: dict[str, Any]  # canonical JSON of a determinant value -> the dependent's value
    support: dict[str, int]  # canonical JSON of a determinant value -> seeds that have it
    source: str = "detected"  # detected | added (by the user)

    @property
    def name(self) -> str:
        return f"{self.determinant} -> {self.dependent}"

    def expected(self, value: Any) -> tuple[bool, Any]:
        """(known, the dependent's value) for a determinant value."""
        key = canonical_json(value)
        return (key in self.mapping), self.mapping.get(key)


@dataclass
class DependencySettings:
    """What the user says about the detected dependencies: ``mode`` auto (use them) or off;
    ``ignore``: dependencies (``"$.a -> $.b"``) or keys (``"($.a, $.b)"``) not to use; ``add``: ones the
    seeds do not show with enough support but the user knows hold."""

    mode: str = "auto"
    ignore: list[str] = field(default_factory=list)
    add: list[str] = field(default_factory=list)

    def check(self) -> None:
        if self.mode not in MODES:
            raise InputError(f"dependencies must be auto or off, got {self.mode!r}")
        for what, items in (("ignore", self.ignore), ("add", self.add)):
            if not isinstance(items, list):
                raise InputError(f"dependencies {what} must be a list of 'A -> B' or '(A, B)' texts")
            for item in items:
                parse_spec(item, f"dependencies {what}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> DependencySettings:
        d = d or {}
        if not isinstance(d, dict) or set(d) - {"mode", "ignore", "add"}:
            raise InputError("dependencies must be an object with mode, ignore and add")
        s = cls(mode=d.get("mode", "auto"), ignore=list(d.get("ignore") or []), add=list(d.get("add") or []))
        s.check()
        return s


def _path(text: str) -> str:
    text = text.strip()
    return text if text.startswith("$") else f"$.{text}"


def parse_spec(text: Any, what: str = "dependency") -> tuple[str, tuple[str, ...]]:
    """``("fd", (A, B))`` for ``"A -> B"``, ``("key", fields)`` for ``"(A, B)"`` or ``"(A)"``; paths get
    ``$.`` in front when they lack it. InputError naming ``what`` otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"{what}: expected 'A -> B' or '(A, B)', got {text!r}")
    t = text.strip()
    if "->" in t:
        a, _, b = t.partition("->")
        if not a.strip() or not b.strip() or "->" in b:
            raise InputError(f"{what}: expected 'A -> B', got {text!r}")
        return "fd", (_path(a), _path(b))
    if t.startswith("(") and t.endswith(")"):
        parts = tuple(_path(p) for p in t[1:-1].split(",") if p.strip())
        if 1 <= len(parts) <= 3 and len(set(parts)) == len(parts):
            return "key", parts
    raise InputError(f"{what}: expected 'A -> B' or '(A, B)', got {text!r}")


def key_name(fields: Sequence[str]) -> str:
    return "(" + ", ".join(fields) + ")"


def field_values(record: Any) -> dict[str, Any]:
    """The record's scalar fields outside arrays, by path (``$.a.b``)."""
    if not isinstance(record, dict):
        return {}
    out = {}
    for p, v in walk(record, arrays=False):
        if isinstance(v, (dict, list)):
            continue
        out[render_path(p, quote=True)] = v
    return out


def schema_order(schema: Any) -> list[str]:
    """The field paths of a resolved schema outside arrays, in schema order (the first field of a
    class of mutually fixed fields is its determinant)."""
    out: list[str] = []

    def visit(node: Any, path: str) -> None:
        if not isinstance(node, dict) or not isinstance(node.get("properties"), dict):
            return
        for name, sub in node["properties"].items():
            child = render_path((*path, name), quote=True)
            out.append(child)
            visit(sub, (*path, name))

    visit(schema, ())
    return out


def _is_float(v: Any) -> bool:
    return isinstance(v, float) and not float(v).is_integer()


@dataclass
class Dependencies:
    """The dependencies, identifiers and keys in force for one seed set (``detect``)."""

    fds: list[Dependency] = field(default_factory=list)
    keys: list[tuple[str, ...]] = field(default_factory=list)
    identifiers: list[str] = field(default_factory=list)
    parents: dict[str, str] = field(default_factory=dict)  # dependent -> the determinant the generator decides first
    ignored: list[str] = field(default_factory=list)  # detected, but the user said not to use them
    fields: list[str] = field(default_factory=list)  # fields compared, schema order
    notes: list[str] = field(default_factory=list)  # what the user's settings did not find to act on

    def __bool__(self) -> bool:
        return bool(self.fds or self.keys)

    def fd(self, determinant: str, dependent: str) -> Dependency | None:
        return next((d for d in self.fds if d.determinant == determinant and d.dependent == dependent), None)

    def generation(self) -> list[Dependency]:
        """The dependencies the generator keeps: one per dependent, from its parent."""
        return [d for d in (self.fd(p, c) for c, p in self.parents.items()) if d is not None]

    # -- records -----------------------------------------------------------------------------------

    def violations(self, record: Any) -> list[tuple[Dependency, Any, Any]]:
        """(dependency, the record's dependent value, the seeds' value) for each dependency the record
        breaks, at most one per dependent field."""
        vals = field_values(record)
        out, seen = [], set()
        for d in self.fds:
            if d.dependent in seen or d.determinant not in vals or d.dependent not in vals:
                continue
            known, want = d.expected(vals[d.determinant])
            if known and canonical_json(want) != canonical_json(vals[d.dependent]):
                out.append((d, vals[d.dependent], want))
                seen.add(d.dependent)
        return out

    def unchecked(self, record: Any) -> list[tuple[str, Any, list[str]]]:
        """(determinant, its value, dependents) where the record's determinant value is new to the
        seeds, so its dependents could not be written from the seeds' map or checked."""
        vals = field_values(record)
        out = []
        for det in dict.fromkeys(self.parents.values()):
            if det in vals and not any(d.expected(vals[det])[0] for d in self.fds if d.determinant == det):
                kids = [c for c, p in self.parents.items() if p == det and c in vals]
                if kids:
                    out.append((det, vals[det], kids))
        return out

    def key_of(self, record: Any, key: Sequence[str]) -> str | None:
        vals = field_values(record)
        if any(f not in vals for f in key):
            return None
        return canonical_json([vals[f] for f in key])

    def seed_keys(self, seeds: Sequence[Any]) -> dict[tuple[str, ...], set[str]]:
        return {k: {t for t in (self.key_of(s, k) for s in seeds) if t is not None} for k in self.keys}

    def reused_keys(self, record: Any, seed_keys: dict[tuple[str, ...], set[str]]) -> list[tuple[str, ...]]:
        """The keys whose value in the record some seed already has."""
        return [k for k, have in seed_keys.items() if self.key_of(record, k) in have]

    # -- display -----------------------------------------------------------------------------------

    def rows(self) -> list[dict[str, Any]]:
        """One row per dependency and key, for the Design page and the CLI."""
        out = []
        for d in self.fds:
            repeated = sum(1 for c in d.support.values() if c >= 2)
            out.append(
                {
                    "kind": "dependency",
                    "rule": d.name,
                    "source": d.source,
                    "evidence": f"{len(d.mapping)} values of {d.determinant}, {repeated} seen twice or more",
                    "kept while sampling": self.parents.get(d.dependent) == d.determinant,
                }
            )
        for k in self.keys:
            out.append(
                {
                    "kind": "key",
                    "rule": key_name(k),
                    "source": "detected",
                    "evidence": "no two seeds share it",
                    "kept while sampling": True,
                }
            )
        return out

    def summary(self) -> str:
        if not self:
            return "no dependencies or keys"
        parts = [d.name for d in self.generation()] + [f"key {key_name(k)}" for k in self.keys]
        return "; ".join(parts)


# ---- detection ------------------------------------------------------------------------------------


def detect(seeds: Sequence[Any], settings: DependencySettings | None = None, order: Sequence[str] = ()) -> Dependencies:
    """The dependencies, identifiers and keys of ``seeds`` (fields in ``order`` first, then as the
    seeds have them), with the user's ``settings`` applied."""
    settings = settings or DependencySettings()
    settings.check()
    rows = [field_values(s) for s in seeds]
    seen = list(dict.fromkeys(p for r in rows for p in r))
    fields_ = [p for p in order if p in seen] + [p for p in seen if p not in order]
    fields_ = fields_[:MAX_FIELDS]
    if settings.mode == "off":
        return Dependencies(fields=fields_)
    cols = {p: [r.get(p, _MISSING) for r in rows] for p in fields_}
    codes = {p: _codes(cols[p]) for p in fields_}
    ignore = {parse_spec(x)[1] for x in settings.ignore}
    fds: list[Dependency] = []
    ignored: list[str] = []
    for a in fields_:
        if not _may_determine(cols[a]):
            continue
        for b in fields_:
            if a == b or not _functional(codes[a], codes[b]):
                continue
            d = _dependency(a, b, cols[a], cols[b])
            if d is None:
                continue
            if (a, b) in ignore:
                ignored.append(d.name)
            else:
                fds.append(d)
    for item in settings.add:
        kind, parts = parse_spec(item)
        if kind != "fd":
            continue
        a, b = parts
        for p in parts:
            if p not in cols:
                raise InputError(f"dependencies add {item!r}: no seed has a field {p} (fields: {', '.join(fields_)})")
        if not any(d.determinant == a and d.dependent == b for d in fds):
            fds.append(_forced(a, b, cols[a], cols[b]))
    deps = Dependencies(fds=fds, ignored=ignored, fields=fields_)
    for item in settings.ignore:
        for p in parse_spec(item)[1]:
            if p not in cols:
                raise InputError(
                    f"dependencies ignore {item!r}: no seed has a field {p} (fields: {', '.join(fields_)})"
                )
    deps.parents = _parents(fds, fields_, codes)
    deps.identifiers = _identifiers(fields_, cols, fds)
    found = _keys(fields_, cols, codes, deps)
    keys = [k for k in found if k not in ignore]
    ignored += [key_name(k) for k in found if k in ignore]
    for item in settings.add:
        kind, parts = parse_spec(item)
        if kind == "key" and parts not in keys:
            for p in parts:
                if p not in cols:
                    raise InputError(
                        f"dependencies add {item!r}: no seed has a field {p} (fields: {', '.join(fields_)})"
                    )
            keys.append(parts)
    deps.keys = keys
    for item in settings.ignore:
        kind, parts = parse_spec(item)
        name = key_name(parts) if kind == "key" else f"{parts[0]} -> {parts[1]}"
        if name not in deps.ignored:
            deps.notes.append(f"ignore {name}: the seeds show no such {'key' if kind == 'key' else 'dependency'}")
    return deps


class _Missing:
    pass


_MISSING = _Missing()


def _codes(col: list[Any]) -> np.ndarray:
    """An integer per distinct value (-1: missing), for a quick first test of every pair."""
    index: dict[str, int] = {}
    return np.array([-1 if v is _MISSING else index.setdefault(canonical_json(v), len(index)) for v in col])


def _functional(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether each value of ``a`` comes with one value of ``b`` (rows with both present)."""
    both = (a >= 0) & (b >= 0)
    if both.sum() < MIN_CONFIRMATIONS + MIN_GROUPS:
        return False
    a, b = a[both], b[both]
    pairs = np.unique(a.astype(np.int64) * (int(b.max()) + 1) + b)
    return len(pairs) == len(np.unique(a)) and len(np.unique(b)) >= 2


def _may_determine(col: list[Any]) -> bool:
    vals = [v for v in col if v is not _MISSING]
    return bool(vals) and not any(_is_float(v) for v in vals)


def _dependency(a: str, b: str, xa: list[Any], xb: list[Any]) -> Dependency | None:
    pairs = [(canonical_json(u), v) for u, v in zip(xa, xb) if u is not _MISSING and v is not _MISSING]
    if len(pairs) < MIN_CONFIRMATIONS + MIN_GROUPS:
        return None
    b_counts = Counter(canonical_json(v) for _, v in pairs)
    if len(b_counts) < 2:
        return None
    groups: dict[str, Counter] = defaultdict(Counter)
    values: dict[str, Any] = {}
    for ka, v in pairs:
        kb = canonical_json(v)
        groups[ka][kb] += 1
        values[kb] = v
    repeated = [c for c in groups.values() if sum(c.values()) >= 2]
    if len(repeated) < MIN_GROUPS or any(len(c) > 1 for c in repeated):
        return None
    if sum(sum(c.values()) - 1 for c in repeated) < MIN_CONFIRMATIONS:
        return None
    n = len(pairs)
    shares = [c / n for c in b_counts.values()]
    chance = sum(math.log(sum(p ** sum(c.values()) for p in shares)) for c in repeated)
    if chance > math.log(CHANCE):
        return None
    mapping = {ka: values[next(iter(c))] for ka, c in groups.items()}
    support = {ka: sum(c.values()) for ka, c in groups.items()}
    return Dependency(a, b, mapping, support)


def _forced(a: str, b: str, xa: list[Any], xb: list[Any]) -> Dependency:
    """A dependency the user added: each value of A maps to its commonest B in the seeds."""
    groups: dict[str, Counter] = defaultdict(Counter)
    values: dict[str, Any] = {}
    for u, v in zip(xa, xb):
        if u is _MISSING or v is _MISSING:
            continue
        groups[canonical_json(u)][canonical_json(v)] += 1
        values[canonical_json(v)] = v
    mapping = {ka: values[c.most_common(1)[0][0]] for ka, c in groups.items()}
    return Dependency(a, b, mapping, {ka: sum(c.values()) for ka, c in groups.items()}, source="added")


def _distinct(codes: np.ndarray) -> int:
    return len(np.unique(codes[codes >= 0]))


def _parents(fds: list[Dependency], fields_: list[str], codes: dict[str, np.ndarray]) -> dict[str, str]:
    """Each dependent's parent: a class's first field fixes the other members; a field outside the
    class is fixed by the determinant (a class's first field) with the fewest values."""
    fixes = defaultdict(set)
    for d in fds:
        fixes[d.determinant].add(d.dependent)
    first: dict[str, str] = {}
    for f in fields_:
        cls = [g for g in fields_ if g == f or (g in fixes[f] and f in fixes[g])]
        first[f] = cls[0]
    parents: dict[str, str] = {}
    for f in fields_:
        if first[f] != f:
            parents[f] = first[f]
            continue
        dets = [g for g in fields_ if f in fixes[g] and first[g] == g and first[g] != first[f]]
        if dets:
            parents[f] = min(dets, key=lambda g: (_distinct(codes[g]), fields_.index(g)))
    return parents


def _code_like(col: list[Any]) -> bool:
    vals = [v for v in col if v is not _MISSING and v is not None]
    if not vals:
        return False
    if all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
        return True
    return all(isinstance(v, str) and _CODE.match(v) for v in vals)


def _identifiers(fields_: list[str], cols: dict[str, list[Any]], fds: list[Dependency]) -> list[str]:
    tied = {d.determinant for d in fds} | {d.dependent for d in fds}
    out = []
    for f in fields_:
        if not _code_like(cols[f]):
            continue
        name = f.rsplit(".", 1)[-1]
        strings = any(isinstance(v, str) for v in cols[f] if v is not _MISSING)
        mutual = any(
            d.determinant == f and any(e.determinant == d.dependent and e.dependent == f for e in fds) for d in fds
        )
        if _ID_NAME.search(name) or (strings and f in tied and mutual):
            out.append(f)
    return out


def _keys(
    fields_: list[str], cols: dict[str, list[Any]], codes: dict[str, np.ndarray], deps: Dependencies
) -> list[tuple[str, ...]]:
    """Fields, or pairs of repeating fields, whose value no two seeds share (module docstring)."""
    n = len(next(iter(cols.values()), []))
    if n < MIN_KEY_SEEDS:
        return []
    own = [f for f in fields_ if f not in deps.parents]  # a dependent adds nothing its parent lacks
    keys: list[tuple[str, ...]] = []
    for f in own:
        col = cols[f]
        if any(v is _MISSING or v is None for v in col) or any(_is_float(v) for v in col):
            continue
        if _distinct(codes[f]) == n and _code_like(col) and (isinstance(col[0], str) or f in deps.identifiers):
            keys.append((f,))
    repeating = [
        f
        for f in own
        if not any(_is_float(v) for v in cols[f] if v is not _MISSING) and 2 <= _distinct(codes[f]) <= REPEATING * n
    ]
    for i, a in enumerate(repeating):
        for b in repeating[i + 1 :]:
            ca, cb = codes[a], codes[b]
            both = (ca >= 0) & (cb >= 0)
            m = int(both.sum())
            if m < MIN_KEY_SEEDS:
                continue
            pairs = np.unique(ca[both].astype(np.int64) * (int(cb.max()) + 1) + cb[both])
            if len(pairs) == m and m <= KEY_COVERAGE * _distinct(ca) * _distinct(cb):
                keys.append((a, b))
    return keys
