"""The instruction compiler's chat-model step: the clauses its rules leave, asked as constrained JSON.

For a clause the resolver could not map (``Pending``), the chat model is asked for an edit through
a JSON schema whose paths and values are the scaffold's own (``llm_schema``), so it can only write
an applicable edit; an answer is kept only when the words it cites occur in the clause and are
close enough to the field it edits (``Grounding``, MiniLM cosine similarity).
"""

from __future__ import annotations

import math
from typing import Any

from aod_core.agents.resolver import MOSTLY, TYPICAL, VARIED, Edit, Pending
from aod_core.agents.word_forms import fold, singular, stopwords
from aod_core.agents.wording import FieldWords, Lexicon
from aod_core.canvas.slots import canonical

GROUND_SIMILARITY = 0.35  # cosine similarity (MiniLM) a cited word needs to the field it edits


def _words_schema(words: list[str]) -> dict[str, Any]:
    return {"type": "array", "items": {"enum": sorted(set(words))}, "minItems": 1, "maxItems": 3}


def llm_schema(lex: Lexicon, pending: Pending) -> dict[str, Any]:
    """The JSON Schema of one chat-model answer for one clause: refuse, or one edit whose path and
    value come from the scaffold, whose numbers come from the clause, citing the clause's words."""
    words = _words_schema(pending.words)
    branches: list[dict[str, Any]] = [
        {"type": "object", "properties": {"op": {"const": "none"}}, "required": ["op"], "additionalProperties": False}
    ]
    fields = [f for f in lex.fields if not pending.candidates or f.key in pending.candidates]

    def branch(ops: list[str], **props: Any) -> dict[str, Any]:
        p = {"op": {"enum": ops}, **props, "words": words}
        return {"type": "object", "properties": p, "required": list(p), "additionalProperties": False}

    # One branch per choice field (its values depend on the field); numeric and nullable fields
    # share a branch each, with the path an enum: a small grammar compiles and decodes fast.
    for f in fields:
        if f.kind in ("enum", "count") and f.choices:
            vals = [f.value_text(c) for c in f.choices]
            branches.append(branch(["pin", "forbid", "mostly", "fewer"], path={"const": f.key}, value={"enum": vals}))
    numeric = sorted(f.key for f in fields if f.numeric and f.median is not None)
    if numeric:
        branches.append(branch(["above_median", "below_median"], path={"enum": numeric}))
        if pending.numbers:
            branches.append(
                branch(
                    ["at_least", "at_most", "equal"],
                    path={"enum": numeric},
                    number={"enum": sorted(set(pending.numbers))},
                )
            )
    nullable = sorted(f.key for f in fields if f.nullable)
    if nullable:
        branches.append(branch(["forbid_null"], path={"enum": nullable}))
    branches.append(branch(["more_varied", "more_typical"]))
    return {"anyOf": branches}


