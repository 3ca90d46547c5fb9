"""Schema scaffold: the output canvas a diffusion generator fills.

The JSON skeleton (braces, keys in schema order, commas) is fixed structure; only *slots* are
denoised. A slot (``slots.py``) is either

* a **value slot**: ``width`` symbol positions holding an integer, number, string or date spelled
  character by character, END-padded (a value may end early), with NULL allowed at the first position
  when the schema allows null; its language is a DFA built from the schema (``automaton.py``); or
* a **choice slot**: one position holding one of a fixed set of tokens: an enum member, a boolean,
  an array length (``count``), whether an optional property is present (``present``), or which
  alternative of a ``oneOf``/``anyOf`` or type union the value takes (``variant``).

Where the slots go, and which choice slot gates which positions, is decided from the schema and the
seeds within a size and time budget (``layout.py``); how a leaf is written, plainly or realistically
(``CanvasOptions``: learned vocabularies, word pieces, coarse-to-fine numbers), is ``values.py``; the
tree that reads a filled canvas back as JSON is ``nodes.py``. This module holds the result,
``Scaffold``: the vocabulary shared by every generator that works on this canvas (MASK, END, NULL,
ABSENT, the characters of the seeds' values, word pieces and bin marks, then one token per (schema
node, choice)), records encoded onto the canvas and decoded from it, and the canvas described for
the app and the CLI.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterator

from aod_core.canvas.layout import LayoutBuilder
from aod_core.canvas.nodes import ArrayNode, ChoiceNode, ConstNode, DecodeError, Node, ObjectNode, UnionNode, ValueNode
from aod_core.canvas.slots import ABSENT, END, MASK, NULL, SPECIAL_TOKENS, Slot, Vocab, canonical, is_number
from aod_core.canvas.values import BIN_MARKS, CanvasOptions
from aod_core.errors import InputError


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
        b = LayoutBuilder(schema, seeds, options)
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
            if value is None or (s.number is not None and not is_number(value)):
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
        return (s for s in self.slots if s.role in ("enum", ""))

    def slots_for(self, path: str) -> list[Slot]:
        """Slots a prompt path names: exact ``$.a[0].b`` or every item with ``$.a[*].b``; also an
        array's length (``$.birds.length``) and an optional key's presence (``$.note?``)."""
        hits = [
            s for s in self.slots if s.role in ("enum", "", "count", "present") and (s.path == path or s.key == path)
        ]
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
                    "kind": (
                        "vocabulary"
                        if s.mode == "vocabulary"
                        else "text (pieces)"
                        if s.pieces is not None
                        else s.role or s.vtype
                    ),
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
        return f"one of the seeds' {len(s.choices)} values ({shown})" + (
            ", or a new value" if s.new_variant is not None else ""
        )
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
