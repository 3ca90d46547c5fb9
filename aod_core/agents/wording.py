"""How people name a dataset's fields and values: the vocabulary the instruction compiler reads with.

A :class:`Lexicon` is built from the scaffold (which fields can be edited and how), the resolved
schema (names, descriptions, units) and the seeds (which values occur, how often, and the numeric
statistics a relative wish such as "heavier" needs). It answers three questions for the resolver:

* **which field** a word names: the words of the field's name (``body_mass_g`` -> body, mass), the
  words of its description that no other field uses and that do not name the dataset itself, and
  the field's unit (``_g`` or "in whole grams" -> gram, a mass);
* **which value** a phrase names: a schema enum member, an array length, or a string the seeds
  repeat, in the forms people write it: any case, plural (``Gentoos``), the ``-y`` / ``-ing``
  adjective of a word value (``sunny`` -> sun, ``raining`` -> rain), accents dropped
  (``Adélie``), a country's adjective or short names (``Japanese`` -> Japan, ``American``, ``US``
  -> USA; the table is :data:`COUNTRY_FORMS`), a US state's name or adjective for two-letter
  state codes (``Texas``, ``Californian`` -> TX, CA; names from ``pycountry``);
* **what a number with a unit is** in a field's own unit (``4.5 kg`` -> 4500 g, ``75 °F`` ->
  23.9 °C), through ``pint``.

Nothing here guesses: a word that names no field or value is simply not found, and the resolver
reports it.
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass, field
from typing import Any

from aod_core.agents.word_forms import (
    CUE_WORDS,
    NUMBER_ONLY_UNITS,
    UNITS,
    dimension,
    fold,
    name_words,
    singular,
    stopwords,
    us_states,
    value_forms,
)
from aod_core.canvas.scaffold import Scaffold
from aod_core.canvas.slots import Slot, canonical


@dataclass(eq=False)  # identity: fields are keys of dicts in the resolver
class FieldWords:
    """One editable field of the scaffold as the compiler reads it."""

    key: str  # the scaffold key a prompt path names: $.island, $.birds[*].species, $.birds.length
    kind: str  # enum | integer | number | string | date | count | present
    label: str  # how messages name it (the key without "$.")
    strong: set[str] = field(default_factory=set)  # words of the name (folded, singular)
    weak: set[str] = field(default_factory=set)  # description words no other field has
    unit: str | None = None  # pint unit name
    dim: str | None = None  # pint dimensionality of the unit
    nullable: bool = False
    choices: list[Any] = field(default_factory=list)  # enum / count / present choices (no null)
    forms: dict[str, Any] = field(default_factory=dict)  # folded form -> value
    shares: dict[str, float] = field(default_factory=dict)  # canonical value -> share among the seeds
    lo: float | None = None  # slot bounds (numbers)
    hi: float | None = None
    decimals: int = 0
    seed_values: list[float] = field(default_factory=list)  # numeric seed values (no nulls)
    description: str = ""

    @property
    def numeric(self) -> bool:
        return self.kind in ("integer", "number")

    @property
    def choice(self) -> bool:
        return self.kind in ("enum", "count", "present")

    @property
    def median(self) -> float | None:
        return statistics.median(self.seed_values) if self.seed_values else None

    @property
    def seed_range(self) -> tuple[float, float] | None:
        return (min(self.seed_values), max(self.seed_values)) if self.seed_values else None

    def grid(self) -> float:
        return 1.0 if self.kind == "integer" or self.decimals == 0 else 10.0**-self.decimals

    def snap(self, x: float, how: str) -> float:
        """``x`` on the field's grid: rounded ``up``, ``down`` or to the ``nearest`` step."""
        g = self.grid()
        f = {"up": math.ceil, "down": math.floor}.get(how, round)
        v = f(round(x / g, 9)) * g
        return float(int(v)) if g >= 1 else round(v, self.decimals)

    def value_text(self, value: Any) -> str:
        return value if isinstance(value, str) else canonical(value)


@dataclass
class Lexicon:
    fields: list[FieldWords]
    dataset_words: set[str]  # words that name the records themselves (penguin, car, day)

    def by_key(self, key: str) -> FieldWords | None:
        return next((f for f in self.fields if f.key == key), None)

    @classmethod
    def build(cls, scaffold: Scaffold, schema: dict, seeds: list[Any]) -> Lexicon:
        nodes = _schema_nodes(schema)
        data_words = set()
        for text in (schema.get("title"), schema.get("description")):
            if isinstance(text, str):
                data_words |= {singular(w) for w in re.findall(r"[a-z]+", fold(text))} - stopwords()
        flat = _seed_values(seeds)
        fields: list[FieldWords] = []
        seen: set[str] = set()
        for s in scaffold.slots:
            if s.key in seen:
                continue
            seen.add(s.key)
            fields.append(_field(s, nodes, flat, len(seeds)))
        # Nouns of array items name the array's length ("3 birds"): birds -> bird.
        desc_counts: dict[str, int] = {}
        for f in fields:
            for w in f.weak:
                desc_counts[w] = desc_counts.get(w, 0) + 1
        for f in fields:
            f.weak = {w for w in f.weak if desc_counts[w] == 1 and w not in data_words and w not in f.strong}
        data_words -= {w for f in fields for w in f.strong}
        return cls(fields, data_words)


def _schema_nodes(schema: dict) -> dict[str, dict]:
    """Scaffold key -> subschema, for every property and items schema (keys as the scaffold spells them)."""
    out: dict[str, dict] = {}

    def walk(node: Any, key: str) -> None:
        if not isinstance(node, dict):
            return
        out[key] = node
        for name, sub in (node.get("properties") or {}).items():
            walk(sub, f"{key}.{name}" if name.isidentifier() else f"{key}[{canonical(name)}]")
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{key}[*]")

    walk(schema, "$")
    return out


