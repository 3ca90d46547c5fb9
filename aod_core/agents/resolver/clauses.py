"""The resolver itself: the text cut into clauses, and each clause read into edits or a report.

``Resolver.resolve`` cuts the text at punctuation and joining words (module docstring of the
package, step 1), finds each clause's value and field mentions, hands the clause to the wishes
(``numbers.py``, ``values.py``), and reports a clause nothing mapped: as unmapped with the reason,
or as pending (words left over that the compiler's chat model may still map).
"""

from __future__ import annotations

import re
from typing import Any

from aod_core.agents.resolver.edits import Pending, Resolution, Unmapped
from aod_core.agents.resolver.numbers import NumberWishes
from aod_core.agents.resolver.tokens import Mention, Tok, field_score, tokenize
from aod_core.agents.resolver.values import ValueWishes
from aod_core.agents.resolver.vocabulary import (
    AROUND_WORDS,
    EXACT_WORDS,
    FEWER,
    KNOWN,
    MORE,
    MOST,
    NEGATE,
    ONLY,
    REALISM_WORDS,
)
from aod_core.agents.word_forms import fold, stopwords
from aod_core.agents.wording import FieldWords, Lexicon

_SPLIT = re.compile(r"[;,!?]|\.(?!\d)|\bbut\b|\bwhile\b|\bwhereas\b|\bhowever\b|\balso\b", re.IGNORECASE)


