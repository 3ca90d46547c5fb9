"""A character n-gram language model of one text field's seed values.

Used by the plausibility model to tell text that reads like the seeds ("Chico Municipal") from
character soup ("Hargeafrll"), wrong casing ("cHICO") or a number in a name ("Chico 4471"). No
library offers a small, fast, case-sensitive character model with proper smoothing, so it is
written here: interpolated Witten-Bell smoothing (Chen & Goodman, 1998) over contexts of up to
``order - 1`` characters, with begin/end markers so that lengths and first/last characters count.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable

BOS, EOS = "\x02", "\x03"
#: Room for characters the seeds never use: a character outside the seed alphabet gets at most
#: this share of the base distribution, so it always costs more than a known one.
UNSEEN_CHARS = 64

CLASSES = {
    "digits": re.compile(r"\d"),
    "capital letters": re.compile(r"[A-Z]"),
    "lower-case letters": re.compile(r"[a-z]"),
    "spaces": re.compile(r"\s"),
    "punctuation": re.compile(r"[^\w\s]"),
    "non-ASCII letters": re.compile(r"[^\x00-\x7f]"),
}


class CharNGram:
    """``fit(values)``, then ``nll(value)``: mean negative log-likelihood per character (nats),
    the end marker included. Lower reads more like the seeds."""

    def __init__(self, order: int = 4):
        if order < 1:
            raise ValueError("order must be >= 1")
        self.order = order
        self.counts: dict[str, Counter] = defaultdict(Counter)
        self.totals: dict[str, int] = {}
        self.types: dict[str, int] = {}
        self.alphabet: set[str] = set()

    def fit(self, values: Iterable[str]) -> CharNGram:
        for v in values:
            padded = BOS * (self.order - 1) + v + EOS
            self.alphabet.update(v)
            for i in range(self.order - 1, len(padded)):
                ch = padded[i]
                for k in range(self.order):
                    self.counts[padded[i - k : i]][ch] += 1
        self.alphabet.add(EOS)
        self.totals = {h: sum(c.values()) for h, c in self.counts.items()}
        self.types = {h: len(c) for h, c in self.counts.items()}
        self.counts = dict(self.counts)
        return self

    def _prob(self, history: str, ch: str) -> float:
        p = 1.0 / (len(self.alphabet) + UNSEEN_CHARS)
        for k in range(len(history) + 1):  # shortest context first, each level interpolating the last
            h = history[len(history) - k :]
            c = self.counts.get(h)
            if c is None:
                break
            total, types = self.totals[h], self.types[h]
            p = (c.get(ch, 0) + types * p) / (total + types)
        return p

    def nll(self, value: str) -> float:
        padded = BOS * (self.order - 1) + value + EOS
        n = len(padded) - (self.order - 1)
        total = 0.0
        for i in range(self.order - 1, len(padded)):
            total -= math.log(self._prob(padded[i - self.order + 1 : i], padded[i]))
        return total / n


def char_classes(value: str) -> set[str]:
    """Which character classes (digits, capital letters, ...) a value uses."""
    return {name for name, rx in CLASSES.items() if rx.search(value)}


def first_letter_case(value: str) -> str | None:
    m = re.search(r"[^\W\d_]", value)
    if m is None:
        return None
    return "upper" if m.group().isupper() else "lower" if m.group().islower() else None


def words(value: str) -> list[str]:
    """Lower-cased words of two or more letters (digits and one-letter tokens say little)."""
    return [w for w in re.findall(r"[^\W\d_]{2,}", value.lower())]
