"""The number wishes: comparisons, ranges and exact numbers in the field's unit, array lengths,
and the adjectives of size and time ("heavier", "longest", "newer").

A number's field is the one the clause names, else the one whose unit measures the same thing,
else the one whose seed range holds the number; an adjective's field is decided by the unit's
dimension (heavier: a mass) when the clause names none. Two candidate fields is an ambiguity,
reported.
"""

from __future__ import annotations

import math

from aod_core.agents.resolver.edits import Edit, num_text
from aod_core.agents.resolver.tokens import Tok, field_score
from aod_core.agents.resolver.vocabulary import (
    ADJECTIVES,
    AROUND,
    AROUND_WORDS,
    EXACT_WORDS,
    LOWER,
    SUPERLATIVE,
    TWO_WORD,
    UPPER,
)
from aod_core.agents.word_forms import convert, dimension
from aod_core.agents.wording import FieldWords, Lexicon


class NumberWishes:
    """The resolver's number wishes (a mixin of :class:`~aod_core.agents.resolver.clauses.Resolver`)."""

    lex: Lexicon

    def _comparator(self, toks: list[Tok], i: int) -> tuple[str, bool, list[Tok]] | None:
        """The comparator just before number ``i``: ("lo"|"hi"|"around"|"exact", inclusive, its tokens)."""
        prev = [t for t in toks[max(0, i - 3) : i]]
        for a, b in zip(prev, prev[1:]):
            if (a.low, b.low) in TWO_WORD:
                side, inc = TWO_WORD[(a.low, b.low)]
                return side, inc, [a, b]
        for t in reversed(prev):
            if t.low in LOWER:
                return "lo", LOWER[t.low], [t]
            if t.low in UPPER:
                return "hi", UPPER[t.low], [t]
            if t.low in AROUND_WORDS:
                return "around", True, [t]
            if t.low in EXACT_WORDS:
                return "exact", True, [t]
            if t.kind == "word" and t.low not in ("than", "the", "a", "of") and not t.used:
                break
        return None

    def _numbers(self, toks, fields, phrase, res, problems) -> None:
        nums = [
            i
            for i, t in enumerate(toks)
            if t.kind in ("num", "decade")
            and not t.used
            and not (i + 1 < len(toks) and toks[i + 1].low in ("%", "percent"))
        ]
        if not nums:
            return
        # pair up "between A and B" / "from A to B" / "A to B"
        i = 0
        groups: list[tuple[list[int], str, bool, list[Tok]]] = []
        while i < len(nums):
            a = nums[i]
            t = toks[a]
            if t.kind == "decade":
                groups.append(([a], "decade", True, []))
                i += 1
                continue
            if i + 1 < len(nums):
                b = nums[i + 1]
                mid = toks[a + 1 : b]
                if b - a <= 3 and any(x.low in ("and", "to", "through", "-") for x in mid):
                    cues = [x for x in toks[max(0, a - 2) : a] if x.low in ("between", "from")] + mid
                    groups.append(([a, b], "between", True, cues))
                    i += 2
                    continue
            cmp = self._comparator(toks, a)
            if cmp is None:
                after = toks[a + 1 : a + 3]
                if any(x.low in ("or", "plus") for x in after) and any(
                    x.low in ("more", "above", "over", "greater") for x in after
                ):
                    cmp = ("lo", True, after)
                elif any(x.low in ("or",) for x in after) and any(
                    x.low in ("less", "fewer", "below", "under") for x in after
                ):
                    cmp = ("hi", True, after)
                elif toks[a + 1 : a + 2] and toks[a + 1].low in ("+",):
                    cmp = ("lo", True, after[:1])
            side, inc, cues = cmp if cmp else ("exact", True, [])
            groups.append(([a], side, inc, cues))
            i += 1
        for idx, side, inc, cues in groups:
            ntoks = [toks[j] for j in idx]
            if len(ntoks) == 2 and (ntoks[0].unit is None) != (ntoks[1].unit is None):
                ntoks[0].unit = ntoks[0].unit or ntoks[1].unit  # "between 19 and 21 cm"
                ntoks[1].unit = ntoks[1].unit or ntoks[0].unit
            if (
                side == "lo"
                and any(c.low == "from" for c in cues)
                and not any(
                    x.low in ("onwards", "onward", "on", "up", "upwards") for x in toks[idx[-1] + 1 : idx[-1] + 3]
                )
            ):
                side = "exact"  # "penguins from 2009": that year; "from 2008 on": a lower bound
            f, why = self._number_field(toks, ntoks, fields, side)
            if f is None:
                problems.append(why)
                for t in ntoks:
                    t.used = True
                continue
            values = []
            for t in ntoks:
                v = self._in_unit(t, f)
                if isinstance(v, str):
                    problems.append(v)
                    values = None
                    break
                values.append(v)
            for t in ntoks + list(cues):
                t.used = True
            if values is None:
                continue
            self._number_edit(f, side, inc, values, ntoks, phrase, res, problems)

    def _number_field(self, toks, ntoks, fields, side) -> tuple[FieldWords | None, str]:
        t = ntoks[0]
        text = " ".join(x.text for x in ntoks)
        numeric = [f for f in fields if f.numeric or f.kind == "count"]
        # an array's length: the number is followed by the array's noun ("3 birds", "groups of 2 birds")
        last = toks.index(ntoks[-1])
        nxt = [x for x in toks[last + 1 : last + 3] if x.kind == "word"]
        for f in self.lex.fields:
            if f.kind == "count" and nxt and (nxt[0].low in f.strong or nxt[0].sing in f.strong):
                nxt[0].used = True
                return f, ""
        if t.kind == "decade" or (
            t.unit is None
            and any(x.low in ("after", "before", "since", "until") for x in toks)
            and 1000 <= (t.num or 0) <= 2999
        ):
            years = [f for f in self.lex.fields if f.numeric and "year" in f.strong]
            if len(years) == 1:
                return years[0], ""
            dates = [f for f in self.lex.fields if f.kind == "date"]
            if dates and not years:
                return None, f"{text}: dates cannot be bounded by a range in the scaffold (only numbers can)"
        if len(numeric) == 1:
            return numeric[0], ""
        cands = numeric or [f for f in self.lex.fields if f.numeric]
        if t.unit is not None:
            dim_of = dimension(t.unit)
            same = [f for f in cands if f.dim == dim_of]
            if not same:
                if numeric:
                    return None, f"{text} does not measure what {', '.join(f.label for f in numeric)} measures"
                return None, f"no field is measured in {t.unit.replace('_', ' ')} ({text})"
            cands = same
        if len(cands) > 1:
            inside = []
            for f in cands:
                vals = [self._in_unit(x, f) for x in ntoks]
                rng = f.seed_range
                if rng and all(isinstance(v, float) and rng[0] <= v <= rng[1] for v in vals):
                    inside.append(f)
            if len(inside) == 1:
                return inside[0], ""
            if inside:
                cands = inside
        if len(cands) == 1:
            return cands[0], ""
        if not cands:
            return None, f"no numeric field for {text}"
        return None, f"{text} could be {' or '.join(f.label for f in cands)}; name the field"

    def _in_unit(self, t: Tok, f: FieldWords) -> float | str:
        if t.unit is None or f.unit is None:
            if t.unit is not None and f.unit is None and f.kind != "count":
                return f"{t.text} {t.unit.replace('_', ' ')}: {f.label} has no unit to convert to"
            return float(t.num)
        v = convert(float(t.num), t.unit, f.unit)
        if v is None:
            return f"{t.text} {t.unit} does not measure what {f.label} measures ({f.unit.replace('_', ' ')})"
        return v

    def _number_edit(self, f, side, inc, values, ntoks, phrase, res, problems) -> None:
        written = " ".join(t.text + (f" {t.unit.replace('_', ' ')}" if t.unit else "") for t in ntoks)
        if f.kind == "count":
            self._count_edit(f, side, inc, values, written, phrase, res, problems)
            return
        lo_b = -math.inf if f.lo is None else f.lo
        hi_b = math.inf if f.hi is None else f.hi
        if side == "decade":
            lo, hi = values[0], values[0] + 9
        elif side == "between":
            lo, hi = sorted(values)
        elif side == "around":
            d = max(abs(values[0]) * AROUND, f.grid())
            lo, hi = values[0] - d, values[0] + d
        elif side == "lo":
            lo, hi = values[0] + (0 if inc else f.grid() / 2), hi_b
        elif side == "hi":
            lo, hi = lo_b, values[0] - (0 if inc else f.grid() / 2)
        else:
            v = f.snap(values[0], "nearest")
            if abs(v - values[0]) > 1e-9 or not lo_b <= v <= hi_b:
                problems.append(
                    f"{written}: {f.label} cannot hold {num_text(round(values[0], 6))} exactly "
                    f"(range [{num_text(f.lo)}, {num_text(f.hi)}], {f.decimals} decimals)"
                )
                return
            res.edits.append(_pin(f, v, phrase, f"{f.label} = {written}"))
            return
        lo, hi = max(lo, lo_b), min(hi, hi_b)
        lo, hi = f.snap(lo, "up"), f.snap(hi, "down")
        if lo == hi:
            res.edits.append(_pin(f, lo, phrase, f"{f.label} {side_text(side, inc)} {written}: one value left"))
            return
        if lo > hi:
            problems.append(
                f"{written}: no value of {f.label} is left in the field's range [{num_text(f.lo)}, {num_text(f.hi)}]"
            )
            return
        res.edits.append(
            Edit("range", f.key, lo=lo, hi=hi, phrase=phrase, why=f"{f.label} {side_text(side, inc)} {written}")
        )

    def _count_edit(self, f, side, inc, values, written, phrase, res, problems) -> None:
        choices = [c for c in f.choices if isinstance(c, int)]
        v = values[0]
        if side == "exact":
            keep = [c for c in choices if c == v]
        elif side == "between":
            keep = [c for c in choices if min(values) <= c <= max(values)]
        elif side == "lo":
            keep = [c for c in choices if c > v or (inc and c == v)]
        elif side == "hi":
            keep = [c for c in choices if c < v or (inc and c == v)]
        else:
            keep = [c for c in choices if abs(c - v) <= 1]
        if not keep:
            problems.append(f"{written}: {f.label} is {min(choices)} to {max(choices)} here")
            return
        if len(keep) == 1:
            res.edits.append(Edit("pin", f.key, keep[0], phrase=phrase, why=f"{f.label} = {keep[0]}"))
            return
        for c in choices:
            if c not in keep:
                res.edits.append(
                    Edit("forbid", f.key, c, phrase=phrase, why=f"{f.label} {side_text(side, inc)} {written}")
                )

    def _adjectives(self, toks, fields, phrase, res, problems, negated) -> None:
        for i, t in enumerate(toks):
            if t.used or t.kind != "word" or t.low not in ADJECTIVES:
                continue
            if t.low in ("more", "less", "fewer", "increase", "reduce"):
                nxt = [x for x in toks[i + 1 : i + 4] if x.kind == "word"]
                if not nxt or not any(field_score(x, f) for x in nxt for f in fields if f.numeric):
                    continue  # "more Gentoo" is a value wish; "more varied" a temperature
            direction, sel = ADJECTIVES[t.low]
            if negated and any(x.low in ("not", "no", "never") for x in toks[max(0, i - 2) : i]):
                direction = -direction
            named = [f for f in fields if f.numeric]
            if sel is not None and named:
                fit = [f for f in named if _selects(sel, f)]
                named = fit or named if sel is None else fit
            if named:
                cands = named
            elif sel is None:
                continue  # "big" with no field named: nothing to go on
            else:
                cands = [f for f in self.lex.fields if f.numeric and _selects(sel, f)]
            t.used = True
            if not cands:
                problems.append(f"no field measures what {t.text!r} describes")
                continue
            if len(cands) > 1:
                best = [f for f in cands if fields.get(f)]
                if len(best) != 1:
                    problems.append(f"{t.text!r} could mean {' or '.join(f.label for f in cands)}; name the field")
                    continue
                cands = best
            f = cands[0]
            for x in fields.get(f, []):
                x.used = True
            if f.median is None:
                problems.append(f"{f.label}: the seeds have no values to compare with")
                continue
            vals = sorted(f.seed_values)
            sup = t.low in SUPERLATIVE or any(x.low in ("very", "extremely", "really") for x in toks[max(0, i - 2) : i])
            q = _quantile(vals, 0.75 if direction > 0 else 0.25) if sup else f.median
            lo_b = f.lo if f.lo is not None else min(vals)
            hi_b = f.hi if f.hi is not None else max(vals)
            if direction > 0:
                lo, hi = f.snap(q, "up"), f.snap(hi_b, "down")
                where = "upper quartile" if sup else "median"
            else:
                lo, hi = f.snap(lo_b, "up"), f.snap(q, "down")
                where = "lower quartile" if sup else "median"
            res.edits.append(
                Edit(
                    "range",
                    f.key,
                    lo=lo,
                    hi=hi,
                    phrase=phrase,
                    why=f"{t.text}: {'above' if direction > 0 else 'below'} the seeds' {where} of {f.label} ({num_text(round(q, 6))})",
                )
            )


def side_text(side: str, inc: bool) -> str:
    return {
        "lo": "at least" if inc else "above",
        "hi": "at most" if inc else "below",
        "between": "between",
        "around": "around",
        "decade": "in",
        "exact": "=",
    }[side]


def _selects(sel: str, f: FieldWords) -> bool:
    if sel == "time":
        return "year" in f.strong or f.kind == "date"
    if sel.startswith("["):
        return f.dim == sel
    return sel in f.strong


def _quantile(vals: list[float], q: float) -> float:
    import statistics

    return statistics.quantiles(vals, n=4, method="inclusive")[0 if q < 0.5 else 2] if len(vals) > 1 else vals[0]


def _pin(f: FieldWords, value: float, phrase: str, why: str) -> Edit:
    """A pin of a numeric field to one value, written as an integer where the field holds integers."""
    return Edit("pin", f.key, int(value) if f.kind == "integer" or f.decimals == 0 else value, phrase=phrase, why=why)