def _seed_values(seeds: list[Any]) -> dict[str, list[Any]]:
    """Scaffold key -> every seed value under it (array items pooled, lengths under ``.length``,
    presence of each key under ``?``)."""
    out: dict[str, list[Any]] = {}

    def walk(v: Any, key: str) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                sub = f"{key}.{k}" if k.isidentifier() else f"{key}[{canonical(k)}]"
                walk(x, sub)
        elif isinstance(v, list):
            out.setdefault(f"{key}.length", []).append(len(v))
            for x in v:
                walk(x, f"{key}[*]")
        else:
            out.setdefault(key, []).append(v)

    for r in seeds:
        walk(r, "$")
    return out


def _unit_in(text: str) -> str | None:
    """The first unit phrase in a description ("in whole grams" -> gram), longest phrase first."""
    words = re.findall(r"[a-z°/0-9]+", fold(text))
    for i in range(len(words)):
        for n in (4, 3, 2, 1):
            phrase = " ".join(words[i : i + n])
            if len(words[i : i + n]) == n and phrase in UNITS and phrase not in NUMBER_ONLY_UNITS:
                return UNITS[phrase]
    return None


def _field(s: Slot, nodes: dict[str, dict], flat: dict[str, list[Any]], n_seeds: int) -> FieldWords:
    if s.role == "count":
        base = s.key[: -len(".length")]
        node = nodes.get(base, {})
        name = base.rsplit(".", 1)[-1].replace("[*]", "")
        strong = {singular(w) for w in name_words(name)} | set(name_words(name))
        f = FieldWords(
            s.key,
            "count",
            f"number of {name}",
            strong=strong,
            choices=list(s.choices),
            description=str(node.get("description") or ""),
        )
        f.forms = {canonical(c): c for c in s.choices}
        vals = flat.get(s.key, [])
        f.shares = _shares(vals, s.choices)
        return f
    if s.role == "present":
        base = s.key[:-1]
        node = nodes.get(base, {})
        name = base.rsplit(".", 1)[-1]
        f = FieldWords(
            s.key,
            "present",
            f"{name} present",
            strong=set(name_words(name)) | {singular(w) for w in name_words(name)},
            choices=[True, False],
            description=str(node.get("description") or ""),
        )
        f.forms = {}
        return f
    node = nodes.get(s.key, {})
    name = s.key.rsplit(".", 1)[-1].strip('[]"')
    words = name_words(name)
    unit = None
    kept = []
    for i, w in enumerate(words):
        if i == len(words) - 1 and w in UNITS and w not in NUMBER_ONLY_UNITS - {"g"} and len(words) > 1:
            unit = UNITS[w]  # body_mass_g -> gram; "g" alone is a unit only as a suffix
        else:
            kept.append(w)
    if unit is None and fold(name.replace("_", " ")) in UNITS:
        unit = UNITS[fold(name.replace("_", " "))]  # horsepower, miles_per_gallon
    desc = str(node.get("description") or "")
    if unit is None and s.vtype in ("integer", "number"):
        unit = _unit_in(desc)
    if "year" in words or "date" in words:
        unit = None  # a point in time, not a duration: "after 1975" is a year, not 1975 years
    strong = {singular(w) for w in kept} | set(kept)
    weak = {singular(w) for w in re.findall(r"[a-z]+", fold(desc))} - stopwords() - CUE_WORDS
    weak = {w for w in weak if len(w) > 2 and w not in UNITS}
    kind = "enum" if s.role == "enum" else s.vtype
    vals = flat.get(s.key, [])
    f = FieldWords(
        s.key,
        kind,
        s.key[2:] if s.key.startswith("$.") else s.key,
        strong=strong,
        weak=weak,
        unit=unit,
        dim=dimension(unit) if unit else None,
        description=desc,
        nullable=s.nullable or (s.kind == "choice" and None in s.choices),
        lo=s.lo,
        hi=s.hi,
        decimals=s.decimals,
    )
    states = "state" in strong or "state" in weak
    if s.role == "enum":
        f.choices = [c for c in s.choices if c is not None]
        f.shares = _shares(vals, s.choices)
    elif s.vtype == "string":
        # A string the seeds repeat is a value people name ("TX", "Chicago"); a one-off is not.
        counts: dict[str, int] = {}
        for v in vals:
            if isinstance(v, str):
                counts[v] = counts.get(v, 0) + 1
        f.choices = [v for v, k in counts.items() if k >= 2]
        f.shares = {canonical(v): k / max(1, len(vals)) for v, k in counts.items() if k >= 2}
    elif f.numeric:
        f.seed_values = [float(v) for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if s.role == "enum" or s.vtype == "string":
        codes = [c for c in f.choices if isinstance(c, str)]
        use_states = states and codes and sum(c in us_states() for c in codes) >= 0.8 * len(codes)
        if use_states and s.vtype == "string":
            f.choices += [c for c in sorted(us_states()) if c not in f.choices]  # every state can be named
        for c in f.choices:
            for form in value_forms(c, states=bool(use_states)):
                f.forms.setdefault(form, c)
    return f


def _shares(vals: list[Any], choices: list[Any]) -> dict[str, float]:
    if not vals:
        return {}
    counts: dict[str, int] = {}
    for v in vals:
        counts[canonical(v)] = counts.get(canonical(v), 0) + 1
    return {canonical(c): counts.get(canonical(c), 0) / len(vals) for c in choices}
