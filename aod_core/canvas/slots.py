"""The units of the canvas: slots, the special tokens, and the vocabulary every generator shares.

A ``Slot`` is a run of canvas positions that holds one leaf value (a *value slot*, spelled symbol
by symbol under a regular language) or one structural choice (a *choice slot*: an enum member, a
boolean, an array length, an optional key's presence, a union's alternative). Everything a
generator, a constraint or an agent needs to know about one field lives on its slot: where it sits,
what gates it, how its values are spelled and parsed. ``Vocab`` maps the canvas's tokens (the four
special tokens, the seeds' characters, word pieces and bin marks, one token per choice) to what
they mean. The layout that creates slots is ``layout.py``; the tree that reads them back as JSON
is ``nodes.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aod_core.canvas.automaton import marked_union
from aod_core.canvas.numbers import NumberFormat, dec
from aod_core.errors import InputError
from aod_core.records import canonical_json

MASK, END, NULL, ABSENT = 0, 1, 2, 3
SPECIAL_TOKENS = ["<mask>", "<end>", "<null>", "<absent>"]


def canonical(value: Any) -> str:
    """Stable text of a JSON value, used as the identity of a choice: the spaced canonical form, which
    fitted models store in their choice tables (so it must not change)."""
    return canonical_json(value, compact=False)


@dataclass
class Slot:
    """A run of canvas positions that holds one leaf value (or one structural choice)."""

    path: str  # concrete JSON path: $.birds[2].species
    key: str  # schema node path with [*] for items: $.birds[*].species (shared meaning)
    kind: str  # "value" | "choice"
    start: int = 0
    width: int = 1
    gate: int | None = None  # canvas position of the controlling choice slot
    gate_tokens: frozenset[int] = frozenset()  # controller tokens that switch this slot on
    # value slots
    vtype: str = ""  # integer | number | string | date
    decimals: int = 0  # fraction digits of fixed notation (mantissa digits in exponent notation)
    number: NumberFormat | None = None  # integer and number slots: how values are spelled
    nullable: bool = False
    regex: str = ""
    extra: tuple[str, ...] = ()  # further regexes the value must also match (pattern)
    lo: float | None = None  # effective numeric range (schema, closed by the width)
    hi: float | None = None
    # choice slots
    role: str = ""  # enum | count | present | variant
    choices: list[Any] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    # realistic canvas (CanvasOptions)
    pieces: Any = None  # TextPieces: a free-text slot written in word pieces (width counts pieces)
    max_chars: int | None = None  # a piece slot's longest value in characters
    bins: list[tuple[Any, Any, str]] | None = None  # number slot: (lo, hi, mark) per bin, lo inclusive
    mode: str = ""  # how a string field is written: vocabulary | text | chars ("" for other slots)
    new_variant: int | None = None  # a vocabulary choice slot: the start of its new-value variant slot
    symbols: tuple[int, ...] = ()  # piece or bin-mark tokens this value slot may hold (besides chars)

    @property
    def positions(self) -> range:
        return range(self.start, self.start + self.width)

    def spell(self, value: Any) -> str:
        """The characters a value slot holds for ``value`` (no padding); value must suit the slot."""
        if self.number is not None:
            return self.number.spell(value)
        return str(value)

    def spell_checked(self, value: Any, what: str) -> str:
        """``spell`` for a user-given value (a pin, a forbid), refusing values the slot cannot hold
        exactly instead of rounding or stringifying them."""
        if self.vtype in ("integer", "number"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InputError(f"{what} {self.path}: {canonical(value)} is not a number")
            text = self.spell(value)
            if dec(self.parse(text)) != dec(value):
                grid = (
                    "a whole number"
                    if self.number.whole
                    else f"{self.decimals} decimals"
                    + (" in exponent notation" if self.number.notation == "exponent" else "")
                )
                raise InputError(f"{what} {self.path}: {value} is not on the field's grid ({grid})")
            return text
        if not isinstance(value, str):
            raise InputError(f"{what} {self.path}: {canonical(value)} is not a string")
        return value

    def parse(self, text: str) -> Any:
        if self.bins is not None and text and text[0] in self.bin_marks:
            text = text[1:]
        if self.number is not None:
            return self.number.parse(text)
        return text

    @property
    def bin_marks(self) -> set[str]:
        return {b[2] for b in self.bins or ()}

    def bin_of(self, value: Any) -> str:
        """The bin mark of a number (the last bin whose lower end it reaches)."""
        d = dec(value)
        mark = self.bins[0][2]
        for lo, _hi, m in self.bins:
            if d >= dec(lo):
                mark = m
        return mark

    def canvas_text(self, value: Any) -> str:
        """What the canvas holds for a value, as text over the slot's language (a bin mark first)."""
        text = self.spell(value)
        return self.bin_of(value) + text if self.bins else text

    def range_regex(self, lo: Any, hi: Any) -> str:
        """The slot's language restricted to numbers in [lo, hi]; ValueError when none fits."""
        if not self.bins:
            return self.number.regex(lo, hi)
        parts = []
        last = len(self.bins) - 1
        for k, (blo, bhi, mark) in enumerate(self.bins):
            a, b = max(dec(lo), dec(blo)), min(dec(hi), dec(bhi))
            if a > b or (k < last and a >= dec(bhi)):
                continue
            try:
                parts.append(
                    (mark, self.number.regex(plain_number(a), plain_number(b), False, k < last and b == dec(bhi)))
                )
            except ValueError:
                continue
        if not parts:
            raise ValueError(f"no value in [{lo}, {hi}] fits the field")
        return marked_union(parts)


@dataclass
class Vocab:
    """The canvas's tokens: the special tokens, the seeds' characters, word pieces and bin marks, then
    one token per (slot key, choice); the maps from each kind of symbol to its token and back."""

    tokens: list[str]
    char_ids: dict[str, int]
    choice_ids: dict[tuple[str, str], int]  # (slot key, canonical value) -> token
    choice_value: dict[int, Any]
    piece_ids: dict[str, int] = field(default_factory=dict)  # word pieces and number-bin marks

    def __post_init__(self) -> None:
        self.char_of = {i: ch for ch, i in self.char_ids.items()}
        self.symbol_ids = {**self.char_ids, **self.piece_ids}
        self.symbol_of = {i: sym for sym, i in self.symbol_ids.items()}

    def __len__(self) -> int:
        return len(self.tokens)


def plain_number(v: Any) -> Any:
    """An exact bound as a JSON number (int, or float for fractions)."""
    if v is None or isinstance(v, (int, float)):
        return v
    return int(v) if v == v.to_integral_value() and abs(v) < 10**18 else float(v)


def is_number(v: Any) -> bool:
    """A JSON number (a bool is not one)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)
