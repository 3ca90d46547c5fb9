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
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from aod_core.canvas.scaffold import Scaffold, Slot, canonical

# Words that never name a field or a value (scikit-learn's English list minus the words that carry
# a wish: negations, quantities and comparisons are cues, see resolver.py).
_CUE_WORDS = {"no", "not", "nor", "never", "none", "without", "only", "more", "most", "mostly", "less", "least",
              "few", "fewer", "many", "much", "above", "below", "under", "over", "between", "all", "every", "each",
              "except", "than", "from", "to", "after", "before", "since", "until", "up", "at", "around", "about",
              "approximately", "nearly", "almost", "exactly", "half", "with", "and", "or", "but", "per", "made",
              "top", "bottom", "full", "empty", "amount", "always", "least", "thin", "fill", "still", "last",
              "first", "latter", "former", "whole", "several", "some", "any", "rather", "very", "well", "beyond",
              "within", "throughout", "hundred", "one", "two", "three", "four", "five", "six", "eight", "nine",
              "ten", "eleven", "twelve", "fifteen", "twenty", "forty", "fifty", "sixty", "first", "third"}


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    extra = {"please", "make", "generate", "give", "want", "like", "should", "record", "records", "row", "rows",
             "sample", "samples", "entry", "entries", "data", "dataset", "example", "examples", "value",
             "values", "field", "fields", "lot", "lots", "let", "ones", "kind", "kinds", "type", "types",
             "also", "just", "really", "quite", "using", "use", "keep", "set", "output", "outputs", "new",
             "create", "produce", "s"}
    return frozenset((set(ENGLISH_STOP_WORDS) - _CUE_WORDS) | extra)


# A country's adjective and short names, for enum values that name a country or a region. Values
# that name a region get the adjective of the region only: "German" is not "Europe" (the compiler
# says so instead of widening the wish).
COUNTRY_FORMS: dict[str, tuple[str, ...]] = {
    "usa": ("us", "u.s.", "u.s.a.", "america", "american", "americans", "united states"),
    "us": ("usa", "u.s.", "u.s.a.", "america", "american", "americans", "united states"),
    "united states": ("usa", "us", "u.s.", "america", "american"),
    "japan": ("japanese",),
    "europe": ("european", "europeans"),
    "germany": ("german",),
    "france": ("french",),
    "italy": ("italian",),
    "sweden": ("swedish",),
    "united kingdom": ("uk", "british", "britain", "english"),
    "uk": ("united kingdom", "british", "britain", "english"),
    "spain": ("spanish",),
    "china": ("chinese",),
    "korea": ("korean",),
    "canada": ("canadian",),
    "mexico": ("mexican",),
    "asia": ("asian",),
    "africa": ("african",),
}

# US states whose adjective is not the name + "n" (Alaska -> Alaskan) or the name less "s" + "n"
# (Texas -> Texan).
_STATE_ADJECTIVES = {"New York": "new yorker", "Michigan": "michigander", "Ohio": "ohioan", "Oregon": "oregonian",
                     "Washington": "washingtonian", "Utah": "utahn", "Illinois": "illinoisan", "Hawaii": "hawaiian",
                     "Florida": "floridian", "Colorado": "coloradan", "Connecticut": "connecticuter",
                     "Maine": "mainer", "Idaho": "idahoan", "Kentucky": "kentuckian", "Mississippi": "mississippian",
                     "Missouri": "missourian", "Tennessee": "tennessean", "Vermont": "vermonter",
                     "Wisconsin": "wisconsinite", "Wyoming": "wyomingite", "New Mexico": "new mexican",
                     "New Jersey": "new jerseyan", "New Hampshire": "new hampshirite", "Maryland": "marylander",
                     "Massachusetts": "massachusettsan", "Rhode Island": "rhode islander", "Delaware": "delawarean",
                     "Arkansas": "arkansan", "Kansas": "kansan"}

