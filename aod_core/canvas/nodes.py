"""The render tree: how a filled canvas becomes a JSON value, and how the canvas is shown as text.

The layout (``layout.py``) builds one node per schema node: constants, value and choice slots,
objects (optional keys gated by a presence slot), arrays (items past ``minItems`` gated by a count
slot) and unions (alternatives gated by a variant slot). ``render`` reads a filled canvas back
through the tree, skipping what the gates switched off; ``skeleton`` draws the canvas with its
fixed structure. A canvas that spells no value raises ``DecodeError`` (only possible when it was
filled without constraints).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

from aod_core.canvas.slots import END, NULL, Slot, Vocab, canonical


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
        body = (
            ("▦" * self.slot.width)
            if self.slot.pieces is not None
            else (("◆" if self.slot.bins else "") + "▮" * (self.slot.width - (1 if self.slot.bins else 0)))
        )
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
