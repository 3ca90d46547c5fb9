"""Value slots: how one leaf of the schema is written on the canvas, plain or realistic.

A leaf (integer, number, string, date) becomes a value slot of ``width`` symbols under a regular
language built from the schema (number ranges and grids from ``numbers.py``, string lengths,
``format``s from ``formats.py``, ``pattern``); the language is compiled to a DFA (``automaton.py``).
A language that cannot be compiled within budget (``SLOT_STATES`` automaton states, the compile
budget) or a format without a language becomes a choice among the seeds' own values instead, with
a note saying so. Strings are at most ``MAX_STRING_WIDTH`` characters wide.

``CanvasOptions`` (the embedded generator's; other generators use the plain canvas) make values look
real, not only valid:

* **learned vocabularies**: a string field whose seed values repeat (``string_mode``: at most half as
  many distinct values as values) becomes a choice among the seeds' values (role ``enum``, so pins,
  forbids and biases work on it like on a schema enum). When the field looks open-ended (at least
  ``open_share`` of its values occur once) the vocabulary holds the values seen twice or more and a
  ``variant`` choice switches to a written value instead: the model learns how often a new value
  appears from how often the seeds show one (a Good-Turing estimate). Override per field with
  ``string_modes`` (``vocabulary``, ``text`` or ``chars``);
* **word pieces**: a free-text field (no pattern, no format) is written in pieces of a BPE vocabulary
  trained on its seed values (``textpieces.py``), still under its character-level language (lengths,
  pattern), so the model composes the seeds' words instead of spelling letters;
* **coarse-to-fine numbers**: a number slot with enough seeds starts with a *bin* symbol, one of
  ``number_bins`` ranges between the seeds' quantiles (plus one bin on each side for the schema's
  range beyond the seeds'), followed by the digits, which the slot's language keeps inside that bin.
  The model decides magnitude in one token it can relate to other fields (body mass given species),
  then the digits.

``LeafBuilder`` holds these steps as the leaf half of the layout builder (``layout.LayoutBuilder``
inherits it and provides ``add``, ``choice``, ``options``, ``notes``, ``chars`` and ``pieces``).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from aod_core.canvas.automaton import MARKS_FROM, STRING_CHAR, compile_fsm, pattern_regex, string_regex
from aod_core.canvas.formats import FORMATS
from aod_core.canvas.nodes import ChoiceNode, ConstNode, Node, UnionNode, ValueNode
from aod_core.canvas.numbers import dec, plan_number, round_number
from aod_core.canvas.slots import Slot, canonical, is_number, plain_number
from aod_core.errors import BudgetExceeded, InputError

# Budgets of one value slot (the canvas's own budgets are in layout.py).
MAX_STRING_WIDTH = 256
SLOT_STATES = 600  # a value language with more automaton states is drawn from the seeds' values

STRING_MODES = ("vocabulary", "text", "chars")
BIN_MARKS = MARKS_FROM  # private-use code points: one per (number slot, bin), never in real text
PIECE_SLACK = 2  # positions over the seeds' longest value, in pieces
MAX_BINS = 64  # bin marks per number slot (each slot has its own block of code points)
MIN_BIN_SEEDS = 20  # a number slot needs this many seed values to be split into bins
MIN_BIN_DISTINCT = 16  # ... and this many distinct ones


@dataclass
class CanvasOptions:
    """How values are written on the canvas (module docstring); the default is the plain canvas."""

    strings: str = "chars"  # "auto": vocabularies and word pieces as the seeds suggest; "chars": letters
    string_modes: dict[str, str] = field(default_factory=dict)  # field path -> vocabulary | text | chars
    pieces: int = 0  # BPE vocabulary size for free text (0: characters)
    number_bins: int = 0  # coarse bins per number slot (0: plain digits)
    open_share: float = 0.25  # share of once-seen values from which a vocabulary admits new values

    @classmethod
    def realistic(cls, **kw: Any) -> CanvasOptions:
        return cls(**{"strings": "auto", "pieces": 400, "number_bins": 32, **kw})

    def check(self) -> None:
        if self.strings not in ("auto", "chars"):
            raise InputError(f"strings must be auto or chars, got {self.strings!r}")
        for path, mode in self.string_modes.items():
            if mode not in STRING_MODES:
                raise InputError(f"string mode for {path} must be one of {', '.join(STRING_MODES)}, got {mode!r}")
        if self.pieces < 0 or self.number_bins < 0:
            raise InputError("text pieces and number bins must be >= 0")


def string_mode(values: list[str]) -> str:
    """How a string field is best written, from its seed values: ``vocabulary`` when values repeat
    (at most half as many distinct values as values, and at least 8 values), else ``text``."""
    strs = [v for v in values if isinstance(v, str)]
    if len(strs) >= 8 and len(set(strs)) <= 0.5 * len(strs):
        return "vocabulary"
    return "text"


class LeafBuilder:
    """The leaves of the layout: value slots, vocabularies, word pieces and number bins (mixed into
    ``layout.LayoutBuilder``, which provides the slot allocation and the notes these steps use)."""

    def value(self, schema, kind, nullable, path, key, values, gate) -> Node:
        vals = [v for v in values if v is not None]
        slot = Slot(path=path, key=key, kind="value", vtype=kind, nullable=nullable, gate=gate[0], gate_tokens=gate[1])
        if kind in ("integer", "number"):
            try:
                plan = plan_number(schema, kind, vals)
            except ValueError as e:
                raise InputError(f"schema at {path}: {e}") from None
            slot.number, slot.decimals, slot.regex, width = plan.fmt, plan.fmt.digits, plan.regex, plan.width
            slot.lo, slot.hi = plain_number(plan.lo), plain_number(plan.hi)
            if plan.fmt.notation == "exponent":
                self.chars.update("e+-.")
            if plan.note:
                self.notes.append(f"{path}: {plan.note}")
            slot.width = max(width, 1)
            if (
                self.options.number_bins
                and plan.fmt.notation == "fixed"
                and slot.lo is not None
                and slot.hi is not None
            ):
                return self.binned_checked(slot, schema, [v for v in vals if is_number(v)], gate)
            return self.checked(slot, schema, vals, gate)
        strs = [v for v in vals if isinstance(v, str)]
        min_len = int(schema.get("minLength", 0))
        max_len = schema.get("maxLength")
        fmt_name = schema.get("format")
        fmt = FORMATS.get(fmt_name) if isinstance(fmt_name, str) else None
        width = max([len(s) for s in strs] + [min_len, 1, fmt.min_width if fmt else 1])
        if max_len is not None:
            width = min(width, int(max_len))
        if width > MAX_STRING_WIDTH:
            width = max(min(MAX_STRING_WIDTH, int(max_len or MAX_STRING_WIDTH)), min_len)
            self.notes.append(f"{path}: strings are generated up to {width} characters (the seeds' longest is longer)")
        self.chars.update(ch for s in strs for ch in s if ch >= " ")
        mode = self.string_mode(path, key, schema, fmt_name, strs)
        if mode == "vocabulary":
            return self.vocabulary(schema, path, key, nullable, strs, gate, width)
        if fmt is not None:
            self.chars.update(fmt.chars)
            slot.vtype = "date" if fmt_name == "date" else "string"
            slot.regex = fmt.regex
            slot.extra = (string_regex(min_len, width),) if (min_len or max_len is not None) else ()
        else:
            slot.regex = string_regex(min_len, width)
        slot.width = max(width, 1)
        slot.mode = mode
        if (
            mode == "text"
            and self.options.pieces
            and fmt is None
            and not isinstance(schema.get("pattern"), str)
            and strs
        ):
            self.in_pieces(slot, strs)
        if isinstance(fmt_name, str) and fmt is None and fmt_name in _CHECKED_FORMATS:
            return self.from_seeds(slot, vals, gate, f"format {fmt_name!r} has no value language in the scaffold")
        if isinstance(schema.get("pattern"), str):
            try:
                regex = pattern_regex(schema["pattern"])
                compile_fsm(regex)
                slot.extra = slot.extra + (regex,)
            except BudgetExceeded as e:
                return self.from_seeds(slot, vals, gate, f"pattern {schema['pattern']!r}: {e}")
            except Exception as e:  # interegular raises several types for syntax it lacks
                return self.from_seeds(
                    slot, vals, gate, f"pattern {schema['pattern']!r} cannot be compiled ({type(e).__name__}: {e})"
                )
        if slot.extra or fmt is not None:
            # The seeds may not show how long a value must be or which characters it needs (no seed
            # has one, or only nulls): the slot is at least as wide as the language's shortest value,
            # and the vocabulary holds the characters the pattern names.
            pattern = tuple(e for e in slot.extra if not e.startswith(STRING_CHAR))
            try:
                lang = compile_fsm(
                    fmt.regex if fmt else string_regex(min_len, None), (string_regex(min_len, None),) + pattern
                )
            except BudgetExceeded as e:
                return self.from_seeds(slot, vals, gate, str(e))
            named = [ch for ch in lang.alphabet if isinstance(ch, str) and ch >= " "]
            if len(named) <= 256:
                self.chars.update(named)
            shortest = _shortest(lang)
            if shortest is not None and shortest > slot.width:
                if shortest > MAX_STRING_WIDTH:
                    raise BudgetExceeded(
                        f"schema at {path}: the shortest value the schema allows has {shortest} characters (budget {MAX_STRING_WIDTH})"
                    )
                slot.width = shortest
                if fmt is None:
                    slot.regex = string_regex(min_len, shortest)
        return self.checked(slot, schema, vals, gate)

    # -- realistic canvas (CanvasOptions) ----------------------------------------------------------

    def string_mode(self, path: str, key: str, schema: dict, fmt_name: Any, strs: list[str]) -> str:
        if self.options.strings == "chars" and not self.options.string_modes:
            return "chars"
        override = self.options.string_modes.get(path) or self.options.string_modes.get(key)
        if override:
            return override
        if self.options.strings == "chars" or fmt_name is not None:
            return "chars"
        return string_mode(strs)

    def in_pieces(self, slot: Slot, strs: list[str]) -> None:
        """Write a free-text slot in word pieces trained on its seed values."""
        from aod_core.canvas.textpieces import longest_split, train_pieces

        pieces = train_pieces(strs, self.options.pieces)
        if not pieces.pieces:
            return
        slot.pieces, slot.max_chars = pieces, slot.width
        self.pieces.update(pieces.pieces)
        slot.width = max(1, min(slot.width, longest_split(pieces, strs) + PIECE_SLACK))

    def binned(self, slot: Slot, nums: list[Any], bins: int = 0) -> None:
        """Split a number slot's range near the seeds' quantiles into ``bins`` bins (default: the
        options'), each a mark symbol that starts the value and a range the digits after it must
        stay in."""
        ds = sorted(dec(v) for v in nums)
        if len(ds) < MIN_BIN_SEEDS or len(set(ds)) < MIN_BIN_DISTINCT:
            return  # few values (a year, a count): the digits are already as coarse as a bin
        k = min(bins or self.options.number_bins, len(set(ds)) // 4, MAX_BINS - 2)  # 2: the range beyond the seeds'
        unit = Decimal(1).scaleb(-slot.number.digits)
        lo, hi = dec(slot.lo), dec(slot.hi)
        quantiles = [ds[min(len(ds) - 1, (j * len(ds)) // k)] for j in range(1, k)]
        cuts: list[Decimal] = []
        for j, q in enumerate(quantiles):
            # A round number near the quantile (within a quarter of the way to its neighbours): an
            # edge with few significant digits keeps the bin's language small whatever the decimals.
            left = quantiles[j - 1] if j else ds[0]
            right = quantiles[j + 1] if j + 1 < len(quantiles) else ds[-1]
            c = round_number(q, q - (q - left) / 4, q + (right - q) / 4, unit)
            if lo < c <= hi and (not cuts or c > cuts[-1]):
                cuts.append(c)
        if not cuts:
            return
        # The schema's range beyond the seeds' gets a bin of its own on each side, so the bins at the
        # ends hold the seeds' extremes tightly instead of stretching to the schema's bounds (values
        # out there stay possible; the model has simply never seen their mark).
        low, high = ds[0].quantize(unit, rounding=ROUND_FLOOR), ds[-1].quantize(unit, rounding=ROUND_CEILING) + unit
        below = round_number(low, min(low, max(lo, low - (cuts[0] - low) / 4)), low, unit)
        above = round_number(high, high, max(high, min(hi, high + (high - cuts[-1]) / 4)), unit)
        if lo < below < cuts[0]:
            cuts.insert(0, below)
        if cuts[-1] < above <= hi:
            cuts.append(above)
        edges = [lo] + cuts + [hi]
        bins: list[tuple[Any, Any, str]] = []
        first = BIN_MARKS + MAX_BINS * len([sl for sl in self.slots if sl.bins])
        for i in range(len(edges) - 1):
            bins.append((plain_number(edges[i]), plain_number(edges[i + 1]), chr(first + i)))
        slot.bins = bins
        try:
            slot.regex = slot.range_regex(slot.lo, slot.hi)
        except ValueError:
            slot.bins = None
            return
        self.pieces.update(b[2] for b in bins)
        slot.width += 1

    def vocabulary(self, schema: dict, path: str, key: str, nullable: bool, strs: list[str], gate, width: int) -> Node:
        """A choice among the seeds' values; when the field looks open-ended, a variant choice between
        a seen value and a new one written in pieces (see the module docstring)."""
        counts = Counter(strs)
        once = sum(1 for c in counts.values() if c == 1)
        frequent = [v for v, c in counts.most_common() if c >= 2]
        open_ended = len(strs) and once / len(strs) >= self.options.open_share and len(frequent) >= 2
        values = frequent if open_ended else [v for v, _ in counts.most_common()]
        choices = values + ([None] if nullable else [])
        if not open_ended:
            slot = self.choice(path, key, "enum", choices, gate)
            slot.mode = "vocabulary"
            return ChoiceNode(slot)
        variant = self.choice(f"{path}|new", f"{key}|new", "variant", [0, 1], gate)
        seen = self.choice(path, key, "enum", choices, (variant.start, ("variant", key, 0)))
        seen.mode, seen.new_variant = "vocabulary", variant.start
        new = Slot(
            path=path,
            key=key,
            kind="value",
            vtype="string",
            nullable=False,
            gate=variant.start,
            gate_tokens=("variant", key, 1),
            mode="text",
        )
        min_len = int(schema.get("minLength", 0))
        new.regex = string_regex(min_len, width)
        extra = []
        if isinstance(schema.get("pattern"), str):
            try:
                extra.append(pattern_regex(schema["pattern"]))
            except Exception:
                pass
        new.extra = tuple(extra)
        new.width = max(width, 1)
        rare = [v for v, c in counts.items() if c == 1]
        if self.options.pieces and not extra:
            self.in_pieces(new, strs)
        known = set(frequent)
        node = ValueNode(self.add(new))
        self.notes.append(
            f"{path}: a vocabulary of the seeds' {len(frequent)} repeated values; "
            f"{once / len(strs):.0%} of the seeds' values occur once, so new values are written too"
        )
        return (
            UnionNode(
                variant,
                {0: ChoiceNode(seen), 1: node},
                classify=lambda v, known=known: 0 if v in known or v is None else 1,
            )
            if rare
            else ChoiceNode(seen)
        )

    def binned_checked(self, slot: Slot, schema: dict, nums: list[Any], gate) -> Node:
        """A number slot in bins, with fewer bins (halved each time, down to none) while its
        language is over budget: a number is always written digit by digit, never drawn from the
        seeds' values because its bins cost too many states."""
        plain_regex, plain_width = slot.regex, slot.width
        asked = 0
        while True:
            self.binned(slot, nums, asked)
            if not slot.bins:
                return self.checked(slot, schema, nums, gate)
            n, why = len(slot.bins), self.over_budget(slot)
            if why is None:
                if asked:
                    self.notes.append(f"{slot.path}: {n} number bins (more would be over the automaton budget)")
                return self.checked(slot, schema, nums, gate)
            self.pieces.difference_update(b[2] for b in slot.bins)
            slot.bins, slot.regex, slot.width = None, plain_regex, plain_width
            asked = (n - 2) // 2  # the two bins beyond the seeds' range come back on their own
            if asked < 2:
                self.notes.append(f"{slot.path}: no number bins ({why})")
                return self.checked(slot, schema, nums, gate)

    @staticmethod
    def over_budget(slot: Slot) -> str | None:
        """Why the slot's language is over its budget (None: within it)."""
        try:
            fsm = compile_fsm(slot.regex, slot.extra)
        except BudgetExceeded as e:
            return str(e)
        if len(fsm.states) > SLOT_STATES:
            return f"its automaton has {len(fsm.states)} states (budget {SLOT_STATES})"
        return None

    def checked(self, slot: Slot, schema: dict, vals: list[Any], gate) -> Node:
        """The slot, once its whole language compiles within budget; else the seeds' values."""
        try:
            fsm = compile_fsm(slot.regex, slot.extra)
        except BudgetExceeded as e:
            return self.from_seeds(slot, vals, gate, str(e))
        if len(fsm.states) > SLOT_STATES:
            return self.from_seeds(
                slot, vals, gate, f"its automaton has {len(fsm.states)} states (budget {SLOT_STATES})"
            )
        if not fsm.finals:
            raise InputError(
                f"schema at {slot.path}: no {slot.vtype} value fits the schema within {slot.width} characters"
            )
        return ValueNode(self.add(slot))

    def from_seeds(self, slot: Slot, vals: list[Any], gate, why: str) -> Node:
        """A choice among the seeds' own values, for a value language the scaffold cannot build."""
        choices = list(dict.fromkeys(canonical(v) for v in vals))
        if not choices:
            raise InputError(f"schema at {slot.path}: {why}, and no seed has a value there to draw from")
        self.notes.append(f"{slot.path}: {why}; values are drawn from the seeds' {len(choices)} values")
        values = [json.loads(c) for c in choices] + ([None] if slot.nullable else [])
        if len(values) == 1:
            return ConstNode(values[0])
        return ChoiceNode(self.choice(slot.path, slot.key, "enum", values, gate))


def _shortest(fsm) -> int | None:
    """Length of the shortest string an interegular FSM accepts (None: it accepts none)."""
    frontier, seen, n = {fsm.initial}, {fsm.initial}, 0
    while frontier:
        if frontier & set(fsm.finals):
            return n
        nxt = {t for s in frontier for t in fsm.map.get(s, {}).values()} - seen
        seen |= nxt
        frontier, n = nxt, n + 1
    return None


_CHECKED_FORMATS = set(__import__("jsonschema").Draft202012Validator.FORMAT_CHECKER.checkers)