# Unit words the compiler reads after a number or in a field's name or description, each with the
# unit name pint knows it by. A list rather than pint's whole registry: pint also parses "a" (year),
# "in" (inch), "mass" (milliarcsecond), words that in an instruction are never units.
UNITS: dict[str, str] = {
    "mm": "millimeter", "millimetre": "millimeter", "millimeter": "millimeter", "cm": "centimeter",
    "centimetre": "centimeter", "centimeter": "centimeter", "m": "meter", "metre": "meter", "meter": "meter",
    "km": "kilometer", "kilometre": "kilometer", "kilometer": "kilometer", "in": "inch", "inch": "inch",
    "ft": "foot", "foot": "foot", "feet": "foot", "mile": "mile", "mi": "mile",
    "g": "gram", "gram": "gram", "gr": "gram", "kg": "kilogram", "kilo": "kilogram", "kilogram": "kilogram",
    "lb": "pound", "lbs": "pound", "pound": "pound", "oz": "ounce", "ounce": "ounce", "ton": "ton", "tonne": "tonne",
    "°c": "degree_Celsius", "c": "degree_Celsius", "degc": "degree_Celsius", "celsius": "degree_Celsius",
    "degrees celsius": "degree_Celsius", "degree celsius": "degree_Celsius", "°f": "degree_Fahrenheit",
    "f": "degree_Fahrenheit", "degf": "degree_Fahrenheit", "fahrenheit": "degree_Fahrenheit",
    "degrees fahrenheit": "degree_Fahrenheit", "degree fahrenheit": "degree_Fahrenheit",
    "m/s": "meter / second", "metres per second": "meter / second", "meters per second": "meter / second",
    "metre per second": "meter / second", "mph": "mile / hour", "miles per hour": "mile / hour",
    "km/h": "kilometer / hour", "kph": "kilometer / hour", "kmh": "kilometer / hour", "knot": "knot", "kn": "knot",
    "s": "second", "sec": "second", "second": "second", "min": "minute", "minute": "minute", "h": "hour",
    "hr": "hour", "hour": "hour", "day": "day", "year": "year", "yr": "year",
    "hp": "horsepower", "horsepower": "horsepower", "bhp": "horsepower", "kw": "kilowatt", "kilowatt": "kilowatt",
    "mpg": "mile / gallon", "miles per gallon": "mile / gallon", "mile per gallon": "mile / gallon",
    "us miles per gallon": "mile / gallon",
    "cubic inch": "inch ** 3", "cubic inches": "inch ** 3", "cu in": "inch ** 3", "ci": "inch ** 3",
    "cid": "inch ** 3", "cc": "centimeter ** 3", "cm3": "centimeter ** 3", "l": "liter", "litre": "liter",
    "liter": "liter",
}
# Plural spellings of the unit words above (pounds, grams, metres ...), read the same way.
for _w in list(UNITS):
    if _w.isalpha() and len(_w) > 2 and not _w.endswith("s"):
        UNITS.setdefault(_w + "s", UNITS[_w])
UNITS.setdefault("inches", "inch")
# Letters that are units only right after a number ("4 m", "20 c"), never in a field's name.
_NUMBER_ONLY_UNITS = {"m", "c", "f", "s", "h", "in", "l", "g", "mi", "kn", "min", "day", "days", "year", "years"}


@lru_cache(maxsize=1)
def units():
    """One pint registry per process (loading it takes about a second)."""
    import pint

    return pint.UnitRegistry()


def convert(value: float, from_unit: str, to_unit: str) -> float | None:
    """``value`` in ``from_unit`` expressed in ``to_unit`` (pint names); None when the two measure
    different things (a mass is not a length)."""
    import pint

    ureg = units()
    try:
        return float(ureg.Quantity(value, from_unit).to(to_unit).magnitude)
    except (pint.errors.DimensionalityError, pint.errors.OffsetUnitCalculusError):
        return None


def dimension(unit: str) -> str:
    """What a unit measures, as pint writes it (``[mass]``, ``[length] / [time]``)."""
    return str(units().parse_units(unit).dimensionality)


