"""The value wishes: pin, forbid or shift the share of a field's values ("only Gentoo", "no
Chinstrap", "mostly Biscoe", "30% female"), forbid nulls, keep or drop an optional key, and the
sampling temperature ("more varied", "more typical").

A share is a bias in logits from the seeds' share to the target (``MOSTLY`` for "mostly"), which the
compiler then measures on samples.
"""

from __future__ import annotations

import math

from aod_core.agents.resolver.edits import Edit
from aod_core.agents.resolver.tokens import Mention, field_score, names_field
from aod_core.agents.resolver.vocabulary import (
    CLASS_ALL,
    CLASS_NUMERIC,
    FEWER,
    KNOWN,
    MORE,
    MOST,
    MOSTLY,
    NEGATE,
    NULL_WORDS,
    ONLY,
    TYPICAL,
    TYPICAL_WORDS,
    VARIED,
    VARIED_WORDS,
)
from aod_core.agents.wording import Lexicon
from aod_core.canvas.slots import canonical


class ValueWishes:
    """The resolver's value wishes (a mixin of :class:`~aod_core.agents.resolver.clauses.Resolver`)."""

    lex: Lexicon
    sampling_temperature_is_field: bool

    def _nulls(self, toks, fields, phrase, res, problems) -> None:
        null_at = [i for i, t in enumerate(toks) if t.low in NULL_WORDS and not t.used and t.low != "none"]
        none_at = [
            i
            for i, t in enumerate(toks)
            if t.low == "none" and i + 1 < len(toks) and toks[i + 1].low in ("missing", "null", "unknown")
        ]
        known_at = [i for i, t in enumerate(toks) if t.low in KNOWN and not t.used]
        neg = any(t.low in NEGATE for t in toks)
        positive_known = known_at and not neg
        negated_null = null_at and neg
        negated_known = known_at and neg and any(toks[i - 1].low in ("not", "never", "un") for i in known_at if i)
        if not (negated_null or positive_known or none_at):
            return
        if negated_known:
            return
        targets = [f for f in fields if f.numeric or f.choice or f.kind in ("string", "date")]
        cls_numeric = any(t.low in CLASS_NUMERIC or t.sing in CLASS_NUMERIC for t in toks)
        if not targets:
            if cls_numeric:
                targets = [f for f in self.lex.fields if f.numeric and f.nullable]
            elif (
                positive_known
                and not any(t.low in ("everything", "every", "all", "always") for t in toks)
                and not null_at
            ):
                return  # "measured" alone is not a wish
            else:
                targets = [f for f in self.lex.fields if f.nullable]
        for i in null_at + known_at + none_at:
            toks[i].used = True
        for t in toks:
            if (
                t.low in NEGATE | CLASS_NUMERIC | CLASS_ALL
                or t.sing in CLASS_NUMERIC
                or t.low in ("every", "all", "always", "value", "values")
            ):
                t.used = True
        nullable = [f for f in targets if f.nullable]
        if not nullable:
            problems.append(f"{', '.join(f.label for f in targets)} is never null already")
            return
        for f in nullable:
            res.edits.append(Edit("forbid", f.key, None, phrase=phrase, why=f"no nulls in {f.label}"))
        for f in fields:
            for t in fields[f]:
                t.used = True
        fields.clear()

    def _temperature(self, toks, phrase, res, problems) -> None:
        words = [t for t in toks if t.kind == "word"]
        lows = {t.low for t in words}
        explicit = None
        for i, t in enumerate(toks):
            if t.low == "temperature" and (
                not self.sampling_temperature_is_field or (i and toks[i - 1].low == "sampling")
            ):
                nums = [x for x in toks[i + 1 : i + 4] if x.kind == "num" and x.unit is None]
                if nums:
                    explicit = (t, nums[0])
        if explicit:
            t, n = explicit
            if not 0.1 <= n.num <= 2.0:
                problems.append(f"sampling temperature {n.text} is outside [0.1, 2.0]")
                return
            for x in toks:
                if x.low in ("sampling", "temperature", "of", "to", "at", "set") or x is n:
                    x.used = True
            res.edits.append(
                Edit("temperature", amount=float(n.num), phrase=phrase, why="sampling temperature as written")
            )
            return
        varied = lows & VARIED_WORDS
        typical = lows & TYPICAL_WORDS
        if not (varied or typical):
            return
        less = bool(lows & ({"less", "fewer"} | NEGATE))
        up = (bool(varied) and not less) or (bool(typical) and less and not varied)
        if varied and typical:
            problems.append("asks for both more varied and more typical records")
            return
        for x in words:
            if x.low in varied | typical | {"more", "less", "fewer", "much", "very"}:
                x.used = True
        amount = VARIED if up else TYPICAL
        res.edits.append(
            Edit(
                "temperature",
                amount=amount,
                phrase=phrase,
                why=f"{'higher' if up else 'lower'} sampling temperature: {'more varied' if up else 'more typical'} values",
            )
        )

    def _values(self, toks, values, phrase, res, problems) -> None:
        if not values:
            return
        # runs of values of one field ("Gentoo and Adelie")
        runs: list[list[Mention]] = []
        for m in values:
            if (
                runs
                and runs[-1][-1].key == m.key
                and all(
                    t.low in ("and", "or", "nor", "&", "/") or t.kind == "sym" for t in toks[runs[-1][-1].end : m.start]
                )
            ):
                runs[-1].append(m)
            else:
                runs.append([m])
        prev_end = 0
        for run in runs:
            f = self.lex.by_key(run[0].key)
            others = getattr(run[0], "others", [])
            if others:
                named = [k for k, _ in others if any(field_score(t, self.lex.by_key(k)) == 2 for t in toks)]
                if names_field(toks, f):
                    pass
                elif len(named) == 1:
                    f = self.lex.by_key(named[0])
                    run = [Mention(m.start, m.end, f.key, next(v for k, v in others if k == f.key), True) for m in run]
                else:
                    labels = ", ".join([f.label] + [self.lex.by_key(k).label for k, _ in others])
                    problems.append(f"{toks[run[0].start].text!r} is a value of {labels}; name the field")
                    prev_end = run[-1].end
                    continue
            scope = [t for t in toks[prev_end : run[0].start] if t.kind in ("word", "num", "sym")]
            tail = [t for t in toks[run[-1].end : run[-1].end + 2] if t.kind == "word"]
            prev_end = run[-1].end
            cue = None
            pct = None
            for t in reversed(scope):
                if t.used:
                    continue  # a cue another wish took ("no" of "no nulls") is not this value's
                if t.low in NEGATE:
                    cue = "not"
                elif t.low in MOST:
                    cue = "most"
                elif t.low in ONLY:
                    cue = "only"
                elif t.low in MORE:
                    cue = "more"
                elif t.low in FEWER:
                    cue = "fewer"
                elif t.kind == "sym" and t.low == "%":
                    continue
                elif t.kind == "num" and not t.used:
                    nx = toks[toks.index(t) + 1] if toks.index(t) + 1 < len(toks) else None
                    if nx is not None and (nx.low == "%" or nx.low in ("percent", "per")):
                        pct = t
                        cue = "pct"
                if cue:
                    t.used = True
                    break
            if cue is None and tail and tail[0].low in ("only", "exclusively"):
                cue = "only"
                tail[0].used = True
            if cue == "pct":
                for x in toks:
                    if x.low in ("%", "percent", "per", "cent"):
                        x.used = True
            vals = [m.value for m in run]
            label = f.label
            if cue == "not":
                for v in vals:
                    res.edits.append(Edit("forbid", f.key, v, phrase=phrase, why=f"no {v} in {label}"))
                continue
            if cue in ("most", "pct", "more", "fewer"):
                if len(vals) > 1:
                    problems.append(
                        f"{cue_text(cue)} names {len(vals)} values of {label}; give each a share (e.g. '60% {vals[0]}')"
                    )
                    continue
                if not f.choice:
                    problems.append(
                        f"{label} is free text in this scaffold; {cue_text(cue)!r} needs a choice field (pin or forbid {vals[0]} instead)"
                    )
                    continue
                p0 = f.shares.get(canonical(vals[0]), 1.0 / max(1, len(f.choices)))
                direction = 1
                if cue == "most":
                    target = MOSTLY
                elif cue == "pct":
                    target = float(pct.num) / 100.0
                    if not 0.0 < target < 1.0:
                        if target >= 1.0:
                            res.edits.append(Edit("pin", f.key, vals[0], phrase=phrase, why=f"100% {vals[0]}"))
                        else:
                            res.edits.append(Edit("forbid", f.key, vals[0], phrase=phrase, why=f"0% {vals[0]}"))
                        continue
                    direction = 1 if target >= p0 else -1
                elif cue == "more":
                    target = min(0.95, p0 + max(0.15, (1 - p0) / 3))
                else:
                    target, direction = p0 / 2, -1
                res.edits.append(
                    Edit(
                        "bias",
                        f.key,
                        vals[0],
                        amount=round(_logit(target) - _logit(p0), 3),
                        share=round(target, 3),
                        direction=direction,
                        phrase=phrase,
                        why=f"{cue_text(cue)} {vals[0]}: seeds {p0:.0%}, target {'≥' if direction > 0 else '≤'} {target:.0%}",
                    )
                )
                continue
            # bare or "only": pin one value; several values of one field: forbid the others
            if len(vals) == 1:
                res.edits.append(Edit("pin", f.key, vals[0], phrase=phrase, why=f"{label} = {vals[0]}"))
            elif f.choice:
                rest = [c for c in f.choices if canonical(c) not in {canonical(v) for v in vals}]
                for c in rest:
                    res.edits.append(
                        Edit("forbid", f.key, c, phrase=phrase, why=f"only {' / '.join(map(str, vals))} in {label}")
                    )
            else:
                problems.append(f"{label} is free text: several values can be forbidden but not kept; pin one")

    def _presence(self, toks, fields, phrase, res, problems) -> None:
        for f in list(fields):
            if f.kind != "present":
                continue
            words = [t.low for t in toks]
            neg = any(w in ("without", "no", "never", "not") for w in words)
            res.edits.append(
                Edit("pin", f.key, not neg, phrase=phrase, why=f"{'without' if neg else 'with'} {f.label[:-8]}")
            )
            for t in fields[f]:
                t.used = True


def cue_text(cue: str) -> str:
    return {"most": "mostly", "pct": "a share of", "more": "more", "fewer": "fewer"}.get(cue, cue)


def _logit(p: float) -> float:
    p = min(0.99, max(0.01, p))
    return math.log(p / (1 - p))
