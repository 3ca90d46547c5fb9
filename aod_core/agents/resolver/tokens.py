"""A clause as tokens: words, numbers with their units, decades, symbols; and field mentions.

``tokenize`` folds case and accents, turns "3-4 kg" into a range, reads number words ("two
birds") and decades ("the 70s", "seventies"), and attaches a unit written after a number ("4.5 kg",
"40mm", "75 °F"). ``field_score`` says how a token names a field of the lexicon.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aod_core.agents.resolver.vocabulary import DECADES, NUMBER_WORDS
from aod_core.agents.word_forms import UNITS, fold, singular
from aod_core.agents.wording import FieldWords

_TOKEN = re.compile(
    r"(?P<decade>'?\d{2}s\b|\d{4}s\b)|(?P<num>[-+]?\d[\d,]*(?:\.\d+)?|[-+]?\.\d+)"
    r"|(?P<sym>>=|<=|≥|≤|>|<|=|~|%|°\s?[cfCF]\b)"
    r"|(?P<word>[^\W\d_](?:[^\W_]|['./-](?=[^\W\d_]))*)"
)


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
            if low in DECADES:
                out.append(Tok(raw, low, "decade", float(1900 + DECADES[low])))
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
        if (
            t.kind == "word"
            and t.low in NUMBER_WORDS
            and t.low not in ("one", "single", "couple")
            or (t.kind == "word" and t.low in ("one", "single") and i + 1 < len(out) and out[i + 1].kind == "word")
        ):
            merged.append(Tok(t.text, t.low, "num", float(NUMBER_WORDS[t.low])))
            i += 1
            continue
        merged.append(t)
        i += 1
    return merged


@dataclass
class Mention:
    """Tokens ``start:end`` of a clause that name a value (``is_value``) of the field ``key``."""

    start: int
    end: int  # exclusive token index
    key: str
    value: Any = None
    is_value: bool = False
    score: int = 0


def field_score(tok: Tok, f: FieldWords) -> int:
    """How a token names a field: 2 by a word of its name (or a name word's prefix of four or more
    letters: "temp" for temperature), 1 by a word of its description, 0 not at all."""
    w, s = tok.low, tok.sing
    if w in f.strong or s in f.strong:
        return 2
    if any(len(x) >= 4 and (w.startswith(x) or s.startswith(x)) and len(w) > len(x) for x in f.strong):
        return 2  # temperature -> temp
    if w in f.weak or s in f.weak:
        return 1
    return 0


def names_field(toks: list[Tok], f: FieldWords) -> bool:
    """Whether an unused token of the clause names the field by a word of its name."""
    return any(field_score(t, f) == 2 for t in toks if not t.used)