def _edit_from_answer(lex: Lexicon, pending: Pending, a: dict[str, Any], spec: str) -> Edit | None:
    op = a.get("op")
    f = lex.by_key(a.get("path", "")) if a.get("path") else None
    common = {"phrase": pending.phrase, "source": spec}
    cited = " ".join(a.get("words") or [])
    if op in ("more_varied", "more_typical"):
        return Edit(
            "temperature",
            amount=VARIED if op == "more_varied" else TYPICAL,
            why=f"{op.replace('_', ' ')} ({cited})",
            **common,
        )
    if f is None:
        return None
    if op in ("pin", "forbid", "mostly", "fewer"):
        value = next((c for c in f.choices if f.value_text(c) == a.get("value")), None)
        if op in ("pin", "forbid"):
            return Edit(op, f.key, value, why=f"{op} {f.label} = {a.get('value')} ({cited})", **common)
        p0 = f.shares.get(canonical(value), 1.0 / max(1, len(f.choices)))
        target, direction = (MOSTLY, 1) if op == "mostly" else (p0 / 2, -1)
        amount = math.log(target / (1 - target)) - math.log(max(0.01, p0) / (1 - min(0.99, p0)))
        return Edit(
            "bias",
            f.key,
            value,
            amount=round(amount, 3),
            share=round(target, 3),
            direction=direction,
            why=f"{op} {a.get('value')} ({cited})",
            **common,
        )
    if op == "forbid_null":
        return Edit("forbid", f.key, None, why=f"no nulls in {f.label} ({cited})", **common)
    if op in ("above_median", "below_median") and f.median is not None:
        lo = (
            f.snap(f.median, "up")
            if op == "above_median"
            else f.snap(f.lo if f.lo is not None else min(f.seed_values), "up")
        )
        hi = (
            f.snap(f.hi if f.hi is not None else max(f.seed_values), "down")
            if op == "above_median"
            else f.snap(f.median, "down")
        )
        return Edit("range", f.key, lo=lo, hi=hi, why=f"{op.replace('_', ' ')} of {f.label} ({cited})", **common)
    if op in ("at_least", "at_most", "equal") and "number" in a:
        x = float(a["number"])
        if op == "equal":
            return Edit(
                "pin", f.key, int(x) if f.kind == "integer" else x, why=f"{f.label} = {a['number']} ({cited})", **common
            )
        lo = x if op == "at_least" else (f.lo if f.lo is not None else -math.inf)
        hi = x if op == "at_most" else (f.hi if f.hi is not None else math.inf)
        return Edit(
            "range",
            f.key,
            lo=f.snap(lo, "up"),
            hi=f.snap(hi, "down"),
            why=f"{op.replace('_', ' ')} {a['number']} ({cited})",
            **common,
        )
    return None


class Grounding:
    """Whether a chat model's edit rests on the words it cites (see the module docstring)."""

    def __init__(self, lex: Lexicon, *, semantic: bool = True):
        self.lex = lex
        self.semantic = semantic
        self._emb = None

    def _lexical(self, word: str, f: FieldWords, value: Any) -> bool:
        w, s = fold(word), singular(fold(word))
        if w in f.strong or s in f.strong or w in f.weak or s in f.weak:
            return True
        return value is not None and (
            w in {k for k, v in f.forms.items() if canonical(v) == canonical(value)} or s == fold(str(value))
        )

    def _embedder(self):
        if self._emb is None:
            from aod_core.eval import embedder

            self._emb = embedder.load() if self.semantic and embedder.available() else False
        return self._emb or None

    def check(self, edit: Edit, cited: list[str]) -> str | None:
        """None when grounded, else why not."""
        content = [w for w in cited if fold(w) not in stopwords()]
        if not content:
            return "the chat model cited no word of the clause that names anything"
        if edit.op == "temperature":
            from aod_core.agents.resolver import TYPICAL_WORDS, VARIED_WORDS

            if any(fold(w) in VARIED_WORDS | TYPICAL_WORDS for w in content):
                return None
            return f"the chat model's temperature change rests on {' '.join(content)!r}, which says nothing of variety"
        f = self.lex.by_key(edit.path)
        if f is None:
            return "the chat model named no field"
        if any(self._lexical(w, f, edit.value) for w in content):
            return None
        emb = self._embedder()
        if emb is None:
            return f"the chat model's {edit.describe()} is not grounded in {' '.join(content)!r}"
        import numpy as np

        texts = [" ".join(sorted(g.strong)) + ". " + g.description for g in self.lex.fields]
        vecs = emb.encode([" ".join(content)] + texts)
        sims = vecs[1:] @ vecs[0]
        best = int(np.argmax(sims))
        mine = next(i for i, g in enumerate(self.lex.fields) if g.key == f.key)
        if best != mine or sims[mine] < GROUND_SIMILARITY:
            return (
                f"the chat model's {edit.describe()} is not grounded in {' '.join(content)!r} "
                f"(closest field: {self.lex.fields[best].label}, similarity {float(sims[best]):.2f})"
            )
        return None
