"""The instruction resolver: instruction text -> the scaffold edits its words name, clause by clause.

The first, rule-based stage of the instruction compiler (``compiler.py``). Precision comes first: a
clause becomes an edit only when its words name a field or a value of the scaffold (see
``wording.py``) *and* a wish the resolver knows; everything else is reported, with the reason,
never guessed.

1. **Clauses.** The text is cut at ``, ; . ! ?``, "but", "while", and at "and" / "with" /
   "without" unless they join two values of one field ("Gentoo and Adelie only") or two numbers
   ("between 3 and 4 kg").
2. **Mentions.** In each clause: values (any form ``wording.value_forms`` knows), fields (name and
   description words, with their units), numbers with units ("4.5 kg", "75°F", "40mm", "the 70s"),
   and cue words.
3. **Wishes** (the phrase classes; README "Instruction text" lists them with examples):

   ====================================  =====================================================
   value, bare or with only/just/all     pin it; several values of one field: forbid the rest
   no / not / never / without / except   forbid the value(s)
   mostly / mainly / most / majority     a bias measured to reach a 70% share (``MOSTLY``)
   N% value                              a bias measured to reach N%
   more / fewer value                    a bias to a share a third of the way up / to half
   above / over / more than / after      a range above the number (exclusive)
   at least / min / from / since         a range from the number (inclusive)
   below / under / less than / before    a range below it; at most / up to / until: inclusive
   between A and B, A-B, A to B          a range [A, B]; around / about A: A ± 5%
   field N (unit), exactly N             pin the number
   heavier / longer / warmer / newer...  a range above the seeds' median (lighter...: below);
                                         heaviest / longest...: above the upper quartile
   no nulls / missing / always known     forbid null (in the named fields, else every one)
   N birds / at least N birds            the array's length (pin, or forbid the other lengths)
   with / without an optional key        pin its presence
   more varied / more typical            sampling temperature 1.3 / 0.5
   ====================================  =====================================================

   The adjective decides the field through the unit's dimension (heavier: a mass; warmer: a
   temperature) when the clause names no field; two candidate fields is an ambiguity, reported.
   A number's field is the one the clause names, else the one whose unit measures the same thing,
   else the one whose seed range holds the number.

The resolver returns edits, what it could not map (with why), and the clauses with words left
over that a chat model may still map (``Pending``).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from aod_core.canvas.scaffold import canonical
from aod_core.agents.wording import UNITS, FieldWords, Lexicon, convert, fold, singular, stopwords

MOSTLY = 0.7  # the share "mostly X" is calibrated to (measured on samples, see compiler.calibrate)
AROUND = 0.05  # "around 4 kg": 4 kg ± 5%
VARIED, TYPICAL = 1.3, 0.5  # sampling temperatures for "more varied" / "more typical"

NEGATE = {"no", "not", "never", "without", "except", "excluding", "exclude", "avoid", "none", "nothing", "nor", "non"}
ONLY = {"only", "just", "exclusively", "solely", "all", "every", "purely", "entirely"}
MOST = {"mostly", "mainly", "largely", "predominantly", "primarily", "majority", "most", "chiefly", "generally",
        "usually", "typically"}
MORE = {"more", "extra", "additional", "increase", "increased", "plenty"}
FEWER = {"fewer", "less", "reduce", "reduced", "rarely", "rare", "seldom", "few"}
NULL_WORDS = {"null", "nulls", "missing", "unknown", "blank", "blanks", "empty", "na", "n/a", "undetermined",
              "unrecorded", "unmeasured", "gap", "gaps", "none"}
KNOWN = {"known", "recorded", "measured", "determined", "complete", "completed", "filled", "present", "sexed"}
CLASS_NUMERIC = {"measurement", "measurements", "number", "numbers", "numeric", "figure", "figures"}
CLASS_ALL = {"everything", "anything", "field", "fields", "value", "values", "column", "columns"}
VARIED_WORDS = {"varied", "diverse", "diversity", "variety", "variation", "unusual", "creative", "surprising",
                "random", "randomness", "different", "novel", "original"}
TYPICAL_WORDS = {"typical", "conservative", "safe", "safer", "predictable", "ordinary", "consistent", "standard",
                 "normal", "usual", "common"}
REALISM_WORDS = {"realistic", "plausible", "believable", "sensible", "real", "reasonable", "credible", "valid",
                 "accurate", "correct", "good", "quality", "nice", "sane"}

# Comparators before a number: (side, inclusive). "from A to B" and "between A and B" are ranges.
LOWER = {"above": False, "over": False, ">": False, "after": False, "exceeding": False, "exceed": False,
         "beyond": False, "past": False, "min": True, "minimum": True, ">=": True, "≥": True, "since": True,
         "from": True}
UPPER = {"below": False, "under": False, "<": False, "before": False, "max": True, "maximum": True, "<=": True,
         "≤": True, "until": True, "till": True, "upto": True}
TWO_WORD = {("more", "than"): ("lo", False), ("greater", "than"): ("lo", False), ("higher", "than"): ("lo", False),
            ("larger", "than"): ("lo", False), ("bigger", "than"): ("lo", False), ("later", "than"): ("lo", False),
            ("newer", "than"): ("lo", False), ("heavier", "than"): ("lo", False), ("longer", "than"): ("lo", False),
            ("warmer", "than"): ("lo", False), ("hotter", "than"): ("lo", False), ("faster", "than"): ("lo", False),
            ("at", "least"): ("lo", True), ("no", "less"): ("lo", True), ("not", "less"): ("lo", True),
            ("less", "than"): ("hi", False), ("fewer", "than"): ("hi", False), ("lower", "than"): ("hi", False),
            ("smaller", "than"): ("hi", False), ("earlier", "than"): ("hi", False), ("older", "than"): ("hi", False),
            ("lighter", "than"): ("hi", False), ("shorter", "than"): ("hi", False), ("colder", "than"): ("hi", False),
            ("cooler", "than"): ("hi", False), ("slower", "than"): ("hi", False), ("at", "most"): ("hi", True),
            ("up", "to"): ("hi", True), ("no", "more"): ("hi", True), ("not", "more"): ("hi", True)}
AROUND_WORDS = {"around", "about", "approximately", "approx", "roughly", "near", "nearly", "circa", "~"}
EXACT_WORDS = {"exactly", "precisely", "=", "of", "equal", "equals", "is", "are"}

# Adjectives of size and time: word -> (direction, what selects the field, superlative).
# The selector is a pint dimension, "time" (a year or date field), a field-name word, or None
# (the clause must name the field: "bigger flippers", "higher horsepower").
MASS, LENGTH, TEMP, SPEED, POWER = "[mass]", "[length]", "[temperature]", "[length] / [time]", \
    "[length] ** 2 * [mass] / [time] ** 3"
_ADJ: dict[str, tuple[int, str | None]] = {
    "heavy": (1, MASS), "heavier": (1, MASS), "heaviest": (1, MASS), "light": (-1, MASS), "lighter": (-1, MASS),
    "lightest": (-1, MASS), "chunky": (1, MASS), "fat": (1, MASS), "fatter": (1, MASS), "slim": (-1, MASS),
    "long": (1, LENGTH), "longer": (1, LENGTH), "longest": (1, LENGTH), "short": (-1, LENGTH),
    "shorter": (-1, LENGTH), "shortest": (-1, LENGTH), "tall": (1, LENGTH), "taller": (1, LENGTH),
    "warm": (1, TEMP), "warmer": (1, TEMP), "warmest": (1, TEMP), "hot": (1, TEMP), "hotter": (1, TEMP),
    "hottest": (1, TEMP), "cold": (-1, TEMP), "colder": (-1, TEMP), "coldest": (-1, TEMP), "cool": (-1, TEMP),
    "cooler": (-1, TEMP), "coolest": (-1, TEMP), "chilly": (-1, TEMP), "freezing": (-1, TEMP),
    "powerful": (1, POWER), "weak": (-1, POWER), "weaker": (-1, POWER),
    "recent": (1, "time"), "newer": (1, "time"), "newest": (1, "time"), "modern": (1, "time"), "later": (1, "time"),
    "latest": (1, "time"), "older": (-1, "time"), "oldest": (-1, "time"), "early": (-1, "time"),
    "earlier": (-1, "time"), "earliest": (-1, "time"),
    "windy": (1, "wind"), "windier": (1, "wind"), "breezy": (1, "wind"), "gusty": (1, "wind"), "calm": (-1, "wind"),
    "calmer": (-1, "wind"), "still": (-1, "wind"), "wet": (1, "precipitation"), "wetter": (1, "precipitation"),
    "dry": (-1, "precipitation"), "drier": (-1, "precipitation"), "dryer": (-1, "precipitation"),
    "deep": (1, "depth"), "deeper": (1, "depth"), "deepest": (1, "depth"), "shallow": (-1, "depth"),
    "shallower": (-1, "depth"),
    "big": (1, None), "bigger": (1, None), "biggest": (1, None), "large": (1, None), "larger": (1, None),
    "largest": (1, None), "huge": (1, None), "small": (-1, None), "smaller": (-1, None), "smallest": (-1, None),
    "tiny": (-1, None), "little": (-1, None), "high": (1, None), "higher": (1, None), "highest": (1, None),
    "low": (-1, None), "lower": (-1, None), "lowest": (-1, None), "greater": (1, None), "efficient": (1, None),
    "economical": (1, None), "more": (1, None), "less": (-1, None), "fewer": (-1, None), "increase": (1, None),
    "reduce": (-1, None),
}
_SUPERLATIVE = {w for w in _ADJ if w.endswith("est") and w not in ("modern",)} | {"huge", "tiny", "freezing"}

NUMBER_WORDS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
                "eleven": 11, "twelve": 12, "one": 1, "single": 1, "pair": 2, "pairs": 2, "couple": 2,
                "couples": 2, "trio": 3, "trios": 3, "zero": 0}
_DECADES = {"twenties": 20, "thirties": 30, "forties": 40, "fifties": 50, "sixties": 60, "seventies": 70,
            "eighties": 80, "nineties": 90}

_TOKEN = re.compile(r"(?P<decade>'?\d{2}s\b|\d{4}s\b)|(?P<num>[-+]?\d[\d,]*(?:\.\d+)?|[-+]?\.\d+)"
                    r"|(?P<sym>>=|<=|≥|≤|>|<|=|~|%|°\s?[cfCF]\b)"
                    r"|(?P<word>[^\W\d_](?:[^\W_]|['./-](?=[^\W\d_]))*)")
_SPLIT = re.compile(r"[;,!?]|\.(?!\d)|\bbut\b|\bwhile\b|\bwhereas\b|\bhowever\b|\balso\b", re.IGNORECASE)


@dataclass
class Edit:
    """One scaffold edit the compiler writes, as stored in ``Prompt.compiled``."""

    op: str  # pin | forbid | range | bias | temperature
    path: str = ""
    value: Any = None
    lo: float | None = None
    hi: float | None = None
    amount: float | None = None  # bias logit, or the temperature
    share: float | None = None  # bias: the share of ``value`` it is calibrated to reach
    direction: int = 0  # bias: +1 reach at least ``share``, -1 at most
    measured: float | None = None  # bias: the share measured on samples with this bias
    measured_with: str | None = None  # the generator spec it was measured with
    phrase: str = ""  # the clause it came from
    why: str = ""
    source: str = "resolver"  # resolver, or the chat model's spec
    author: str = "compiler"  # compiler, or human when edited by hand
    replaced: Any = None  # what the edit replaced in the prompt (restored when the edit is removed)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None and v != "" and not (k == "direction" and v == 0)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Edit:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})

    def describe(self) -> str:
        p = self.path[2:] if self.path.startswith("$.") else self.path
        if self.op == "pin":
            return f"pin {p} = {canonical(self.value)}"
        if self.op == "forbid":
            return f"forbid {p} = {canonical(self.value)}"
        if self.op == "range":
            return f"range {p} in [{_num(self.lo)}, {_num(self.hi)}]"
        if self.op == "bias":
            goal = "" if self.share is None else f" (target {'≥' if self.direction >= 0 else '≤'} {self.share:.0%})"
            got = "" if self.measured is None else f", measured {self.measured:.0%}"
            return f"bias {p} = {canonical(self.value)} by {self.amount:+.2f}{goal}{got}"
        if self.op == "temperature":
            return f"temperature {self.amount}"
        return f"{self.op} {p}"

    def key(self) -> tuple:
        return (self.op, self.path, canonical(self.value), self.lo, self.hi, self.amount if self.op == "temperature" else None)


def _num(x: float | None) -> str:
    if x is None:
        return "?"
    return str(int(x)) if float(x).is_integer() else str(x)


@dataclass
class Unmapped:
    phrase: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"phrase": self.phrase, "reason": self.reason}


@dataclass
class Pending:
    """A clause the rules left (words that name nothing they know): the chat model may map it."""

    phrase: str
    words: list[str]  # its content words (what an LLM edit must cite)
    numbers: list[float]
    reason: str  # what is reported if the chat model cannot map it either
    candidates: list[str] = field(default_factory=list)  # field keys an ambiguity left open


@dataclass
class Resolution:
    edits: list[Edit] = field(default_factory=list)
    unmapped: list[Unmapped] = field(default_factory=list)
    pending: list[Pending] = field(default_factory=list)


# ---- tokens --------------------------------------------------------------------------------------


@dataclass
class Tok:
    text: str  # as written
    low: str  # folded
    kind: str  # word | num | sym | decade
    num: float | None = None
    unit: str | None = None  # pint unit right after a number
    used: bool = False
    tag: str = ""  # what consumed it

    @property
    def sing(self) -> str:
        return singular(self.low)


def tokenize(text: str) -> list[Tok]:
    text = re.sub(r"(?<=\d)\s*[-–]\s*(?=\d)", " to ", text)  # 3-4 kg -> 3 to 4 kg
    out: list[Tok] = []
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup or "word"
        raw = m.group(0)
        low = fold(raw)
        if kind == "num":
            out.append(Tok(raw, low, "num", float(low.replace(",", ""))))
        elif kind == "decade":
            d = int(low.strip("'s"))
            out.append(Tok(raw, low, "decade", float(d if d >= 1000 else 1900 + d)))
        elif kind == "sym":
            out.append(Tok(raw, low.replace(" ", ""), "sym"))
        elif "-" in low and not low.startswith("-"):
            for part in low.split("-"):
                if part:
                    out.append(Tok(part, part, "word"))
        else:
            if low in _DECADES:
                out.append(Tok(raw, low, "decade", float(1900 + _DECADES[low])))
            else:
                out.append(Tok(raw, low, "word"))
    # attach units written after numbers: "4.5 kg", "40mm" (split by the regex), "75 °F", "10 m/s"
    merged: list[Tok] = []
    i = 0
    while i < len(out):
        t = out[i]
        if t.kind == "num":
            for n in (3, 2, 1):
                nxt = out[i + 1 : i + 1 + n]
                if len(nxt) == n and all(x.kind in ("word", "sym") for x in nxt):
                    phrase = " ".join(x.low for x in nxt)
                    if phrase in UNITS:
                        t.unit = UNITS[phrase]
                        merged.append(t)
                        i += 1 + n
                        break
            else:
                merged.append(t)
                i += 1
            continue
        if t.kind == "word" and t.low in NUMBER_WORDS and t.low not in ("one", "single", "couple") or (
                t.kind == "word" and t.low in ("one", "single") and i + 1 < len(out) and out[i + 1].kind == "word"):
            merged.append(Tok(t.text, t.low, "num", float(NUMBER_WORDS[t.low])))
            i += 1
            continue
        merged.append(t)
        i += 1
    return merged


# ---- the resolver --------------------------------------------------------------------------------


@dataclass
class _Mention:
    start: int
    end: int  # exclusive token index
    key: str
    value: Any = None
    is_value: bool = False
    score: int = 0


class Resolver:
    """Instruction text -> edits, for one scaffold's lexicon (see the module docstring)."""

    def __init__(self, lexicon: Lexicon):
        self.lex = lexicon
        self.stop = stopwords()
        self._forms: list[tuple[tuple[str, ...], FieldWords, Any, str]] = []
        for f in lexicon.fields:
            for form, value in f.forms.items():
                self._forms.append((tuple(form.split()), f, value, form))
        self._forms.sort(key=lambda x: -len(x[0]))
        self.sampling_temperature_is_field = any(
            any(w.startswith("temp") for w in f.strong) for f in lexicon.fields)

    # -- clauses ------------------------------------------------------------------------------

    def resolve(self, text: str) -> Resolution:
        res = Resolution()
        text = re.sub(r"\bu\.s\.a?\.?", "usa", text, flags=re.IGNORECASE)
        for part in _SPLIT.split(text):
            toks = tokenize(part)
            if not toks:
                continue
            for seg in self._segments(toks):
                self._segment(seg, res)
        # the same edit from two clauses once
        seen, edits = set(), []
        for e in res.edits:
            if e.key() not in seen:
                seen.add(e.key())
                edits.append(e)
        res.edits = edits
        return res

    def _value_mentions(self, toks: list[Tok]) -> list[_Mention]:
        out: list[_Mention] = []
        i = 0
        while i < len(toks):
            hit = None
            for words, f, value, form in self._forms:
                n = len(words)
                if i + n > len(toks) or tuple(t.low for t in toks[i : i + n]) != words:
                    continue
                if any(t.kind == "num" for t in toks[i : i + n]) and not f.choice:
                    continue
                written = " ".join(t.text for t in toks[i : i + n])
                # a short code or a common word ("IN", "OR", "ME" as states) counts only as written
                if (len(form) <= 2 or form in self.stop or form in NEGATE | ONLY | MOST) and written != str(value):
                    continue
                if f.kind == "count":
                    continue  # lengths are numbers with the array's noun, handled with numbers
                hit = (n, f, value)
                cands = [(f2, v2) for w2, f2, v2, _ in self._forms if w2 == words and f2 is not f]
                if hit:
                    m = _Mention(i, i + n, f.key, value, True)
                    m.others = [(f2.key, v2) for f2, v2 in cands]  # type: ignore[attr-defined]
                    out.append(m)
                break
            i += hit[0] if hit else 1
        return out

    def _field_score(self, tok: Tok, f: FieldWords) -> int:
        w, s = tok.low, tok.sing
        if w in f.strong or s in f.strong:
            return 2
        if any(len(x) >= 4 and (w.startswith(x) or s.startswith(x)) and len(w) > len(x) for x in f.strong):
            return 2  # temperature -> temp
        if w in f.weak or s in f.weak:
            return 1
        return 0

    def _segments(self, toks: list[Tok]) -> list[list[Tok]]:
        """Cut at and / with / without, unless they join two values of a field or two numbers."""
        values = {m.start: m for m in self._value_mentions(toks)}
        ends = {m.end - 1: m for m in values.values()}
        segs, cur = [], []
        for i, t in enumerate(toks):
            if i not in values and t.kind == "word" and t.low in ("and", "or", "with", "without", "plus", "nor", "having", "whose",
                                              "where", "which", "that"):
                prev = ends.get(i - 1)
                nxt = values.get(i + 1)
                joins_values = t.low in ("and", "or", "nor") and prev is not None and nxt is not None and prev.key == nxt.key
                if t.low in ("and", "or", "nor") and i + 2 < len(toks) and toks[i + 1].low in NEGATE:
                    joins_values = False
                between = t.low in ("and", "or") and any(x.low in ("between", "from") for x in cur[-3:]) and \
                    cur and cur[-1].kind == "num"
                if not joins_values and not between and cur:
                    segs.append(cur)
                    cur = [t] if t.low in ("without", "nor") else []
                    continue
            cur.append(t)
        if cur:
            segs.append(cur)
        return segs

    # -- one clause ---------------------------------------------------------------------------

    def _segment(self, toks: list[Tok], res: Resolution) -> None:
        phrase = " ".join(t.text for t in toks)
        before = len(res.edits)
        problems: list[str] = []
        values = self._value_mentions(toks)
        for m in values:
            for t in toks[m.start : m.end]:
                t.used, t.tag = True, "value"
        fields = self._fields_named(toks)
        negated = any(t.low in NEGATE for t in toks if t.kind == "word")

        self._nulls(toks, fields, phrase, res, problems)
        self._temperature(toks, phrase, res, problems)
        self._numbers(toks, fields, phrase, res, problems)
        self._adjectives(toks, fields, phrase, res, problems, negated)
        self._values(toks, values, phrase, res, problems)
        self._presence(toks, fields, phrase, res, problems)

        for t in toks:
            if not t.used and (t.low in self.stop or t.low in self.lex.dataset_words or t.sing in self.lex.dataset_words
                               or t.low in NEGATE | ONLY | MOST | MORE | FEWER | KNOWN or t.kind == "sym"
                               or t.low in EXACT_WORDS | AROUND_WORDS or t.low in ("than", "least", "between", "to")):
                t.used = True
        for f, toks_f in fields.items():
            for t in toks_f:
                t.used = True
        left = [t for t in toks if not t.used and t.kind == "word"]
        mapped = len(res.edits) > before
        if problems:
            for p in problems:
                res.unmapped.append(Unmapped(phrase, p))
            return
        if mapped:
            return
        if not left and not fields and not any(t.kind == "num" for t in toks):
            return  # only dataset words and filler ("penguins", "records"): nothing asked
        # what a chat model may cite: every word of the clause that is not filler
        words = [t.text for t in toks if t.kind == "word" and t.low not in self.stop and t.low not in self.lex.dataset_words
                 and t.sing not in self.lex.dataset_words] or [t.text for t in left]
        numbers = [t.num for t in toks if t.kind == "num" and t.num is not None]
        real = [t.text for t in left if t.low in REALISM_WORDS]
        near = self._near_miss(left)
        if near:
            res.unmapped.append(Unmapped(phrase, near))
            return
        if real and len(real) == len(left):
            res.unmapped.append(Unmapped(phrase, f"no field matches {real[0]!r}: realism is the judge's job (for "
                                                 "more typical values say 'more typical', which lowers the sampling temperature)"))
            return
        if real:
            reason = (f"no field matches {real[0]!r}: realism is the judge's job (for more typical values "
                      "say 'more typical', which lowers the sampling temperature)")
        elif left:
            reason = f"no field or value matches {' '.join(t.text for t in left)!r}"
        elif fields:
            names = ", ".join(f.label for f in fields)
            reason = (f"found {names} but no wish the compiler knows (use e.g. above / below / between, "
                      "mostly, only, no, heavier / lighter)")
        else:
            reason = "nothing in this clause names a field or a value"
        res.pending.append(Pending(phrase, words, numbers, reason, [f.key for f in fields]))

    def _near_miss(self, left: list[Tok]) -> str | None:
        """A country-like word that no value of a country-valued field is ("German" for USA / Europe /
        Japan): say which values there are rather than widen the wish to a region."""
        from aod_core.agents.wording import COUNTRY_FORMS

        known = {form for forms in COUNTRY_FORMS.values() for form in forms} | set(COUNTRY_FORMS)
        for t in left:
            if t.low not in known:
                continue
            for f in self.lex.fields:
                if f.choice and any(fold(str(c)) in COUNTRY_FORMS for c in f.choices):
                    vals = ", ".join(str(c) for c in f.choices)
                    return f"{f.label} has no value for {t.text!r} (its values: {vals}); pin the one you mean"
        return None

    def _fields_named(self, toks: list[Tok]) -> dict[FieldWords, list[Tok]]:
        """Fields the clause names by their words, best-scoring first (ties kept)."""
        scores: dict[str, tuple[int, list[Tok]]] = {}
        for f in self.lex.fields:
            total, hit = 0, []
            for t in toks:
                if t.kind != "word" or t.used:
                    continue
                s = self._field_score(t, f)
                if s:
                    total += s
                    hit.append(t)
            if total:
                scores[f.key] = (total, hit)
        out: dict[FieldWords, list[Tok]] = {}
        for key, (s, hit) in sorted(scores.items(), key=lambda kv: -kv[1][0]):
            f = self.lex.by_key(key)
            # a field whose every word is also another, better-scoring field's word is not named
            if any(s < s2 and set(id(t) for t in hit) <= set(id(t) for t in h2) for s2, h2 in scores.values()):
                continue
            out[f] = hit
        return out

    # -- wishes -------------------------------------------------------------------------------

    def _nulls(self, toks, fields, phrase, res, problems) -> None:
        null_at = [i for i, t in enumerate(toks) if t.low in NULL_WORDS and not t.used and t.low != "none"]
        none_at = [i for i, t in enumerate(toks) if t.low == "none" and i + 1 < len(toks) and toks[i + 1].low in ("missing", "null", "unknown")]
        known_at = [i for i, t in enumerate(toks) if t.low in KNOWN and not t.used]
        neg = any(t.low in NEGATE for t in toks)
        positive_known = known_at and not neg
        negated_null = null_at and neg
        negated_known = known_at and neg and any(toks[i - 1].low in ("not", "never", "un") for i in known_at if i)
        if not (negated_null or positive_known or none_at):
            return
        if negated_known:
            return
        targets = [f for f in fields if f.numeric or f.choice or f.kind in ("string", "date")]
        cls_numeric = any(t.low in CLASS_NUMERIC or t.sing in CLASS_NUMERIC for t in toks)
        if not targets:
            if cls_numeric:
                targets = [f for f in self.lex.fields if f.numeric and f.nullable]
            elif positive_known and not any(t.low in ("everything", "every", "all", "always") for t in toks) and not null_at:
                return  # "measured" alone is not a wish
            else:
                targets = [f for f in self.lex.fields if f.nullable]
        for i in null_at + known_at + none_at:
            toks[i].used = True
        for t in toks:
            if t.low in NEGATE | CLASS_NUMERIC | CLASS_ALL or t.sing in CLASS_NUMERIC or t.low in ("every", "all", "always", "value", "values"):
                t.used = True
        nullable = [f for f in targets if f.nullable]
        if not nullable:
            problems.append(f"{', '.join(f.label for f in targets)} is never null already")
            return
        for f in nullable:
            res.edits.append(Edit("forbid", f.key, None, phrase=phrase, why=f"no nulls in {f.label}"))
        for f in fields:
            for t in fields[f]:
                t.used = True
        fields.clear()

    def _temperature(self, toks, phrase, res, problems) -> None:
        words = [t for t in toks if t.kind == "word"]
        lows = {t.low for t in words}
        explicit = None
        for i, t in enumerate(toks):
            if t.low == "temperature" and (not self.sampling_temperature_is_field or (i and toks[i - 1].low == "sampling")):
                nums = [x for x in toks[i + 1 : i + 4] if x.kind == "num" and x.unit is None]
                if nums:
                    explicit = (t, nums[0])
        if explicit:
            t, n = explicit
            if not 0.1 <= n.num <= 2.0:
                problems.append(f"sampling temperature {n.text} is outside [0.1, 2.0]")
                return
            for x in toks:
                if x.low in ("sampling", "temperature", "of", "to", "at", "set") or x is n:
                    x.used = True
            res.edits.append(Edit("temperature", amount=float(n.num), phrase=phrase, why="sampling temperature as written"))
            return
        varied = lows & VARIED_WORDS
        typical = lows & TYPICAL_WORDS
        if not (varied or typical):
            return
        less = bool(lows & ({"less", "fewer"} | NEGATE))
        up = (bool(varied) and not less) or (bool(typical) and less and not varied)
        if varied and typical:
            problems.append("asks for both more varied and more typical records")
            return
        for x in words:
            if x.low in varied | typical | {"more", "less", "fewer", "much", "very"}:
                x.used = True
        amount = VARIED if up else TYPICAL
        res.edits.append(Edit("temperature", amount=amount, phrase=phrase,
                              why=f"{'higher' if up else 'lower'} sampling temperature: {'more varied' if up else 'more typical'} values"))

    def _comparator(self, toks: list[Tok], i: int) -> tuple[str, bool, list[Tok]] | None:
        """The comparator just before number ``i``: ("lo"|"hi"|"around"|"exact", inclusive, its tokens)."""
        prev = [t for t in toks[max(0, i - 3) : i]]
        for a, b in zip(prev, prev[1:]):
            if (a.low, b.low) in TWO_WORD:
                side, inc = TWO_WORD[(a.low, b.low)]
                return side, inc, [a, b]
        for t in reversed(prev):
            if t.low in LOWER:
                return "lo", LOWER[t.low], [t]
            if t.low in UPPER:
                return "hi", UPPER[t.low], [t]
            if t.low in AROUND_WORDS:
                return "around", True, [t]
            if t.low in EXACT_WORDS:
                return "exact", True, [t]
            if t.kind == "word" and t.low not in ("than", "the", "a", "of") and not t.used:
                break
        return None

    def _numbers(self, toks, fields, phrase, res, problems) -> None:
        nums = [i for i, t in enumerate(toks) if t.kind in ("num", "decade") and not t.used
                and not (i + 1 < len(toks) and toks[i + 1].low in ("%", "percent"))]
        if not nums:
            return
        # pair up "between A and B" / "from A to B" / "A to B"
        i = 0
        groups: list[tuple[list[int], str, bool, list[Tok]]] = []
        while i < len(nums):
            a = nums[i]
            t = toks[a]
            if t.kind == "decade":
                groups.append(([a], "decade", True, []))
                i += 1
                continue
            if i + 1 < len(nums):
                b = nums[i + 1]
                mid = toks[a + 1 : b]
                if b - a <= 3 and any(x.low in ("and", "to", "through", "-") for x in mid):
                    cues = [x for x in toks[max(0, a - 2) : a] if x.low in ("between", "from")] + mid
                    groups.append(([a, b], "between", True, cues))
                    i += 2
                    continue
            cmp = self._comparator(toks, a)
            if cmp is None:
                after = toks[a + 1 : a + 3]
                if any(x.low in ("or", "plus") for x in after) and any(x.low in ("more", "above", "over", "greater") for x in after):
                    cmp = ("lo", True, after)
                elif any(x.low in ("or",) for x in after) and any(x.low in ("less", "fewer", "below", "under") for x in after):
                    cmp = ("hi", True, after)
                elif toks[a + 1 : a + 2] and toks[a + 1].low in ("+",):
                    cmp = ("lo", True, after[:1])
            side, inc, cues = cmp if cmp else ("exact", True, [])
            groups.append(([a], side, inc, cues))
            i += 1
        for idx, side, inc, cues in groups:
            ntoks = [toks[j] for j in idx]
            if len(ntoks) == 2 and (ntoks[0].unit is None) != (ntoks[1].unit is None):
                ntoks[0].unit = ntoks[0].unit or ntoks[1].unit  # "between 19 and 21 cm"
                ntoks[1].unit = ntoks[1].unit or ntoks[0].unit
            if side == "lo" and any(c.low == "from" for c in cues) and not any(
                    x.low in ("onwards", "onward", "on", "up", "upwards") for x in toks[idx[-1] + 1 : idx[-1] + 3]):
                side = "exact"  # "penguins from 2009": that year; "from 2008 on": a lower bound
            f, why = self._number_field(toks, ntoks, fields, side)
            if f is None:
                problems.append(why)
                for t in ntoks:
                    t.used = True
                continue
            values = []
            for t in ntoks:
                v = self._in_unit(t, f)
                if isinstance(v, str):
                    problems.append(v)
                    values = None
                    break
                values.append(v)
            for t in ntoks + list(cues):
                t.used = True
            if values is None:
                continue
            self._number_edit(f, side, inc, values, ntoks, phrase, res, problems)

    def _number_field(self, toks, ntoks, fields, side) -> tuple[FieldWords | None, str]:
        t = ntoks[0]
        text = " ".join(x.text for x in ntoks)
        numeric = [f for f in fields if f.numeric or f.kind == "count"]
        # an array's length: the number is followed by the array's noun ("3 birds", "groups of 2 birds")
        last = toks.index(ntoks[-1])
        nxt = [x for x in toks[last + 1 : last + 3] if x.kind == "word"]
        for f in self.lex.fields:
            if f.kind == "count" and nxt and (nxt[0].low in f.strong or nxt[0].sing in f.strong):
                nxt[0].used = True
                return f, ""
        if t.kind == "decade" or (t.unit is None and any(x.low in ("after", "before", "since", "until") for x in toks)
                                   and 1000 <= (t.num or 0) <= 2999):
            years = [f for f in self.lex.fields if f.numeric and "year" in f.strong]
            if len(years) == 1:
                return years[0], ""
            dates = [f for f in self.lex.fields if f.kind == "date"]
            if dates and not years:
                return None, f"{text}: dates cannot be bounded by a range in the scaffold (only numbers can)"
        if len(numeric) == 1:
            return numeric[0], ""
        cands = numeric or [f for f in self.lex.fields if f.numeric]
        if t.unit is not None:
            dim_of = _dim(t.unit)
            same = [f for f in cands if f.dim == dim_of]
            if not same:
                if numeric:
                    return None, f"{text} does not measure what {', '.join(f.label for f in numeric)} measures"
                return None, f"no field is measured in {t.unit.replace('_', ' ')} ({text})"
            cands = same
        if len(cands) > 1:
            inside = []
            for f in cands:
                vals = [self._in_unit(x, f) for x in ntoks]
                rng = f.seed_range
                if rng and all(isinstance(v, float) and rng[0] <= v <= rng[1] for v in vals):
                    inside.append(f)
            if len(inside) == 1:
                return inside[0], ""
            if inside:
                cands = inside
        if len(cands) == 1:
            return cands[0], ""
        if not cands:
            return None, f"no numeric field for {text}"
        return None, f"{text} could be {' or '.join(f.label for f in cands)}; name the field"

    def _in_unit(self, t: Tok, f: FieldWords) -> float | str:
        if t.unit is None or f.unit is None:
            if t.unit is not None and f.unit is None and f.kind != "count":
                return f"{t.text} {t.unit.replace('_', ' ')}: {f.label} has no unit to convert to"
            return float(t.num)
        v = convert(float(t.num), t.unit, f.unit)
        if v is None:
            return f"{t.text} {t.unit} does not measure what {f.label} measures ({f.unit.replace('_', ' ')})"
        return v

    def _number_edit(self, f, side, inc, values, ntoks, phrase, res, problems) -> None:
        written = " ".join(t.text + (f" {t.unit.replace('_', ' ')}" if t.unit else "") for t in ntoks)
        if f.kind == "count":
            self._count_edit(f, side, inc, values, written, phrase, res, problems)
            return
        lo_b = -math.inf if f.lo is None else f.lo
        hi_b = math.inf if f.hi is None else f.hi
        if side == "decade":
            lo, hi = values[0], values[0] + 9
        elif side == "between":
            lo, hi = sorted(values)
        elif side == "around":
            d = max(abs(values[0]) * AROUND, f.grid())
            lo, hi = values[0] - d, values[0] + d
        elif side == "lo":
            lo, hi = values[0] + (0 if inc else f.grid() / 2), hi_b
        elif side == "hi":
            lo, hi = lo_b, values[0] - (0 if inc else f.grid() / 2)
        else:
            v = f.snap(values[0], "nearest")
            if abs(v - values[0]) > 1e-9 or not lo_b <= v <= hi_b:
                problems.append(f"{written}: {f.label} cannot hold {_num(round(values[0], 6))} exactly "
                                f"(range [{_num(f.lo)}, {_num(f.hi)}], {f.decimals} decimals)")
                return
            res.edits.append(Edit("pin", f.key, int(v) if f.kind == "integer" or f.decimals == 0 else v,
                                  phrase=phrase, why=f"{f.label} = {written}"))
            return
        lo, hi = max(lo, lo_b), min(hi, hi_b)
        lo, hi = f.snap(lo, "up"), f.snap(hi, "down")
        if lo == hi:
            res.edits.append(Edit("pin", f.key, int(lo) if f.kind == "integer" or f.decimals == 0 else lo,
                                  phrase=phrase, why=f"{f.label} {side_text(side, inc)} {written}: one value left"))
            return
        if lo > hi:
            problems.append(f"{written}: no value of {f.label} is left in the field's range [{_num(f.lo)}, {_num(f.hi)}]")
            return
        res.edits.append(Edit("range", f.key, lo=lo, hi=hi, phrase=phrase, why=f"{f.label} {side_text(side, inc)} {written}"))

    def _count_edit(self, f, side, inc, values, written, phrase, res, problems) -> None:
        choices = [c for c in f.choices if isinstance(c, int)]
        v = values[0]
        if side == "exact":
            keep = [c for c in choices if c == v]
        elif side == "between":
            keep = [c for c in choices if min(values) <= c <= max(values)]
        elif side == "lo":
            keep = [c for c in choices if c > v or (inc and c == v)]
        elif side == "hi":
            keep = [c for c in choices if c < v or (inc and c == v)]
        else:
            keep = [c for c in choices if abs(c - v) <= 1]
        if not keep:
            problems.append(f"{written}: {f.label} is {min(choices)} to {max(choices)} here")
            return
        if len(keep) == 1:
            res.edits.append(Edit("pin", f.key, keep[0], phrase=phrase, why=f"{f.label} = {keep[0]}"))
            return
        for c in choices:
            if c not in keep:
                res.edits.append(Edit("forbid", f.key, c, phrase=phrase, why=f"{f.label} {side_text(side, inc)} {written}"))

    def _adjectives(self, toks, fields, phrase, res, problems, negated) -> None:
        for i, t in enumerate(toks):
            if t.used or t.kind != "word" or t.low not in _ADJ:
                continue
            if t.low in ("more", "less", "fewer", "increase", "reduce"):
                nxt = [x for x in toks[i + 1 : i + 4] if x.kind == "word"]
                if not nxt or not any(self._field_score(x, f) for x in nxt for f in fields if f.numeric):
                    continue  # "more Gentoo" is a value wish; "more varied" a temperature
            direction, sel = _ADJ[t.low]
            if negated and any(x.low in ("not", "no", "never") for x in toks[max(0, i - 2) : i]):
                direction = -direction
            named = [f for f in fields if f.numeric]
            if sel is not None and named:
                fit = [f for f in named if _selects(sel, f)]
                named = fit or named if sel is None else fit
            if named:
                cands = named
            elif sel is None:
                continue  # "big" with no field named: nothing to go on
            else:
                cands = [f for f in self.lex.fields if f.numeric and _selects(sel, f)]
            t.used = True
            if not cands:
                problems.append(f"no field measures what {t.text!r} describes")
                continue
            if len(cands) > 1:
                best = [f for f in cands if fields.get(f)]
                if len(best) != 1:
                    problems.append(f"{t.text!r} could mean {' or '.join(f.label for f in cands)}; name the field")
                    continue
                cands = best
            f = cands[0]
            for x in fields.get(f, []):
                x.used = True
            if f.median is None:
                problems.append(f"{f.label}: the seeds have no values to compare with")
                continue
            vals = sorted(f.seed_values)
            sup = t.low in _SUPERLATIVE or any(x.low in ("very", "extremely", "really") for x in toks[max(0, i - 2) : i])
            q = _quantile(vals, 0.75 if direction > 0 else 0.25) if sup else f.median
            lo_b = f.lo if f.lo is not None else min(vals)
            hi_b = f.hi if f.hi is not None else max(vals)
            if direction > 0:
                lo, hi = f.snap(q, "up"), f.snap(hi_b, "down")
                where = "upper quartile" if sup else "median"
            else:
                lo, hi = f.snap(lo_b, "up"), f.snap(q, "down")
                where = "lower quartile" if sup else "median"
            res.edits.append(Edit("range", f.key, lo=lo, hi=hi, phrase=phrase,
                                  why=f"{t.text}: {'above' if direction > 0 else 'below'} the seeds' {where} of "
                                      f"{f.label} ({_num(round(q, 6))})"))

    def _values(self, toks, values, phrase, res, problems) -> None:
        if not values:
            return
        # runs of values of one field ("Gentoo and Adelie")
        runs: list[list[_Mention]] = []
        for m in values:
            if runs and runs[-1][-1].key == m.key and all(
                    t.low in ("and", "or", "nor", "&", "/") or t.kind == "sym" for t in toks[runs[-1][-1].end : m.start]):
                runs[-1].append(m)
            else:
                runs.append([m])
        prev_end = 0
        for run in runs:
            f = self.lex.by_key(run[0].key)
            others = getattr(run[0], "others", [])
            if others:
                named = [k for k, _ in others if any(self._field_score(t, self.lex.by_key(k)) == 2 for t in toks)]
                if self._field_named(toks, f):
                    pass
                elif len(named) == 1:
                    f = self.lex.by_key(named[0])
                    run = [_Mention(m.start, m.end, f.key, next(v for k, v in others if k == f.key), True) for m in run]
                else:
                    labels = ", ".join([f.label] + [self.lex.by_key(k).label for k, _ in others])
                    problems.append(f"{toks[run[0].start].text!r} is a value of {labels}; name the field")
                    prev_end = run[-1].end
                    continue
            scope = [t for t in toks[prev_end : run[0].start] if t.kind in ("word", "num", "sym")]
            tail = [t for t in toks[run[-1].end : run[-1].end + 2] if t.kind == "word"]
            prev_end = run[-1].end
            cue = None
            pct = None
            for t in reversed(scope):
                if t.used:
                    continue  # a cue another wish took ("no" of "no nulls") is not this value's
                if t.low in NEGATE:
                    cue = "not"
                elif t.low in MOST:
                    cue = "most"
                elif t.low in ONLY:
                    cue = "only"
                elif t.low in MORE:
                    cue = "more"
                elif t.low in FEWER:
                    cue = "fewer"
                elif t.kind == "sym" and t.low == "%":
                    continue
                elif t.kind == "num" and not t.used:
                    nx = toks[toks.index(t) + 1] if toks.index(t) + 1 < len(toks) else None
                    if nx is not None and (nx.low == "%" or nx.low in ("percent", "per")):
                        pct = t
                        cue = "pct"
                if cue:
                    t.used = True
                    break
            if cue is None and tail and tail[0].low in ("only", "exclusively"):
                cue = "only"
                tail[0].used = True
            if cue == "pct":
                for x in toks:
                    if x.low in ("%", "percent", "per", "cent"):
                        x.used = True
            vals = [m.value for m in run]
            label = f.label
            if cue == "not":
                for v in vals:
                    res.edits.append(Edit("forbid", f.key, v, phrase=phrase, why=f"no {v} in {label}"))
                continue
            if cue in ("most", "pct", "more", "fewer"):
                if len(vals) > 1:
                    problems.append(f"{cue_text(cue)} names {len(vals)} values of {label}; give each a share "
                                    f"(e.g. '60% {vals[0]}')")
                    continue
                if not f.choice:
                    problems.append(f"{label} is free text in this scaffold; {cue_text(cue)!r} needs a choice field "
                                    f"(pin or forbid {vals[0]} instead)")
                    continue
                p0 = f.shares.get(canonical(vals[0]), 1.0 / max(1, len(f.choices)))
                direction = 1
                if cue == "most":
                    target = MOSTLY
                elif cue == "pct":
                    target = float(pct.num) / 100.0
                    if not 0.0 < target < 1.0:
                        if target >= 1.0:
                            res.edits.append(Edit("pin", f.key, vals[0], phrase=phrase, why=f"100% {vals[0]}"))
                        else:
                            res.edits.append(Edit("forbid", f.key, vals[0], phrase=phrase, why=f"0% {vals[0]}"))
                        continue
                    direction = 1 if target >= p0 else -1
                elif cue == "more":
                    target = min(0.95, p0 + max(0.15, (1 - p0) / 3))
                else:
                    target, direction = p0 / 2, -1
                res.edits.append(Edit("bias", f.key, vals[0], amount=round(_logit(target) - _logit(p0), 3),
                                      share=round(target, 3), direction=direction, phrase=phrase,
                                      why=f"{cue_text(cue)} {vals[0]}: seeds {p0:.0%}, target "
                                          f"{'≥' if direction > 0 else '≤'} {target:.0%}"))
                continue
            # bare or "only": pin one value; several values of one field: forbid the others
            if len(vals) == 1:
                res.edits.append(Edit("pin", f.key, vals[0], phrase=phrase, why=f"{label} = {vals[0]}"))
            elif f.choice:
                rest = [c for c in f.choices if canonical(c) not in {canonical(v) for v in vals}]
                for c in rest:
                    res.edits.append(Edit("forbid", f.key, c, phrase=phrase, why=f"only {' / '.join(map(str, vals))} in {label}"))
            else:
                problems.append(f"{label} is free text: several values can be forbidden but not kept; pin one")

    def _field_named(self, toks, f) -> bool:
        return any(self._field_score(t, f) == 2 for t in toks if not t.used)

    def _presence(self, toks, fields, phrase, res, problems) -> None:
        for f in list(fields):
            if f.kind != "present":
                continue
            words = [t.low for t in toks]
            neg = any(w in ("without", "no", "never", "not") for w in words)
            res.edits.append(Edit("pin", f.key, not neg, phrase=phrase, why=f"{'without' if neg else 'with'} {f.label[:-8]}"))
            for t in fields[f]:
                t.used = True


def side_text(side: str, inc: bool) -> str:
    return {"lo": "at least" if inc else "above", "hi": "at most" if inc else "below", "between": "between",
            "around": "around", "decade": "in", "exact": "="}[side]


def cue_text(cue: str) -> str:
    return {"most": "mostly", "pct": "a share of", "more": "more", "fewer": "fewer"}.get(cue, cue)


def _selects(sel: str, f: FieldWords) -> bool:
    if sel == "time":
        return "year" in f.strong or f.kind == "date"
    if sel.startswith("["):
        return f.dim == sel
    return sel in f.strong


def _dim(unit: str) -> str:
    from aod_core.agents.wording import dimension

    return dimension(unit)


def _quantile(vals: list[float], q: float) -> float:
    import statistics

    return statistics.quantiles(vals, n=4, method="inclusive")[0 if q < 0.5 else 2] if len(vals) > 1 else vals[0]


def _logit(p: float) -> float:
    p = min(0.99, max(0.01, p))
    return math.log(p / (1 - p))
