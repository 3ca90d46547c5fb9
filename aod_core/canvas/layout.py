"""The layout: where every slot of a schema's canvas goes, decided from the schema and the seeds.

``LayoutBuilder`` walks a resolved (``$ref``-free, except recursive ``$ref``) schema and lays out
slots left to right. Array items past ``minItems``, optional properties and the alternatives of a
union (``oneOf``/``anyOf``, a type union, ``dependentRequired``/``dependentSchemas``) are *gated*
by their controlling choice slot: once the controller is decided, positions it switches off are
filled with ABSENT and ignored. Widths, array lengths, the keys of map-like objects, the
alternatives used and the depth of recursive schemas come from the seeds (what the data actually
uses), bounded by the schema and by budgets: a schema and seeds whose canvas would exceed them are
refused with one line (``MAX_CANVAS`` positions, ``MAX_LAYOUT_STATES`` automaton states' worth of
compiling, ``MAX_LEARNED_KEYS`` learned keys per object, ``MAX_RECURSION`` levels per recursive
``$ref``). Every budget is a count, never a clock: the same schema and seeds get the same canvas
(or the same refusal) on a busy machine as on an idle one.
Leaves are written by ``values.LeafBuilder``.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from aod_core.canvas.automaton import spent
from aod_core.canvas.nodes import ArrayNode, ChoiceNode, ConstNode, Node, ObjectNode, UnionNode
from aod_core.canvas.slots import Slot, canonical
from aod_core.canvas.values import CanvasOptions, LeafBuilder
from aod_core.data.allof import merge
from aod_core.data.limits import max_choices
from aod_core.data.patterns import UnsafePattern, search
from aod_core.data.schema import resolved_validator
from aod_core.errors import BudgetExceeded, InputError

_DIGITS = "0123456789-."  # in every vocabulary: numbers are spelled with them
# Budgets: a schema and seeds whose canvas would exceed them are refused with one line.
MAX_CANVAS = 1536  # positions: on one CPU core a longer canvas takes more than 2 minutes to fit and sample
# States' worth of transitions all the slots' automata may cost to compile (``automaton.spent``):
# about half a minute of compiling on one core, counted instead of timed.
MAX_LAYOUT_STATES = 8_000_000
MAX_LEARNED_KEYS = 32  # keys of one map-like object learned from the seeds
MAX_RECURSION = 24  # unrolled levels of one recursive $ref


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


class LayoutBuilder(LeafBuilder):
    """One layout in the making: the slots so far, the characters and choices the vocabulary will
    need, the notes for the user; ``node`` lays out one schema node."""

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
        self._spent_before = spent()
        self._valid_cache: dict[tuple[int, str], bool] = {}

    def add(self, slot: Slot) -> Slot:
        slot.start = self.slots[-1].start + self.slots[-1].width if self.slots else 0
        self.slots.append(slot)
        if slot.start + slot.width > MAX_CANVAS:
            raise BudgetExceeded(
                f"the scaffold for this schema and seeds grows past {MAX_CANVAS} positions "
                f"at {slot.path} (too many fields, array items or alternatives in the seeds)"
            )
        if spent() - self._spent_before > MAX_LAYOUT_STATES:
            raise BudgetExceeded(
                f"laying out the scaffold needs more than {MAX_LAYOUT_STATES:,} automaton states' worth of "
                f"compiling (at {slot.path}): simplify the patterns or formats of the schema"
            )
        return slot

    def choice(self, path: str, key: str, role: str, choices: list[Any], gate) -> Slot:
        # Every choice value is a token of the generator's vocabulary, which each fitting step scores
        # in full: an enum of 100,000 values left the fit at step 1 after 300 s. A huge enum is
        # refused before its values are walked; many smaller ones once their sum is past the limit.
        limit = max_choices()
        if len(choices) > limit:
            raise BudgetExceeded(
                f"{path}: an enum of {len(choices):,} values is more than the scaffold's {limit:,} choice "
                "values (set AOD_MAX_CHOICES to change it)"
            )
        for c in choices:
            if (key, canonical(c)) not in self._choice_seen:
                self._choice_seen.add((key, canonical(c)))
                self.choice_keys.append((key, c))
        if len(self._choice_seen) > limit:
            raise BudgetExceeded(
                f"{path}: the scaffold's choice values (enum members and the seeds' categories) pass "
                f"{limit:,} here (set AOD_MAX_CHOICES to change it)"
            )
        return self.add(
            Slot(path=path, key=key, kind="choice", role=role, choices=list(choices), gate=gate[0], gate_tokens=gate[1])
        )

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
                self.notes.append(
                    f"{path}: no type in the schema; generated as {concrete[0]} (inferred from the seeds)"
                )
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
        name = ref[len("#/$defs/") :].replace("~1", "/").replace("~0", "~")
        if name not in self.defs:
            raise InputError(f"schema at {path}: unresolvable $ref {json.dumps(ref)}")
        if not [v for v in values if v is not _MISSING]:
            raise InputError(
                f"recursive $ref at {path}: no seed shows how deep it goes, so the scaffold cannot bound it (add seeds that use it, or make it optional)"
            )
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
                    if (
                        "type" in base
                        and "type" in m
                        and _types(merged) == _types(base)
                        and merged.get("type") != m.get("type")
                    ):
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
            self.notes.append(
                f"{path}: {unused} of {len(alternatives)} alternatives are used by no seed, so never generated"
            )
        if len(used) == 1:
            return self.node(alternatives[used[0]], path, key, groups.get(used[0], []), gate)
        variant = self.choice(f"{path}|variant", f"{key}|variant", "variant", used, gate)
        nodes = {
            i: self.node(alternatives[i], path, f"{key}|{i}", groups[i], (variant.start, ("variant", key, i)))
            for i in used
        }
        return UnionNode(variant, nodes, classify)

    def object(self, schema, path, key, values, gate) -> Node:
        props: dict = dict(schema.get("properties") or {})
        required = list(schema.get("required") or [])
        dicts = [v for v in values if isinstance(v, dict)]
        for name in required:
            if name not in props:
                props[name] = self.key_schema(schema, name)
        if (
            not schema.get("properties")
            or "patternProperties" in schema
            or isinstance(schema.get("additionalProperties"), dict)
            or schema.get("additionalProperties") is True
        ):
            learned = Counter(k for d in dicts for k in d if k not in props and self.key_schema(schema, k) is not False)
            for name, _ in learned.most_common(MAX_LEARNED_KEYS):
                props[name] = self.key_schema(schema, name)
            if len(learned) > MAX_LEARNED_KEYS:
                self.notes.append(
                    f"{path}: the seeds use {len(learned)} different keys; the {MAX_LEARNED_KEYS} commonest are generated"
                )
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
                if search(pattern, name):  # RE2, as the validator matches it: a seed's key cannot stall the layout
                    return sub
            except UnsafePattern:
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
                sub_values = [x for v in lists for x in v[len(prefix) :]]
            items.append(self.node(sub if sub is not True else {}, f"{path}[{i}]", sub_key, sub_values, item_gate))
        return ArrayNode(items, count)
