"""Schema scaffold: the output canvas a diffusion generator fills.

The JSON skeleton (braces, keys in schema order, commas) is fixed structure; only *slots* are
denoised. A slot is either

* a **value slot**: ``width`` symbol positions holding an integer, number, string or date spelled
  character by character, END-padded (a value may end early), with NULL allowed at the first position
  when the schema allows null; its language is a DFA built from the schema (``automaton.py``); or
* a **choice slot**: one position holding one of a fixed set of tokens: an enum member, a boolean,
  an array length (``count``), whether an optional property is present (``present``), or which
  alternative of a ``oneOf``/``anyOf`` or type union the value takes (``variant``).

Array items past ``minItems``, optional properties and the alternatives of a union are *gated* by
their controlling choice slot: once the controller is decided, positions it switches off are
filled with ABSENT and ignored. Widths, array lengths, the keys of map-like objects, the
alternatives used and the depth of recursive schemas come from the seeds (what the data actually
uses), bounded by the schema and by a size and time budget (``MAX_CANVAS``, ``BUILD_SECONDS``).

The vocabulary is shared by every generator that works on this canvas: MASK, END, NULL, ABSENT,
the characters of the seeds' values, then one token per (schema node, choice).

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
  ``number_bins`` ranges between the seeds' quantiles, followed by the digits, which the slot's
  language keeps inside that bin. The model decides magnitude in one token it can relate to other
  fields (body mass given species), then the digits.
"""
from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from aod_core.data.allof import merge
from aod_core.canvas.automaton import STRING_CHAR, compile_fsm, pattern_regex, string_regex
from aod_core.errors import BudgetExceeded, InputError
from aod_core.canvas.formats import FORMATS
from aod_core.canvas.numbers import NumberFormat, dec, plan_number
from decimal import Decimal
from aod_core.data.schema import resolved_validator

MASK, END, NULL, ABSENT = 0, 1, 2, 3
SPECIAL_TOKENS = ["<mask>", "<end>", "<null>", "<absent>"]
_DIGITS = "0123456789-."
# Budgets: a schema and seeds whose canvas would exceed them are refused with one line.
MAX_CANVAS = 1536  # positions: on one CPU core a longer canvas takes more than 2 minutes to fit and sample
BUILD_SECONDS = 30.0
MAX_STRING_WIDTH = 256
MAX_LEARNED_KEYS = 32  # keys of one map-like object learned from the seeds
MAX_RECURSION = 24  # unrolled levels of one recursive $ref
SLOT_STATES = 600  # a value language with more automaton states is drawn from the seeds' values