class Resolver(NumberWishes, ValueWishes):
    """Instruction text -> edits, for one scaffold's lexicon (see the package docstring). The
    wishes a clause is read for are the methods of its two mixins."""

    def __init__(self, lexicon: Lexicon):
        self.lex = lexicon
        self.stop = stopwords()
        self._forms: list[tuple[tuple[str, ...], FieldWords, Any, str]] = []
        for f in lexicon.fields:
            for form, value in f.forms.items():
                self._forms.append((tuple(form.split()), f, value, form))
        self._forms.sort(key=lambda x: -len(x[0]))
        self.sampling_temperature_is_field = any(any(w.startswith("temp") for w in f.strong) for f in lexicon.fields)

    # -- clauses ------------------------------------------------------------------------------

    def resolve(self, text: str) -> Resolution:
        res = Resolution()
        text = re.sub(r"\bu\.s\.a?\.?", "usa", text, flags=re.IGNORECASE)
        for part in _SPLIT.split(text):
            toks = tokenize(part)
            if not toks:
                continue
            for seg in self._segments(toks):
                self._segment(seg, res)
        # the same edit from two clauses once
        seen, edits = set(), []
        for e in res.edits:
            if e.key() not in seen:
                seen.add(e.key())
                edits.append(e)
        res.edits = edits
        return res

    def _value_mentions(self, toks: list[Tok]) -> list[Mention]:
        out: list[Mention] = []
        i = 0
        while i < len(toks):
            hit = None
            for words, f, value, form in self._forms:
                n = len(words)
                if i + n > len(toks) or tuple(t.low for t in toks[i : i + n]) != words:
                    continue
                if any(t.kind == "num" for t in toks[i : i + n]) and not f.choice:
                    continue
                written = " ".join(t.text for t in toks[i : i + n])
                # a short code or a common word ("IN", "OR", "ME" as states) counts only as written
                if (len(form) <= 2 or form in self.stop or form in NEGATE | ONLY | MOST) and written != str(value):
                    continue
                if f.kind == "count":
                    continue  # lengths are numbers with the array's noun, handled with numbers
                hit = (n, f, value)
                cands = [(f2, v2) for w2, f2, v2, _ in self._forms if w2 == words and f2 is not f]
                if hit:
                    m = Mention(i, i + n, f.key, value, True)
                    m.others = [(f2.key, v2) for f2, v2 in cands]  # type: ignore[attr-defined]
                    out.append(m)
                break
            i += hit[0] if hit else 1
        return out

    def _segments(self, toks: list[Tok]) -> list[list[Tok]]:
        """Cut at and / with / without, unless they join two values of a field or two numbers."""
        values = {m.start: m for m in self._value_mentions(toks)}
        ends = {m.end - 1: m for m in values.values()}
        segs, cur = [], []
        for i, t in enumerate(toks):
            if (
                i not in values
                and t.kind == "word"
                and t.low
                in ("and", "or", "with", "without", "plus", "nor", "having", "whose", "where", "which", "that")
            ):
                prev = ends.get(i - 1)
                nxt = values.get(i + 1)
                joins_values = (
                    t.low in ("and", "or", "nor") and prev is not None and nxt is not None and prev.key == nxt.key
                )
                if t.low in ("and", "or", "nor") and i + 2 < len(toks) and toks[i + 1].low in NEGATE:
                    joins_values = False
                between = (
                    t.low in ("and", "or")
                    and any(x.low in ("between", "from") for x in cur[-3:])
                    and cur
                    and cur[-1].kind == "num"
                )
                if not joins_values and not between and cur:
                    segs.append(cur)
                    cur = [t] if t.low in ("without", "nor") else []
                    continue
            cur.append(t)
        if cur:
            segs.append(cur)
        return segs

    # -- one clause ---------------------------------------------------------------------------

    def _segment(self, toks: list[Tok], res: Resolution) -> None:
        phrase = " ".join(t.text for t in toks)
        before = len(res.edits)
        problems: list[str] = []
        values = self._value_mentions(toks)
        for m in values:
            for t in toks[m.start : m.end]:
                t.used, t.tag = True, "value"
        fields = self._fields_named(toks)
        negated = any(t.low in NEGATE for t in toks if t.kind == "word")

        self._nulls(toks, fields, phrase, res, problems)
        self._temperature(toks, phrase, res, problems)
        self._numbers(toks, fields, phrase, res, problems)
        self._adjectives(toks, fields, phrase, res, problems, negated)
        self._values(toks, values, phrase, res, problems)
        self._presence(toks, fields, phrase, res, problems)

        for t in toks:
            if not t.used and (
                t.low in self.stop
                or t.low in self.lex.dataset_words
                or t.sing in self.lex.dataset_words
                or t.low in NEGATE | ONLY | MOST | MORE | FEWER | KNOWN
                or t.kind == "sym"
                or t.low in EXACT_WORDS | AROUND_WORDS
                or t.low in ("than", "least", "between", "to")
            ):
                t.used = True
        for f, toks_f in fields.items():
            for t in toks_f:
                t.used = True
        left = [t for t in toks if not t.used and t.kind == "word"]
        mapped = len(res.edits) > before
        if problems:
            for p in problems:
                res.unmapped.append(Unmapped(phrase, p))
            return
        if mapped:
            return
        if not left and not fields and not any(t.kind == "num" for t in toks):
            return  # only dataset words and filler ("penguins", "records"): nothing asked
        # what a chat model may cite: every word of the clause that is not filler
        words = [
            t.text
            for t in toks
            if t.kind == "word"
            and t.low not in self.stop
            and t.low not in self.lex.dataset_words
            and t.sing not in self.lex.dataset_words
        ] or [t.text for t in left]
        numbers = [t.num for t in toks if t.kind == "num" and t.num is not None]
        real = [t.text for t in left if t.low in REALISM_WORDS]
        near = self._near_miss(left)
        if near:
            res.unmapped.append(Unmapped(phrase, near))
            return
        if real and len(real) == len(left):
            res.unmapped.append(
                Unmapped(
                    phrase,
                    f"no field matches {real[0]!r}: realism is the judge's job (for "
                    "more typical values say 'more typical', which lowers the sampling temperature)",
                )
            )
            return
        if real:
            reason = f"no field matches {real[0]!r}: realism is the judge's job (for more typical values say 'more typical', which lowers the sampling temperature)"
        elif left:
            reason = f"no field or value matches {' '.join(t.text for t in left)!r}"
        elif fields:
            names = ", ".join(f.label for f in fields)
            reason = f"found {names} but no wish the compiler knows (use e.g. above / below / between, mostly, only, no, heavier / lighter)"
        else:
            reason = "nothing in this clause names a field or a value"
        res.pending.append(Pending(phrase, words, numbers, reason, [f.key for f in fields]))

    def _near_miss(self, left: list[Tok]) -> str | None:
        """A country-like word that no value of a country-valued field is ("German" for USA / Europe /
        Japan): say which values there are rather than widen the wish to a region."""
        from aod_core.agents.word_forms import COUNTRY_FORMS

        known = {form for forms in COUNTRY_FORMS.values() for form in forms} | set(COUNTRY_FORMS)
        for t in left:
            if t.low not in known:
                continue
            for f in self.lex.fields:
                if f.choice and any(fold(str(c)) in COUNTRY_FORMS for c in f.choices):
                    vals = ", ".join(str(c) for c in f.choices)
                    return f"{f.label} has no value for {t.text!r} (its values: {vals}); pin the one you mean"
        return None

    def _fields_named(self, toks: list[Tok]) -> dict[FieldWords, list[Tok]]:
        """Fields the clause names by their words, best-scoring first (ties kept)."""
        scores: dict[str, tuple[int, list[Tok]]] = {}
        for f in self.lex.fields:
            total, hit = 0, []
            for t in toks:
                if t.kind != "word" or t.used:
                    continue
                s = field_score(t, f)
                if s:
                    total += s
                    hit.append(t)
            if total:
                scores[f.key] = (total, hit)
        out: dict[FieldWords, list[Tok]] = {}
        for key, (s, hit) in sorted(scores.items(), key=lambda kv: -kv[1][0]):
            f = self.lex.by_key(key)
            # a field whose every word is also another, better-scoring field's word is not named
            if any(s < s2 and set(id(t) for t in hit) <= set(id(t) for t in h2) for s2, h2 in scores.values()):
                continue
            out[f] = hit
        return out
