"""Schema scaffold: the output canvas a diffusion generator fills.

The JSON skeleton (braces, keys in schema order, commas) is fixed structure; only *slots* are
denoised. A slot is either

* a **value slot**: ``width`` symbol positions holding an integer, number, string or date spelled
  character by character, END-padded (a value may end early), with NULL allowed at the first position
  when the schema allows null; its language is a DFA built from the schema (``automaton.py``); or
* a **choice slot**: one position holding one of a fixed set of tokens: an enum member, a boolean,
  an array length (``count``), or whether an optional property is present (``present``).

Array items past ``minItems`` and optional properties are *gated* by their controlling choice slot:
once the controller is decided, positions it switches off are filled with ABSENT and ignored.
Widths and array lengths come from the seeds (what the data actually uses), bounded by the schema.

The vocabulary is shared by every generator that works on this canvas: MASK, END, NULL, ABSENT,
the characters of the seeds' values, then one token per (schema node, choice).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterator

from .automaton import DATE_REGEX, compile_fsm, number_regex, pattern_regex, string_regex
from .errors import InputError

MASK, END, NULL, ABSENT = 0, 1, 2, 3
SPECIAL_TOKENS = ["<mask>", "<end>", "<null>", "<absent>"]
MAX_DECIMALS = 6
_DIGITS = "0123456789-."


def canonical(value: Any) -> str:
    """Stable text of a JSON value, used as the identity of a choice."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


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
    decimals: int = 0
    nullable: bool = False
    regex: str = ""
    extra: tuple[str, ...] = ()  # further regexes the value must also match (pattern)
    lo: float | None = None  # effective numeric range (schema, closed by the width)
    hi: float | None = None
    # choice slots
    role: str = ""  # enum | count | present
    choices: list[Any] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)

    @property
    def positions(self) -> range:
        return range(self.start, self.start + self.width)

    def spell(self, value: Any) -> str:
        """The characters a value slot holds for ``value`` (no padding); value must suit the slot."""
        if self.vtype == "integer" or (self.vtype == "number" and self.decimals == 0):
            return str(int(round(value)))
        if self.vtype == "number":
            return f"{value:.{self.decimals}f}"
        return str(value)

    def spell_checked(self, value: Any, what: str) -> str:
        """``spell`` for a user-given value (a pin, a forbid), refusing values the slot cannot hold
        exactly instead of rounding or stringifying them."""
        if self.vtype in ("integer", "number"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InputError(f"{what} {self.path}: {canonical(value)} is not a number")
            text = self.spell(value)
            if float(text) != float(value):
                grid = "a whole number" if self.vtype == "integer" or self.decimals == 0 else f"{self.decimals} decimals"
                raise InputError(f"{what} {self.path}: {value} is not on the field's grid ({grid})")
            return text
        if not isinstance(value, str):
            raise InputError(f"{what} {self.path}: {canonical(value)} is not a string")
        return value

    def parse(self, text: str) -> Any:
        if self.vtype == "integer" or (self.vtype == "number" and self.decimals == 0):
            return int(text)
        if self.vtype == "number":
            return float(text)
        return text


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
        if any(t != END for t in body[n:]) or any(t not in vocab.char_of for t in body[:n]):
            raise DecodeError(f"{s.path}: the slot is not a value followed by padding")
        if syms[0] == NULL:
            if n or not s.nullable:
                raise DecodeError(f"{s.path}: null where the field does not allow it")
            return None
        text = "".join(vocab.char_of[t] for t in body[:n])
        try:
            return s.parse(text)
        except ValueError:
            raise DecodeError(f"{s.path}: {text!r} is not a valid {s.vtype}") from None

    def skeleton(self) -> str:
        body = "▮" * self.slot.width
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


class DecodeError(ValueError):
    """A filled canvas that does not spell a value (only possible without constraints)."""


@dataclass
class Vocab:
    tokens: list[str]
    char_ids: dict[str, int]
    choice_ids: dict[tuple[str, str], int]  # (slot key, canonical value) -> token
    choice_value: dict[int, Any]

    def __post_init__(self) -> None:
        self.char_of = {i: ch for ch, i in self.char_ids.items()}

    def __len__(self) -> int:
        return len(self.tokens)


# ---- building ---------------------------------------------------------------------------------


def _types(schema: dict) -> list[str]:
    t = schema.get("type")
    if t is None:
        return []
    return [t] if isinstance(t, str) else list(t)


def _decimals(values: list[Any]) -> int:
    d = 0
    for v in values:
        if isinstance(v, float) and math.isfinite(v):
            exp = Decimal(repr(v)).as_tuple().exponent
            d = max(d, -exp if isinstance(exp, int) else 0)
    return min(d, MAX_DECIMALS)


def _infer_type(values: list[Any]) -> str:
    vals = [v for v in values if v is not None]
    if vals and all(isinstance(v, bool) for v in vals):
        return "boolean"
    if vals and all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
        return "integer"
    if vals and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
        return "number"
    if vals and all(isinstance(v, dict) for v in vals):
        return "object"
    if vals and all(isinstance(v, list) for v in vals):
        return "array"
    return "string"


class _Builder:
    def __init__(self, seeds: list[dict]):
        self.seeds = seeds
        self.slots: list[Slot] = []
        self.notes: list[str] = []
        self.chars: set[str] = set(_DIGITS)
        self.choice_keys: list[tuple[str, Any]] = []  # (slot key, value) in first-seen order
        self._choice_seen: set[tuple[str, str]] = set()

    def add(self, slot: Slot) -> Slot:
        slot.start = self.slots[-1].start + self.slots[-1].width if self.slots else 0
        self.slots.append(slot)
        return slot

    def choice(self, path: str, key: str, role: str, choices: list[Any], gate) -> Slot:
        for c in choices:
            if (key, canonical(c)) not in self._choice_seen:
                self._choice_seen.add((key, canonical(c)))
                self.choice_keys.append((key, c))
        return self.add(Slot(path=path, key=key, kind="choice", role=role, choices=list(choices), gate=gate[0], gate_tokens=gate[1]))

    def node(self, schema: dict, path: str, key: str, values: list[Any], gate) -> Node:
        present = [v for v in values if v is not _MISSING]
        if "const" in schema:
            return ConstNode(schema["const"])
        types = _types(schema)
        nullable = "null" in types
        if "enum" in schema:
            choices = list(schema["enum"])
            if not choices:
                raise InputError(f"schema at {path}: enum is empty")
            return ChoiceNode(self.choice(path, key, "enum", choices, gate))
        concrete = [t for t in types if t != "null"]
        if not concrete:
            if types == ["null"]:
                return ConstNode(None)
            concrete = [_infer_type(present)]
            self.notes.append(f"{path}: no type in the schema; generated as {concrete[0]} (inferred from the seeds)")
        if len(concrete) > 1:
            if set(concrete) == {"integer", "number"}:
                concrete = ["number"]
            else:
                self.notes.append(f"{path}: type union {concrete} is generated as {concrete[0]} only")
        kind = concrete[0]
        if kind == "boolean":
            return ChoiceNode(self.choice(path, key, "enum", [True, False] + ([None] if nullable else []), gate))
        if nullable and kind in ("object", "array"):
            self.notes.append(f"{path}: null is allowed by the schema but the scaffold always generates a {kind}")
        if kind == "object":
            return self.object(schema, path, key, present, gate)
        if kind == "array":
            return self.array(schema, path, key, present, gate)
        return ValueNode(self.value(schema, kind, nullable, path, key, present, gate))

    def object(self, schema, path, key, values, gate) -> Node:
        props: dict = schema.get("properties") or {}
        if not props:
            self.notes.append(f"{path}: object without properties is generated as {{}}")
            return ConstNode({})
        required = set(schema.get("required") or [])
        dicts = [v for v in values if isinstance(v, dict)]
        fields_: list[tuple[str, Node, Slot | None]] = []
        for name, sub in props.items():
            sub_path = f"{path}.{name}" if name.isidentifier() else f"{path}[{json.dumps(name)}]"
            sub_key = f"{key}.{name}" if name.isidentifier() else f"{key}[{json.dumps(name)}]"
            sub_values = [d.get(name, _MISSING) for d in dicts]
            seen = sum(v is not _MISSING for v in sub_values)
            presence = None
            child_gate = gate
            if name not in required and seen < len(dicts):
                if seen == 0:
                    self.notes.append(f"{sub_path}: optional and absent from every seed, so never generated")
                    continue
                presence = self.choice(f"{sub_path}?", f"{sub_key}?", "present", [True, False], gate)
                true_tok = ("present", sub_key)
                child_gate = (presence.start, true_tok)
            fields_.append((name, self.node(sub if isinstance(sub, dict) else {}, sub_path, sub_key, sub_values, child_gate), presence))
        return ObjectNode(fields_)

    def array(self, schema, path, key, values, gate) -> Node:
        items_schema = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        lists = [v for v in values if isinstance(v, list)]
        lo = int(schema.get("minItems", 0))
        seen_max = max((len(v) for v in lists), default=0)
        hi = min(int(schema.get("maxItems", seen_max)), seen_max)
        hi = max(hi, lo)
        count = None
        if hi > lo:
            count = self.choice(f"{path}.length", f"{key}.length", "count", list(range(lo, hi + 1)), gate)
        all_items = [x for v in lists for x in v]
        items = []
        for i in range(hi):
            item_gate = gate if (count is None or i < lo) else (count.start, ("count", f"{key}.length", i))
            items.append(self.node(items_schema, f"{path}[{i}]", f"{key}[*]", all_items, item_gate))
        return ArrayNode(items, count)

    def value(self, schema, kind, nullable, path, key, values, gate) -> Slot:
        vals = [v for v in values if v is not None]
        slot = Slot(path=path, key=key, kind="value", vtype=kind, nullable=nullable, gate=gate[0], gate_tokens=gate[1])
        if kind in ("integer", "number"):
            slot.decimals = 0 if kind == "integer" else _decimals(vals)
            lo, hi, xlo, xhi = _bounds(schema)
            if lo is None or hi is None:
                # Close an open end one integer digit past what the seeds and the schema's other
                # bound use: the model cannot learn magnitudes it never saw, and a slot needs a width.
                nums = [abs(v) for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
                nums += [abs(b) for b in (lo, hi) if b is not None]
                digits = len(str(int(max(nums, default=0)))) + 1
                top = 10**digits - 10 ** (-slot.decimals) if slot.decimals else 10**digits - 1
                lo, xlo = (-top, False) if lo is None else (lo, xlo)
                hi, xhi = (top, False) if hi is None else (hi, xhi)
            slot.lo, slot.hi = lo, hi
            try:
                slot.regex = number_regex(lo, hi, slot.decimals, exclusive_lo=xlo, exclusive_hi=xhi)
            except ValueError as e:
                raise InputError(f"schema at {path}: {e}") from None
            width = max(len(slot.spell(lo)), len(slot.spell(hi)))
        else:
            if kind == "string" and schema.get("format") == "date":
                slot.vtype = "date"
                slot.regex = DATE_REGEX
                width = 10
            else:
                strs = [v for v in vals if isinstance(v, str)]
                self.chars.update(ch for s in strs for ch in s if ch >= " ")
                min_len = int(schema.get("minLength", 0))
                max_len = schema.get("maxLength")
                width = max([len(s) for s in strs] + [min_len, 1])
                if max_len is not None:
                    width = min(width, int(max_len))
                slot.regex = string_regex(min_len, width)
            if isinstance(schema.get("pattern"), str):
                regex = pattern_regex(schema["pattern"])
                try:
                    compile_fsm(regex)
                    slot.extra = (regex,)
                except Exception as e:  # interegular raises several types for syntax it lacks
                    self.notes.append(f"{path}: pattern {schema['pattern']!r} is not enforced by the scaffold "
                                      f"({type(e).__name__}: {e}); records are still validated against it")
        slot.width = max(width, 1)
        return self.add(slot)


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


def _bounds(schema: dict) -> tuple[float | None, float | None, bool, bool]:
    lo, hi = schema.get("minimum"), schema.get("maximum")
    xlo = xhi = False
    ex_lo, ex_hi = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if isinstance(ex_lo, (int, float)) and not isinstance(ex_lo, bool) and (lo is None or ex_lo >= lo):
        lo, xlo = ex_lo, True
    if isinstance(ex_hi, (int, float)) and not isinstance(ex_hi, bool) and (hi is None or ex_hi <= hi):
        hi, xhi = ex_hi, True
    return lo, hi, xlo, xhi


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
    def build(cls, schema: dict, seeds: list[dict]) -> Scaffold:
        """Lay out the canvas for a resolved (``$ref``-free) object schema."""
        b = _Builder(seeds)
        root = b.node(schema, "$", "$", list(seeds), (None, frozenset()))
        if not b.slots:
            raise InputError("the schema leaves nothing to generate: every field is a constant")
        tokens = list(SPECIAL_TOKENS)
        char_ids = {}
        for ch in sorted(b.chars):
            char_ids[ch] = len(tokens)
            tokens.append(ch)
        choice_ids: dict[tuple[str, str], int] = {}
        choice_value: dict[int, Any] = {}
        for key, value in b.choice_keys:
            ident = (key, canonical(value))
            if ident not in choice_ids:
                choice_ids[ident] = len(tokens)
                choice_value[len(tokens)] = value
                tokens.append(f"⟨{key}={canonical(value)}⟩")
        vocab = Vocab(tokens, char_ids, choice_ids, choice_value)
        slot_at = {s.start: s for s in b.slots}
        for s in b.slots:
            if s.kind == "choice":
                s.tokens = [choice_ids[(s.key, canonical(c))] for c in s.choices]
            if s.gate is not None:
                s.gate_tokens = _resolve_gate(s.gate_tokens, slot_at[s.gate], vocab)
        return cls(root=root, slots=b.slots, vocab=vocab, notes=b.notes)

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
        elif isinstance(node, ValueNode):
            s = node.slot
            if value is None:
                syms = [NULL]
            else:
                text = s.spell(value)[: s.width]
                syms = [self.vocab.char_ids.get(ch, END) for ch in text]
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
        """Slots a prompt path names: exact ``$.a[0].b`` or every item with ``$.a[*].b``."""
        hits = [s for s in self.slots if s.role in ("enum", "") and (s.path == path or s.key == path)]
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
                    "kind": s.role or s.vtype,
                    "positions": f"{s.start}..{s.start + s.width - 1}",
                    "width": s.width,
                    "nullable": s.nullable or (s.kind == "choice" and None in s.choices),
                    "constraint": _constraint_text(s),
                    "gated_by": None if s.gate is None else next(g.path for g in self.slots if g.start == s.gate),
                }
            )
        return rows


def _constraint_text(s: Slot) -> str:
    if s.kind == "choice":
        return " | ".join(canonical(c) for c in s.choices)
    if s.vtype in ("integer", "number"):
        return f"{s.vtype} in [{s.spell(s.lo)}, {s.spell(s.hi)}], {s.decimals} decimals"
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
    return frozenset(t for t, c in zip(controller.tokens, controller.choices) if c > index)