def canonical(value: Any) -> str:
    """Stable text of a JSON value, used as the identity of a choice."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


STRING_MODES = ("vocabulary", "text", "chars")
BIN_MARKS = 0xF0000  # private-use code points: one per (number slot, bin), never in real text
PIECE_SLACK = 2  # positions over the seeds' longest value, in pieces
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
        return cls(**{"strings": "auto", "pieces": 400, "number_bins": 16, **kw})

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
                grid = ("a whole number" if self.number.whole else f"{self.decimals} decimals"
                        + (" in exponent notation" if self.number.notation == "exponent" else ""))
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
                parts.append(re.escape(mark) + "(" + self.number.regex(_plain(a), _plain(b), False, k < last and b == dec(bhi)) + ")")
            except ValueError:
                continue
        if not parts:
            raise ValueError(f"no value in [{lo}, {hi}] fits the field")
        return "(" + "|".join(parts) + ")"


# ---- the render tree: how slots become a JSON value ------------------------------------------


@dataclass
class Node:
    def render(self, tokens: list[int], vocab: Vocab) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def skeleton(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass
class ConstNode(Node):
    value: Any

    def render(self, tokens, vocab):
        return self.value

    def skeleton(self) -> str:
        return canonical(self.value)


@dataclass
class ValueNode(Node):
    slot: Slot

    def render(self, tokens, vocab):
        s = self.slot
        syms = tokens[s.start : s.start + s.width]
        body = syms[1:] if syms[0] == NULL else syms
        n = body.index(END) if END in body else len(body)
        if any(t != END for t in body[n:]) or any(t not in vocab.symbol_of for t in body[:n]):
            raise DecodeError(f"{s.path}: the slot is not a value followed by padding")
        if syms[0] == NULL:
            if n or not s.nullable:
                raise DecodeError(f"{s.path}: null where the field does not allow it")
            return None
        text = "".join(vocab.symbol_of[t] for t in body[:n])
        try:
            return s.parse(text)
        except ValueError:
            raise DecodeError(f"{s.path}: {text!r} is not a valid {s.vtype}") from None

    def skeleton(self) -> str:
        body = ("▦" * self.slot.width) if self.slot.pieces is not None else (
            ("◆" if self.slot.bins else "") + "▮" * (self.slot.width - (1 if self.slot.bins else 0)))
        return f'"{body}"' if self.slot.vtype in ("string", "date") else body


@dataclass
class ChoiceNode(Node):
    slot: Slot

    def render(self, tokens, vocab):
        tok = tokens[self.slot.start]
        if tok not in self.slot.tokens:
            raise DecodeError(f"{self.slot.path}: {vocab.tokens[tok]} is not one of the field's choices")
        return vocab.choice_value[tok]

    def skeleton(self) -> str:
        return "⟨" + "|".join(canonical(c) for c in self.slot.choices) + "⟩"


@dataclass
class ObjectNode(Node):
    fields: list[tuple[str, Node, Slot | None]]  # (key, node, presence slot of an optional key)

    def render(self, tokens, vocab):
        out = {}
        for name, node, presence in self.fields:
            if presence is not None and ChoiceNode(presence).render(tokens, vocab) is not True:
                continue
            out[name] = node.render(tokens, vocab)
        return out

    def skeleton(self) -> str:
        parts = []
        for name, node, presence in self.fields:
            opt = "?" if presence is not None else ""
            parts.append(f"{json.dumps(name)}{opt}: {node.skeleton()}")
        return "{" + ", ".join(parts) + "}"


@dataclass
class ArrayNode(Node):
    items: list[Node]
    count: Slot | None  # None: fixed length

    def render(self, tokens, vocab):
        n = len(self.items) if self.count is None else ChoiceNode(self.count).render(tokens, vocab)
        return [item.render(tokens, vocab) for item in self.items[:n]]

    def skeleton(self) -> str:
        n = "" if self.count is None else f"⟨len {min(self.count.choices)}..{max(self.count.choices)}⟩"
        return "[" + n + ", ".join(i.skeleton() for i in self.items) + "]"


@dataclass
class UnionNode(Node):
    """One of several alternatives (``oneOf``/``anyOf`` members, the types of a type union),
    chosen by a ``variant`` slot; only the chosen alternative's slots are switched on."""

    slot: Slot
    alternatives: dict[int, Node]
    classify: Callable[[Any], int] = field(repr=False, default=lambda v: 0)

    def render(self, tokens, vocab):
        return self.alternatives[ChoiceNode(self.slot).render(tokens, vocab)].render(tokens, vocab)

    def skeleton(self) -> str:
        return "⟨" + " | ".join(n.skeleton() for n in self.alternatives.values()) + "⟩"


class DecodeError(ValueError):
    """A filled canvas that does not spell a value (only possible without constraints)."""


@dataclass
class Vocab:
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


# ---- building ---------------------------------------------------------------------------------


def _types(schema: dict) -> list[str]:
    t = schema.get("type")
    if t is None:
        return []
    return [t] if isinstance(t, str) else list(t)


