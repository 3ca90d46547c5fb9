"""The resolver's vocabulary: cue words, comparators, size and time adjectives, number words.

Words here carry a wish ("no", "mostly", "at least", "heavier"); the words that name a field or a
value come from the scaffold's lexicon (``aod_core/agents/wording.py``) instead.
"""

from __future__ import annotations

MOSTLY = 0.7  # the share "mostly X" is calibrated to (measured on samples, see compiler.calibrate)
AROUND = 0.05  # "around 4 kg": 4 kg ± 5%
VARIED, TYPICAL = 1.3, 0.5  # sampling temperatures for "more varied" / "more typical"

NEGATE = {"no", "not", "never", "without", "except", "excluding", "exclude", "avoid", "none", "nothing", "nor", "non"}
ONLY = {"only", "just", "exclusively", "solely", "all", "every", "purely", "entirely"}
# fmt: off
MOST = {
    "mostly", "mainly", "largely", "predominantly", "primarily", "majority", "most", "chiefly", "generally",
    "usually", "typically",
}
# fmt: on
MORE = {"more", "extra", "additional", "increase", "increased", "plenty"}
FEWER = {"fewer", "less", "reduce", "reduced", "rarely", "rare", "seldom", "few"}
# fmt: off
NULL_WORDS = {
    "null", "nulls", "missing", "unknown", "blank", "blanks", "empty", "na", "n/a", "undetermined", "unrecorded",
    "unmeasured", "gap", "gaps", "none",
}
# fmt: on
KNOWN = {"known", "recorded", "measured", "determined", "complete", "completed", "filled", "present", "sexed"}
CLASS_NUMERIC = {"measurement", "measurements", "number", "numbers", "numeric", "figure", "figures"}
CLASS_ALL = {"everything", "anything", "field", "fields", "value", "values", "column", "columns"}
# fmt: off
VARIED_WORDS = {
    "varied", "diverse", "diversity", "variety", "variation", "unusual", "creative", "surprising", "random",
    "randomness", "different", "novel", "original",
}
# fmt: on
# fmt: off
TYPICAL_WORDS = {
    "typical", "conservative", "safe", "safer", "predictable", "ordinary", "consistent", "standard", "normal",
    "usual", "common",
}
# fmt: on
# fmt: off
REALISM_WORDS = {
    "realistic", "plausible", "believable", "sensible", "real", "reasonable", "credible", "valid", "accurate",
    "correct", "good", "quality", "nice", "sane",
}
# fmt: on

# Comparators before a number: (side, inclusive). "from A to B" and "between A and B" are ranges.
# fmt: off
LOWER = {
    "above": False, "over": False, ">": False, "after": False, "exceeding": False, "exceed": False, "beyond": False,
    "past": False, "min": True, "minimum": True, ">=": True, "≥": True, "since": True, "from": True,
}
# fmt: on
# fmt: off
UPPER = {
    "below": False, "under": False, "<": False, "before": False, "max": True, "maximum": True, "<=": True,
    "≤": True, "until": True, "till": True, "upto": True,
}
# fmt: on
# fmt: off
TWO_WORD = {
    ("more", "than"): ("lo", False), ("greater", "than"): ("lo", False), ("higher", "than"): ("lo", False),
    ("larger", "than"): ("lo", False), ("bigger", "than"): ("lo", False), ("later", "than"): ("lo", False),
    ("newer", "than"): ("lo", False), ("heavier", "than"): ("lo", False), ("longer", "than"): ("lo", False),
    ("warmer", "than"): ("lo", False), ("hotter", "than"): ("lo", False), ("faster", "than"): ("lo", False),
    ("at", "least"): ("lo", True), ("no", "less"): ("lo", True), ("not", "less"): ("lo", True),
    ("less", "than"): ("hi", False), ("fewer", "than"): ("hi", False), ("lower", "than"): ("hi", False),
    ("smaller", "than"): ("hi", False), ("earlier", "than"): ("hi", False), ("older", "than"): ("hi", False),
    ("lighter", "than"): ("hi", False), ("shorter", "than"): ("hi", False), ("colder", "than"): ("hi", False),
    ("cooler", "than"): ("hi", False), ("slower", "than"): ("hi", False), ("at", "most"): ("hi", True),
    ("up", "to"): ("hi", True), ("no", "more"): ("hi", True), ("not", "more"): ("hi", True),
}
# fmt: on
AROUND_WORDS = {"around", "about", "approximately", "approx", "roughly", "near", "nearly", "circa", "~"}
EXACT_WORDS = {"exactly", "precisely", "=", "of", "equal", "equals", "is", "are"}

