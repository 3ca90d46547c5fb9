"""The English a wish is written in: stopwords, units, plurals, accents, derived adjectives, and the
forms a value is written in (country and US-state names and adjectives).

These are facts about words, the same for every dataset; ``wording.py`` combines them with one
dataset's fields and seeds into a :class:`~aod_core.agents.wording.Lexicon`.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Any

from aod_core.canvas.slots import canonical

# Words that never name a field or a value (scikit-learn's English list minus the words that carry
# a wish: negations, quantities and comparisons are cues, see resolver/vocabulary.py).
CUE_WORDS = {
    "no",
    "not",
    "nor",
    "never",
    "none",
    "without",
    "only",
    "more",
    "most",
    "mostly",
    "less",
    "least",
    "few",
    "fewer",
    "many",
    "much",
    "above",
    "below",
    "under",
    "over",
    "between",
    "all",
    "every",
    "each",
    "except",
    "than",
    "from",
    "to",
    "after",
    "before",
    "since",
    "until",
    "up",
    "at",
    "around",
    "about",
    "approximately",
    "nearly",
    "almost",
    "exactly",
    "half",
    "with",
    "and",
    "or",
    "but",
    "per",
    "made",
    "top",
    "bottom",
    "full",
    "empty",
    "amount",
    "always",
    "least",
    "thin",
    "fill",
    "still",
    "last",
    "first",
    "latter",
    "former",
    "whole",
    "several",
    "some",
    "any",
    "rather",
    "very",
    "well",
    "beyond",
    "within",
    "throughout",
    "hundred",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "fifteen",
    "twenty",
    "forty",
    "fifty",
    "sixty",
    "first",
    "third",
}


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    extra = {
        "please",
        "make",
        "generate",
        "give",
        "want",
        "like",
        "should",
        "record",
        "records",
        "row",
        "rows",
        "sample",
        "samples",
        "entry",
        "entries",
        "data",
        "dataset",
        "example",
        "examples",
        "value",
        "values",
        "field",
        "fields",
        "lot",
        "lots",
        "let",
        "ones",
        "kind",
        "kinds",
        "type",
        "types",
        "also",
        "just",
        "really",
        "quite",
        "using",
        "use",
        "keep",
        "set",
        "output",
        "outputs",
        "new",
        "create",
        "produce",
        "s",
    }
    return frozenset((set(ENGLISH_STOP_WORDS) - CUE_WORDS) | extra)


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
_STATE_ADJECTIVES = {
    "New York": "new yorker",
    "Michigan": "michigander",
    "Ohio": "ohioan",
    "Oregon": "oregonian",
    "Washington": "washingtonian",
    "Utah": "utahn",
    "Illinois": "illinoisan",
    "Hawaii": "hawaiian",
    "Florida": "floridian",
    "Colorado": "coloradan",
    "Connecticut": "connecticuter",
    "Maine": "mainer",
    "Idaho": "idahoan",
    "Kentucky": "kentuckian",
    "Mississippi": "mississippian",
    "Missouri": "missourian",
    "Tennessee": "tennessean",
    "Vermont": "vermonter",
    "Wisconsin": "wisconsinite",
    "Wyoming": "wyomingite",
    "New Mexico": "new mexican",
    "New Jersey": "new jerseyan",
    "New Hampshire": "new hampshirite",
    "Maryland": "marylander",
    "Massachusetts": "massachusettsan",
    "Rhode Island": "rhode islander",
    "Delaware": "delawarean",
    "Arkansas": "arkansan",
    "Kansas": "kansan",
}

# Unit words the compiler reads after a number or in a field's name or description, each with the
# unit name pint knows it by. A list rather than pint's whole registry: pint also parses "a" (year),
# "in" (inch), "mass" (milliarcsecond), words that in an instruction are never units.
UNITS: dict[str, str] = {
    "mm": "millimeter",
    "millimetre": "millimeter",
    "millimeter": "millimeter",
    "cm": "centimeter",
    "centimetre": "centimeter",
    "centimeter": "centimeter",
    "m": "meter",
    "metre": "meter",
    "meter": "meter",
    "km": "kilometer",
    "kilometre": "kilometer",
    "kilometer": "kilometer",
    "in": "inch",
    "inch": "inch",
    "ft": "foot",
    "foot": "foot",
    "feet": "foot",
    "mile": "mile",
    "mi": "mile",
    "g": "gram",
    "gram": "gram",
    "gr": "gram",
    "kg": "kilogram",
    "kilo": "kilogram",
    "kilogram": "kilogram",
    "lb": "pound",
    "lbs": "pound",
    "pound": "pound",
    "oz": "ounce",
    "ounce": "ounce",
    "ton": "ton",
    "tonne": "tonne",
    "°c": "degree_Celsius",
    "c": "degree_Celsius",
    "degc": "degree_Celsius",
    "celsius": "degree_Celsius",
    "degrees celsius": "degree_Celsius",
    "degree celsius": "degree_Celsius",
    "°f": "degree_Fahrenheit",
    "f": "degree_Fahrenheit",
    "degf": "degree_Fahrenheit",
    "fahrenheit": "degree_Fahrenheit",
    "degrees fahrenheit": "degree_Fahrenheit",
    "degree fahrenheit": "degree_Fahrenheit",
    "m/s": "meter / second",
    "metres per second": "meter / second",
    "meters per second": "meter / second",
    "metre per second": "meter / second",
    "mph": "mile / hour",
    "miles per hour": "mile / hour",
    "km/h": "kilometer / hour",
    "kph": "kilometer / hour",
    "kmh": "kilometer / hour",
    "knot": "knot",
    "kn": "knot",
    "s": "second",
    "sec": "second",
    "second": "second",
    "min": "minute",
    "minute": "minute",
    "h": "hour",
    "hr": "hour",
    "hour": "hour",
    "day": "day",
    "year": "year",
    "yr": "year",
    "hp": "horsepower",
    "horsepower": "horsepower",
    "bhp": "horsepower",
    "kw": "kilowatt",
    "kilowatt": "kilowatt",
    "mpg": "mile / gallon",
    "miles per gallon": "mile / gallon",
    "mile per gallon": "mile / gallon",
    "us miles per gallon": "mile / gallon",
    "cubic inch": "inch ** 3",
    "cubic inches": "inch ** 3",
    "cu in": "inch ** 3",
    "ci": "inch ** 3",
    "cid": "inch ** 3",
    "cc": "centimeter ** 3",
    "cm3": "centimeter ** 3",
    "l": "liter",
    "litre": "liter",
    "liter": "liter",
}
# Plural spellings of the unit words above (pounds, grams, metres ...), read the same way.
for _w in list(UNITS):
    if _w.isalpha() and len(_w) > 2 and not _w.endswith("s"):
        UNITS.setdefault(_w + "s", UNITS[_w])
UNITS.setdefault("inches", "inch")
# Letters that are units only right after a number ("4 m", "20 c"), never in a field's name.
NUMBER_ONLY_UNITS = {"m", "c", "f", "s", "h", "in", "l", "g", "mi", "kn", "min", "day", "days", "year", "years"}


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
def us_states() -> dict[str, str]:
    """Two-letter code -> state or territory name (pycountry's ISO 3166-2 list)."""
    import pycountry

    return {s.code.split("-", 1)[1]: s.name for s in pycountry.subdivisions.get(country_code="US")}


def _state_forms(code: str) -> set[str]:
    name = us_states().get(code)
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