def json_kind(v: Any) -> str:
    """The JSON type of a Python value ("integer" for whole numbers)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    return "array" if isinstance(v, list) else "object"


def _implied_type(schema: dict) -> str | None:
    """The type a schema without ``type`` implies through its keywords (properties: an object)."""
    if any(k in schema for k in ("properties", "patternProperties", "additionalProperties", "required")):
        return "object"
    if any(k in schema for k in ("items", "prefixItems", "minItems", "maxItems")):
        return "array"
    if any(k in schema for k in ("pattern", "minLength", "maxLength", "format")):
        return "string"
    if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")):
        return "number"
    return None


def _fits_type(v: Any, t: str) -> bool:
    k = json_kind(v)
    return k == t or (t == "number" and k == "integer") or (t == "integer" and k == "number" and float(v).is_integer())


class _Builder:
    def __init__(self, schema: dict, seeds: list[dict], options: CanvasOptions | None = None):
        self.options = options or CanvasOptions()
        self.options.check()
        self.pieces: set[str] = set()  # word pieces and bin marks of every slot
        self.seeds = seeds
        self.defs: dict = schema.get("$defs") or {}
        self.validator = resolved_validator(schema)
        self.slots: list[Slot] = []
        self.notes: list[str] = []
        self.chars: set[str] = set(_DIGITS)
        self.choice_keys: list[tuple[str, Any]] = []  # (slot key, value) in first-seen order
        self._choice_seen: set[tuple[str, str]] = set()
        self._depth: Counter = Counter()  # recursive $ref -> levels unrolled on the current path
        self._deadline = time.monotonic() + BUILD_SECONDS
        self._valid_cache: dict[tuple[int, str], bool] = {}

    def add(self, slot: Slot) -> Slot:
        slot.start = self.slots[-1].start + self.slots[-1].width if self.slots else 0
        self.slots.append(slot)
        if slot.start + slot.width > MAX_CANVAS:
            raise BudgetExceeded(f"the scaffold for this schema and seeds grows past {MAX_CANVAS} positions "
                                 f"at {slot.path} (too many fields, array items or alternatives in the seeds)")
        if time.monotonic() > self._deadline:
            raise BudgetExceeded(f"laying out the scaffold took more than {BUILD_SECONDS:g} s (at {slot.path})")
        return slot

    def choice(self, path: str, key: str, role: str, choices: list[Any], gate) -> Slot:
        for c in choices:
            if (key, canonical(c)) not in self._choice_seen:
                self._choice_seen.add((key, canonical(c)))
                self.choice_keys.append((key, c))
        return self.add(Slot(path=path, key=key, kind="choice", role=role, choices=list(choices), gate=gate[0], gate_tokens=gate[1]))

    def is_valid(self, schema: Any, value: Any) -> bool:
        try:
            return bool(self.validator.evolve(schema=schema).is_valid(value))
        except Exception:  # a subschema the validator cannot evaluate on its own: judge by type
            return False

    # -- nodes ------------------------------------------------------------------------------------

    def node(self, schema: Any, path: str, key: str, values: list[Any], gate) -> Node:
        if schema is False:
            raise InputError(f"schema at {path} is false: no value is allowed there, yet the field is required")
        schema = schema if isinstance(schema, dict) else {}
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return self.recursive(schema, ref, path, key, values, gate)
        present = [v for v in values if v is not _MISSING]
        if "const" in schema:
            return ConstNode(schema["const"])
        types = _types(schema)
        if "enum" in schema:
            choices = list(schema["enum"])
            if types:
                choices = [c for c in choices if any(_fits_type(c, t) for t in types)] or choices
            if not choices:
                raise InputError(f"schema at {path}: enum is empty")
            if len(choices) == 1:
                return ConstNode(choices[0])
            return ChoiceNode(self.choice(path, key, "enum", choices, gate))
        alternatives = self.alternatives(schema, present)
        if alternatives is not None:
            return self.union(alternatives, path, key, present, gate)
        nullable = "null" in types
        concrete = [t for t in types if t != "null"]
        if not concrete:
            if types == ["null"]:
                return ConstNode(None)
            implied = _implied_type(schema)
            concrete = [implied or _infer_type(present)]
            if implied is None:
                self.notes.append(f"{path}: no type in the schema; generated as {concrete[0]} (inferred from the seeds)")
        if set(concrete) == {"integer", "number"}:
            concrete = ["number"]
        kind = concrete[0]
        if kind == "boolean":
            return ChoiceNode(self.choice(path, key, "enum", [True, False] + ([None] if nullable else []), gate))
        if kind == "object":
            return self.object(schema, path, key, present, gate)
        if kind == "array":
            return self.array(schema, path, key, present, gate)
        return self.value(schema, kind, nullable, path, key, present, gate)

    def recursive(self, schema: dict, ref: str, path: str, key: str, values: list[Any], gate) -> Node:
        name = ref[len("#/$defs/"):].replace("~1", "/").replace("~0", "~")
        if name not in self.defs:
            raise InputError(f"schema at {path}: unresolvable $ref {json.dumps(ref)}")
        if not [v for v in values if v is not _MISSING]:
            raise InputError(f"recursive $ref at {path}: no seed shows how deep it goes, so the scaffold "
                             "cannot bound it (add seeds that use it, or make it optional)")
        if self._depth[name] >= MAX_RECURSION:
            raise BudgetExceeded(f"recursive $ref at {path} unrolls more than {MAX_RECURSION} levels")
        own = {k: v for k, v in schema.items() if k != "$ref"}
        target = self.defs[name]
        if own and isinstance(target, dict):
            target, rest = merge(target, own)
            if rest:
                target = {**target, "allOf": [*target.get("allOf", []), rest]}
        self._depth[name] += 1
        try:
            return self.node(target, path, key, values, gate)
        finally:
            self._depth[name] -= 1

    def alternatives(self, schema: dict, values: list[Any]) -> list[dict] | None:
        """The alternatives a schema offers (oneOf/anyOf members, or the types of a type union that
        holds an object or array, or of an untyped field whose seeds mix types); None: no union."""
        for kw in ("oneOf", "anyOf"):
            members = schema.get(kw)
            if isinstance(members, list) and members:
                base = {k: v for k, v in schema.items() if k != kw}
                out = []
                for m in members:
                    if m is False:
                        continue
                    if not isinstance(m, dict):
                        m = {}
                    merged, rest = merge(base, m)
                    if rest:
                        merged = {**merged, "allOf": [*merged.get("allOf", []), rest]}
                    if "type" in base and "type" in m and _types(merged) == _types(base) and merged.get("type") != m.get("type"):
                        continue  # the member's type is not one the base allows
                    out.append(merged)
                return out or [base]
        for kw in ("dependentRequired", "dependentSchemas"):
            deps = schema.get(kw)
            if isinstance(deps, dict) and deps:
                # "if k is present, so are these keys / so holds this schema": two alternatives,
                # without k, or with k required and the dependency merged in.
                k, dep = next(iter(deps.items()))
                rest = {**schema, kw: {n: d for n, d in deps.items() if n != k}}
                if not rest[kw]:
                    del rest[kw]
                without = {**rest, "properties": {**(rest.get("properties") or {}), k: False}}
                required = list(rest.get("required") or []) + [k]
                with_k = {**rest, "required": required}
                if kw == "dependentRequired":
                    with_k["required"] = required + [d for d in dep if d not in required]
                elif isinstance(dep, dict):
                    with_k, left = merge(with_k, dep)
                    if left:
                        with_k = {**with_k, "allOf": [*with_k.get("allOf", []), left]}
                return [without, with_k]
        types = _types(schema)
        concrete = [t for t in types if t != "null"]
        if set(concrete) == {"integer", "number"}:
            concrete = ["number"]
        structured = any(t in ("object", "array") for t in concrete)
        if len(concrete) > 1 or (structured and "null" in types):
            return [{**schema, "type": t} for t in concrete + (["null"] if "null" in types else [])]
        if not types and "enum" not in schema and _implied_type(schema) is None:
            kinds = []
            for v in values:
                k = "number" if json_kind(v) in ("integer", "number") else json_kind(v)
                if k not in kinds:
                    kinds.append(k)
            if len(kinds) > 1:
                return [{**schema, "type": k} for k in kinds]
        return None

    def union(self, alternatives: list[dict], path: str, key: str, values: list[Any], gate) -> Node:
        def classify(v: Any) -> int:
            for i, alt in enumerate(alternatives):
                if self.is_valid(alt, v):
                    return i
            for i, alt in enumerate(alternatives):
                t = _types(alt) or [_implied_type(alt) or ""]
                if any(_fits_type(v, x) for x in t):
                    return i
            return -1

        groups: dict[int, list[Any]] = {}
        for v in values:
            groups.setdefault(classify(v), []).append(v)
        groups.pop(-1, None)
        used = sorted(groups) or [0]
        if len(used) < len(alternatives):
            unused = len(alternatives) - len(used)
            self.notes.append(f"{path}: {unused} of {len(alternatives)} alternatives are used by no seed, so never generated")
        if len(used) == 1:
            return self.node(alternatives[used[0]], path, key, groups.get(used[0], []), gate)
        variant = self.choice(f"{path}|variant", f"{key}|variant", "variant", used, gate)
        nodes = {i: self.node(alternatives[i], path, f"{key}|{i}", groups[i], (variant.start, ("variant", key, i)))
                 for i in used}
        return UnionNode(variant, nodes, classify)

    def object(self, schema, path, key, values, gate) -> Node:
        props: dict = dict(schema.get("properties") or {})
        required = list(schema.get("required") or [])
        dicts = [v for v in values if isinstance(v, dict)]
        for name in required:
            if name not in props:
                props[name] = self.key_schema(schema, name)
        if not schema.get("properties") or "patternProperties" in schema or isinstance(schema.get("additionalProperties"), dict) \
                or schema.get("additionalProperties") is True:
            learned = Counter(k for d in dicts for k in d if k not in props and self.key_schema(schema, k) is not False)
            for name, _ in learned.most_common(MAX_LEARNED_KEYS):
                props[name] = self.key_schema(schema, name)
            if len(learned) > MAX_LEARNED_KEYS:
                self.notes.append(f"{path}: the seeds use {len(learned)} different keys; the {MAX_LEARNED_KEYS} commonest are generated")
        if not props:
            return ConstNode({})
        fields_: list[tuple[str, Node, Slot | None]] = []
        for name, sub in props.items():
            if sub is False and name not in required:
                continue  # the key is not allowed
            sub_path = f"{path}.{name}" if name.isidentifier() else f"{path}[{json.dumps(name, ensure_ascii=False)}]"
            sub_key = f"{key}.{name}" if name.isidentifier() else f"{key}[{json.dumps(name, ensure_ascii=False)}]"
            sub_values = [d.get(name, _MISSING) for d in dicts]
            seen = sum(v is not _MISSING for v in sub_values)
            presence = None
            child_gate = gate
            if name not in required and seen < len(dicts) or (name not in required and not dicts):
                if seen == 0:
                    if schema.get("properties") and name in schema["properties"] and dicts:
                        self.notes.append(f"{sub_path}: optional and absent from every seed, so never generated")
                    continue
                presence = self.choice(f"{sub_path}?", f"{sub_key}?", "present", [True, False], gate)
                child_gate = (presence.start, ("present", sub_key))
            fields_.append((name, self.node(sub, sub_path, sub_key, sub_values, child_gate), presence))
        if not fields_:
            return ConstNode({})
        return ObjectNode(fields_)

    @staticmethod
    def key_schema(schema: dict, name: str) -> Any:
        """The subschema a key not in ``properties`` takes: its patternProperties match, else
        additionalProperties (``False``: the key is not allowed)."""
        for pattern, sub in (schema.get("patternProperties") or {}).items():
            try:
                if re.search(pattern, name):
                    return sub
            except re.error:
                continue
        extra = schema.get("additionalProperties", True)
        return {} if extra is True else extra

    def array(self, schema, path, key, values, gate) -> Node:
        prefix = schema.get("prefixItems") if isinstance(schema.get("prefixItems"), list) else []
        rest = schema.get("items", True)
        lists = [v for v in values if isinstance(v, list)]
        lo = int(schema.get("minItems", 0))
        seen_max = max((len(v) for v in lists), default=0)
        hi = min(int(schema.get("maxItems", seen_max)), seen_max)
        if rest is False:
            hi = min(hi, len(prefix))
        hi = max(hi, lo)
        count = None
        if hi > lo:
            count = self.choice(f"{path}.length", f"{key}.length", "count", list(range(lo, hi + 1)), gate)
        items = []
        for i in range(hi):
            item_gate = gate if (count is None or i < lo) else (count.start, ("count", f"{key}.length", i))
            if i < len(prefix):
                sub, sub_key = prefix[i], f"{key}[{i}]"
                sub_values = [v[i] for v in lists if len(v) > i]
            else:
                sub, sub_key = rest, f"{key}[*]"
                sub_values = [x for v in lists for x in v[len(prefix):]]
            items.append(self.node(sub if sub is not True else {}, f"{path}[{i}]", sub_key, sub_values, item_gate))
        return ArrayNode(items, count)

    # -- leaves -----------------------------------------------------------------------------------

    def value(self, schema, kind, nullable, path, key, values, gate) -> Node:
        vals = [v for v in values if v is not None]
        slot = Slot(path=path, key=key, kind="value", vtype=kind, nullable=nullable, gate=gate[0], gate_tokens=gate[1])
        if kind in ("integer", "number"):
            try:
                plan = plan_number(schema, kind, vals)
            except ValueError as e:
                raise InputError(f"schema at {path}: {e}") from None
            slot.number, slot.decimals, slot.regex, width = plan.fmt, plan.fmt.digits, plan.regex, plan.width
            slot.lo, slot.hi = _plain(plan.lo), _plain(plan.hi)
            if plan.fmt.notation == "exponent":
                self.chars.update("e+-.")
            if plan.note:
                self.notes.append(f"{path}: {plan.note}")
            slot.width = max(width, 1)
            if self.options.number_bins and plan.fmt.notation == "fixed" and slot.lo is not None and slot.hi is not None:
                self.binned(slot, [v for v in vals if _is_num(v)])
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
        if mode == "text" and self.options.pieces and fmt is None and not isinstance(schema.get("pattern"), str) and strs:
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
                return self.from_seeds(slot, vals, gate, f"pattern {schema['pattern']!r} cannot be compiled "
                                                         f"({type(e).__name__}: {e})")
        if slot.extra or fmt is not None:
            # The seeds may not show how long a value must be or which characters it needs (no seed
            # has one, or only nulls): the slot is at least as wide as the language's shortest value,
            # and the vocabulary holds the characters the pattern names.
            pattern = tuple(e for e in slot.extra if not e.startswith(STRING_CHAR))
            try:
                lang = compile_fsm(fmt.regex if fmt else string_regex(min_len, None),
                                   (string_regex(min_len, None),) + pattern)
            except BudgetExceeded as e:
                return self.from_seeds(slot, vals, gate, str(e))
            named = [ch for ch in lang.alphabet if isinstance(ch, str) and ch >= " "]
            if len(named) <= 256:
                self.chars.update(named)
            shortest = _shortest(lang)
            if shortest is not None and shortest > slot.width:
                if shortest > MAX_STRING_WIDTH:
                    raise BudgetExceeded(f"schema at {path}: the shortest value the schema allows has {shortest} "
                                         f"characters (budget {MAX_STRING_WIDTH})")
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

    def binned(self, slot: Slot, nums: list[Any]) -> None:
        """Split a number slot's range at the seeds' quantiles into bins, each a mark symbol that
        starts the value and a range the digits after it must stay in."""
        ds = sorted(dec(v) for v in nums)
        if len(ds) < MIN_BIN_SEEDS or len(set(ds)) < MIN_BIN_DISTINCT:
            return  # few values (a year, a count): the digits are already as coarse as a bin
        k = min(self.options.number_bins, len(set(ds)) // 4)
        unit = Decimal(1).scaleb(-slot.number.digits)
        lo, hi = dec(slot.lo), dec(slot.hi)
        cuts: list[Decimal] = []
        for j in range(1, k):
            c = ds[min(len(ds) - 1, (j * len(ds)) // k)].quantize(unit)
            if lo < c <= hi and (not cuts or c > cuts[-1]):
                cuts.append(c)
        if not cuts:
            return
        edges = [lo] + cuts + [hi]
        bins: list[tuple[Any, Any, str]] = []
        first = BIN_MARKS + 64 * len([sl for sl in self.slots if sl.bins])
        for i in range(len(edges) - 1):
            bins.append((_plain(edges[i]), _plain(edges[i + 1]), chr(first + i)))
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
        new = Slot(path=path, key=key, kind="value", vtype="string", nullable=False, gate=variant.start,
                   gate_tokens=("variant", key, 1), mode="text")
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
        self.notes.append(f"{path}: a vocabulary of the seeds' {len(frequent)} repeated values; "
                          f"{once / len(strs):.0%} of the seeds' values occur once, so new values are written too")
        return UnionNode(variant, {0: ChoiceNode(seen), 1: node},
                         classify=lambda v, known=known: 0 if v in known or v is None else 1) if rare else ChoiceNode(seen)

    def checked(self, slot: Slot, schema: dict, vals: list[Any], gate) -> Node:
        """The slot, once its whole language compiles within budget; else the seeds' values."""
        try:
            fsm = compile_fsm(slot.regex, slot.extra)
        except BudgetExceeded as e:
            return self.from_seeds(slot, vals, gate, str(e))
        if len(fsm.states) > SLOT_STATES:
            return self.from_seeds(slot, vals, gate, f"its automaton has {len(fsm.states)} states (budget {SLOT_STATES})")
        if not fsm.finals:
            raise InputError(f"schema at {slot.path}: no {slot.vtype} value fits the schema within {slot.width} characters")
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