# Adjectives of size and time: word -> (direction, what selects the field, superlative).
# The selector is a pint dimension, "time" (a year or date field), a field-name word, or None
# (the clause must name the field: "bigger flippers", "higher horsepower").
# fmt: off
MASS, LENGTH, TEMP, SPEED, POWER = (
    "[mass]", "[length]", "[temperature]", "[length] / [time]", "[length] ** 2 * [mass] / [time] ** 3",
)
# fmt: on
# fmt: off
ADJECTIVES: dict[str, tuple[int, str | None]] = {
    "heavy": (1, MASS), "heavier": (1, MASS), "heaviest": (1, MASS), "light": (-1, MASS), "lighter": (-1, MASS),
    "lightest": (-1, MASS), "chunky": (1, MASS), "fat": (1, MASS), "fatter": (1, MASS), "slim": (-1, MASS),
    "long": (1, LENGTH), "longer": (1, LENGTH), "longest": (1, LENGTH), "short": (-1, LENGTH),
    "shorter": (-1, LENGTH), "shortest": (-1, LENGTH), "tall": (1, LENGTH), "taller": (1, LENGTH),
    "warm": (1, TEMP), "warmer": (1, TEMP), "warmest": (1, TEMP), "hot": (1, TEMP), "hotter": (1, TEMP),
    "hottest": (1, TEMP), "cold": (-1, TEMP), "colder": (-1, TEMP), "coldest": (-1, TEMP), "cool": (-1, TEMP),
    "cooler": (-1, TEMP), "coolest": (-1, TEMP), "chilly": (-1, TEMP), "freezing": (-1, TEMP),
    "powerful": (1, POWER), "weak": (-1, POWER), "weaker": (-1, POWER), "recent": (1, "time"), "newer": (1, "time"),
    "newest": (1, "time"), "modern": (1, "time"), "later": (1, "time"), "latest": (1, "time"),
    "older": (-1, "time"), "oldest": (-1, "time"), "early": (-1, "time"), "earlier": (-1, "time"),
    "earliest": (-1, "time"), "windy": (1, "wind"), "windier": (1, "wind"), "breezy": (1, "wind"),
    "gusty": (1, "wind"), "calm": (-1, "wind"), "calmer": (-1, "wind"), "still": (-1, "wind"),
    "wet": (1, "precipitation"), "wetter": (1, "precipitation"), "dry": (-1, "precipitation"),
    "drier": (-1, "precipitation"), "dryer": (-1, "precipitation"), "deep": (1, "depth"), "deeper": (1, "depth"),
    "deepest": (1, "depth"), "shallow": (-1, "depth"), "shallower": (-1, "depth"), "big": (1, None),
    "bigger": (1, None), "biggest": (1, None), "large": (1, None), "larger": (1, None), "largest": (1, None),
    "huge": (1, None), "small": (-1, None), "smaller": (-1, None), "smallest": (-1, None), "tiny": (-1, None),
    "little": (-1, None), "high": (1, None), "higher": (1, None), "highest": (1, None), "low": (-1, None),
    "lower": (-1, None), "lowest": (-1, None), "greater": (1, None), "efficient": (1, None),
    "economical": (1, None), "more": (1, None), "less": (-1, None), "fewer": (-1, None), "increase": (1, None),
    "reduce": (-1, None),
}
# fmt: on
SUPERLATIVE = {w for w in ADJECTIVES if w.endswith("est") and w not in ("modern",)} | {"huge", "tiny", "freezing"}

# fmt: off
NUMBER_WORDS = {
    "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "eleven": 11, "twelve": 12, "one": 1, "single": 1, "pair": 2, "pairs": 2, "couple": 2, "couples": 2, "trio": 3,
    "trios": 3, "zero": 0,
}
# fmt: on
# fmt: off
DECADES = {
    "twenties": 20, "thirties": 30, "forties": 40, "fifties": 50, "sixties": 60, "seventies": 70, "eighties": 80,
    "nineties": 90,
}
# fmt: on