def fold(text: str) -> str:
    """Lower case, accents dropped (Adélie -> adelie), spaces squeezed."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return " ".join(text.lower().split())


@lru_cache(maxsize=1)
def _inflect():
    import inflect

    return inflect.engine()


def singular(word: str) -> str:
    """The singular of an English noun (penguins -> penguin), the word itself when it is not plural."""
    if len(word) < 4 or not word.isalpha():
        return word
    s = _inflect().singular_noun(word)
    return s if isinstance(s, str) and s else word


def plural(word: str) -> str:
    return _inflect().plural_noun(word) if word.isalpha() else word


def name_words(name: str) -> list[str]:
    """The words of a field name: ``body_mass_g`` -> [body, mass, g]; ``tempMax`` -> [temp, max]."""
    name = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    return [fold(w) for w in re.split(r"[^A-Za-z0-9]+", name) if w]


def _derived(word: str) -> set[str]:
    """Adjectives and verb forms of a one-word value: sun -> sunny, fog -> foggy, drizzle -> drizzly,
    rain -> rainy / raining, snow -> snowy / snowing."""
    if not word.isalpha() or len(word) < 3:
        return set()
    out = {word + "y", word + "ing", word + "s"}
    if word.endswith("e"):
        out |= {word[:-1] + "y", word[:-1] + "ing"}
    if len(word) <= 4 and word[-1] not in "aeiouwy" and word[-2] in "aeiou":
        out |= {word + word[-1] + "y", word + word[-1] + "ing"}
    return out


@lru_cache(maxsize=1)
def _us_states() -> dict[str, str]:
    """Two-letter code -> state or territory name (pycountry's ISO 3166-2 list)."""
    import pycountry

    return {s.code.split("-", 1)[1]: s.name for s in pycountry.subdivisions.get(country_code="US")}


def _state_forms(code: str) -> set[str]:
    name = _us_states().get(code)
    if name is None:
        return set()
    out = {fold(name)}
    adj = _STATE_ADJECTIVES.get(name)
    if adj is None:
        low = fold(name)
        adj = low + "n" if low.endswith("a") else low[:-1] + "n" if low.endswith("as") else None
    if adj:
        out |= {adj, adj + "s"}
    return out


def value_forms(value: Any, *, states: bool = False) -> set[str]:
    """Every folded way a value may be written in an instruction (see the module docstring)."""
    if value is None:
        return set()
    if isinstance(value, bool):
        return {"true", "yes"} if value else {"false"}
    if isinstance(value, (int, float)):
        return {canonical(value)}
    text = fold(str(value))
    if not text:
        return set()
    out = {text}
    words = text.split()
    if words and words[-1].isalpha() and len(words[-1]) > 2:
        out.add(" ".join(words[:-1] + [plural(words[-1])]))
    if len(words) == 1:
        out |= _derived(words[0])
    out |= set(COUNTRY_FORMS.get(text, ()))
    if states:
        out |= _state_forms(str(value))
    return out


# ---- the lexicon ---------------------------------------------------------------------------------


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
        return 1.0 if self.kind == "integer" or self.decimals == 0 else 10.0 ** -self.decimals

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
            if len(words[i : i + n]) == n and phrase in UNITS and phrase not in _NUMBER_ONLY_UNITS:
                return UNITS[phrase]
    return None


def _field(s: Slot, nodes: dict[str, dict], flat: dict[str, list[Any]], n_seeds: int) -> FieldWords:
    if s.role == "count":
        base = s.key[: -len(".length")]
        node = nodes.get(base, {})
        name = base.rsplit(".", 1)[-1].replace("[*]", "")
        strong = {singular(w) for w in name_words(name)} | set(name_words(name))
        f = FieldWords(s.key, "count", f"number of {name}", strong=strong, choices=list(s.choices),
                       description=str(node.get("description") or ""))
        f.forms = {canonical(c): c for c in s.choices}
        vals = flat.get(s.key, [])
        f.shares = _shares(vals, s.choices)
        return f
    if s.role == "present":
        base = s.key[:-1]
        node = nodes.get(base, {})
        name = base.rsplit(".", 1)[-1]
        f = FieldWords(s.key, "present", f"{name} present", strong=set(name_words(name)) | {singular(w) for w in name_words(name)},
                       choices=[True, False], description=str(node.get("description") or ""))
        f.forms = {}
        return f
    node = nodes.get(s.key, {})
    name = s.key.rsplit(".", 1)[-1].strip("[]\"")
    words = name_words(name)
    unit = None
    kept = []
    for i, w in enumerate(words):
        if i == len(words) - 1 and w in UNITS and w not in _NUMBER_ONLY_UNITS - {"g"} and len(words) > 1:
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
    weak = {singular(w) for w in re.findall(r"[a-z]+", fold(desc))} - stopwords() - _CUE_WORDS
    weak = {w for w in weak if len(w) > 2 and w not in UNITS}
    kind = "enum" if s.role == "enum" else s.vtype
    vals = flat.get(s.key, [])
    f = FieldWords(s.key, kind, s.key[2:] if s.key.startswith("$.") else s.key, strong=strong, weak=weak,
                   unit=unit, dim=dimension(unit) if unit else None, description=desc,
                   nullable=s.nullable or (s.kind == "choice" and None in s.choices),
                   lo=s.lo, hi=s.hi, decimals=s.decimals)
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
        use_states = states and codes and sum(c in _us_states() for c in codes) >= 0.8 * len(codes)
        if use_states and s.vtype == "string":
            f.choices += [c for c in sorted(_us_states()) if c not in f.choices]  # every state can be named
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