def _plain(v: Any) -> Any:
    """An exact bound as a JSON number (int, or float for fractions)."""
    if v is None or isinstance(v, (int, float)):
        return v
    return int(v) if v == v.to_integral_value() and abs(v) < 10**18 else float(v)


_CHECKED_FORMATS = set(__import__("jsonschema").Draft202012Validator.FORMAT_CHECKER.checkers)


def _infer_type(values: list[Any]) -> str:
    vals = [v for v in values if v is not None]
    kinds = {json_kind(v) for v in vals}
    if kinds == {"integer"}:
        return "integer"
    if kinds and kinds <= {"integer", "number"}:
        return "number"
    if len(kinds) == 1:
        return kinds.pop()
    return "string"


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


@dataclass
class Scaffold:
    """The canvas layout for one schema and seed set, shared by every generator on it."""

    root: Node
    slots: list[Slot]
    vocab: Vocab
    notes: list[str]

    @property
    def length(self) -> int:
        return self.slots[-1].start + self.slots[-1].width if self.slots else 0

    @classmethod
    def build(cls, schema: dict, seeds: list[dict], options: CanvasOptions | None = None) -> Scaffold:
        """Lay out the canvas for a resolved (``$ref``-free) object schema."""
        b = _Builder(schema, seeds, options)
        root = b.node(schema, "$", "$", list(seeds), (None, frozenset()))
        if not b.slots:
            raise InputError("the schema leaves nothing to generate: every field is a constant")
        tokens = list(SPECIAL_TOKENS)
        char_ids = {}
        for ch in sorted(b.chars):
            char_ids[ch] = len(tokens)
            tokens.append(ch)
        piece_ids: dict[str, int] = {}
        for piece in sorted(b.pieces):
            if piece not in char_ids:
                piece_ids[piece] = len(tokens)
                tokens.append(piece if len(piece) > 1 else f"⟨bin {ord(piece) - BIN_MARKS}⟩")
        choice_ids: dict[tuple[str, str], int] = {}
        choice_value: dict[int, Any] = {}
        for key, value in b.choice_keys:
            ident = (key, canonical(value))
            if ident not in choice_ids:
                choice_ids[ident] = len(tokens)
                choice_value[len(tokens)] = value
                tokens.append(f"⟨{key}={canonical(value)}⟩")
        vocab = Vocab(tokens, char_ids, choice_ids, choice_value, piece_ids)
        slot_at = {s.start: s for s in b.slots}
        for s in b.slots:
            if s.kind == "choice":
                s.tokens = [choice_ids[(s.key, canonical(c))] for c in s.choices]
            if s.gate is not None:
                s.gate_tokens = _resolve_gate(s.gate_tokens, slot_at[s.gate], vocab)
            if s.pieces is not None:
                s.symbols = tuple(piece_ids[p] for p in s.pieces.pieces if p in piece_ids)
            if s.bins:
                s.symbols = tuple(piece_ids[m] for _lo, _hi, m in s.bins)
        return cls(root=root, slots=b.slots, vocab=vocab, notes=b.notes)

    def value_tokens(self, slot: Slot, value: Any) -> list[int]:
        """The tokens a value slot holds for ``value`` (no padding): a bin mark first, word pieces
        where the slot is written in pieces, characters otherwise (unknown characters: END)."""
        text = slot.spell(value)
        ids = self.vocab.char_ids
        if slot.pieces is not None:
            return [self.vocab.piece_ids.get(p) or ids.get(p, END) for p in slot.pieces.split(text)]
        toks = [ids.get(ch, END) for ch in text]
        return [self.vocab.piece_ids[slot.bin_of(value)]] + toks if slot.bins else toks

    # -- canvas <-> records ---------------------------------------------------------------------

    def encode(self, record: dict) -> list[int]:
        """Tokens of a (schema-valid) record on this canvas; used to train generators."""
        tokens = [ABSENT] * self.length
        self._encode(self.root, record, tokens)
        return tokens

    def _encode(self, node: Node, value: Any, tokens: list[int]) -> None:
        if isinstance(node, ConstNode):
            return
        if isinstance(node, ChoiceNode):
            s = node.slot
            tokens[s.start] = self.vocab.choice_ids.get((s.key, canonical(value)), s.tokens[0])
        elif isinstance(node, UnionNode):
            i = node.classify(value)
            if i not in node.alternatives:
                i = next(iter(node.alternatives))
            tokens[node.slot.start] = self.vocab.choice_ids[(node.slot.key, canonical(i))]
            self._encode(node.alternatives[i], value, tokens)
        elif isinstance(node, ValueNode):
            s = node.slot
            if value is None or (s.number is not None and not _is_num(value)):
                syms = [NULL] if s.nullable or value is None else []
            else:
                if s.number is not None:  # a seed beyond the slot's window trains on its nearest end
                    value = min(max(value, s.lo), s.hi) if s.lo is not None and s.hi is not None else value
                syms = self.value_tokens(s, value)[: s.width]
            tokens[s.start : s.start + s.width] = (syms + [END] * s.width)[: s.width]
        elif isinstance(node, ObjectNode):
            value = value if isinstance(value, dict) else {}
            for name, child, presence in node.fields:
                has = name in value
                if presence is not None:
                    tokens[presence.start] = self.vocab.choice_ids[(presence.key, canonical(has))]
                    if not has:
                        continue
                self._encode(child, value.get(name), tokens)
        elif isinstance(node, ArrayNode):
            value = value if isinstance(value, list) else []
            n = min(len(value), len(node.items))
            if node.count is not None:
                n = max(n, min(node.count.choices))
                tokens[node.count.start] = self.vocab.choice_ids[(node.count.key, canonical(n))]
            for i in range(n):
                self._encode(node.items[i], value[i] if i < len(value) else None, tokens)

    def decode(self, tokens: list[int]) -> Any:
        """The JSON value a filled canvas spells; raises DecodeError when it spells none."""
        if MASK in tokens:
            raise DecodeError("the canvas still has masked positions")
        return self.root.render(list(tokens), self.vocab)

    def render_text(self, tokens: list[int]) -> str:
        return json.dumps(self.decode(tokens), ensure_ascii=False)

    # -- display --------------------------------------------------------------------------------

    def skeleton(self) -> str:
        """The canvas as text: fixed structure, ▮ for value symbols, ⟨a|b⟩ for choices."""
        return self.root.skeleton()

    def leaf_slots(self) -> Iterator[Slot]:
        return (s for s in self.slots if s.role in ("enum", "") )

    def slots_for(self, path: str) -> list[Slot]:
        """Slots a prompt path names: exact ``$.a[0].b`` or every item with ``$.a[*].b``; also an
        array's length (``$.birds.length``) and an optional key's presence (``$.note?``)."""
        hits = [s for s in self.slots if s.role in ("enum", "", "count", "present") and (s.path == path or s.key == path)]
        if not hits:
            known = sorted({s.key for s in self.slots if s.role in ("enum", "")})
            raise InputError(f"no field {path!r} in the scaffold (fields: {', '.join(known)})")
        return hits

    def describe(self) -> list[dict[str, Any]]:
        """One row per slot, for tables in the app and the CLI."""
        rows = []
        for s in self.slots:
            rows.append(
                {
                    "path": s.path,
                    "kind": ("vocabulary" if s.mode == "vocabulary" else "text (pieces)" if s.pieces is not None
                             else s.role or s.vtype),
                    "positions": f"{s.start}..{s.start + s.width - 1}",
                    "width": s.width,
                    "nullable": s.nullable or (s.kind == "choice" and None in s.choices),
                    "constraint": _constraint_text(s),
                    "gated_by": None if s.gate is None else next(g.path for g in self.slots if g.start == s.gate),
                }
            )
        return rows


def _constraint_text(s: Slot) -> str:
    if s.kind == "choice" and s.mode == "vocabulary":
        shown = " | ".join(canonical(c) for c in s.choices[:6]) + (" | …" if len(s.choices) > 6 else "")
        return f"one of the seeds' {len(s.choices)} values ({shown})" + (", or a new value" if s.new_variant is not None else "")
    if s.kind == "choice":
        return " | ".join(canonical(c) for c in s.choices)
    if s.pieces is not None:
        return f"text up to {s.max_chars} chars, written in word pieces ({len(s.symbols)} trained on the seeds)"
    if s.vtype in ("integer", "number"):
        lo = "-∞" if s.lo is None else s.spell(s.lo)
        hi = "∞" if s.hi is None else s.spell(s.hi)
        if s.number is not None and s.number.notation == "exponent":
            return f"{s.vtype} in [{lo}, {hi}], exponent notation, {s.decimals} mantissa decimals"
        bins = f", {len(s.bins)} bins at the seeds' quantiles" if s.bins else ""
        return f"{s.vtype} in [{lo}, {hi}], {s.decimals} decimals{bins}"
    if s.vtype == "date":
        return "date YYYY-MM-DD"
    extra = f", pattern {s.extra[0]}" if s.extra else ""
    return f"string up to {s.width} chars{extra}"


def _resolve_gate(spec, controller: Slot, vocab: Vocab) -> frozenset[int]:
    """Turn a gate spec from building into the controller tokens that switch a slot on."""
    kind, key, *rest = spec
    if kind == "present":
        return frozenset({vocab.choice_ids[(controller.key, canonical(True))]})
    index = rest[0]
    if kind == "variant":
        return frozenset(t for t, c in zip(controller.tokens, controller.choices) if c == index)
    return frozenset(t for t, c in zip(controller.tokens, controller.choices) if c > index)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)

