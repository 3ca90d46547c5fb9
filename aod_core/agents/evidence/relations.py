"""Rules about how fields go together: values each plausible alone that the seeds never combine.

==================  =========================================================================
``conditional``     a number given a category (body mass given species): robust z-score against the
                    category's median and spread, as 0.5 z^2; kept when the category explains >= 10%
                    of the number's variance in the seeds
``dependency``      two numbers that move together (|Spearman| >= 0.5): residual of a Theil-Sen line,
                    robust z, as 0.5 z^2
``pair``            two categories the seeds never (or rarely) show together although both are common:
                    log((expected + 1) / (observed + 1)), expected = count(a) count(b) / n
``determines``      a functional dependency that holds in the seeds (each repeated value of A always
                    comes with the same B): broken -> 1 + log(1 + support)
``text-category``   a text value that reads like another category (a Toyota from the USA): naive Bayes
                    over its words, log P(best) - log P(given); kept when it predicts the category
``equal``           two integers equal in every seed (group_size and the number of birds): unequal -> 1
==================  =========================================================================
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aod_core.agents.evidence.rule import Rule
from aod_core.agents.evidence.tables import Columns, fmt, group_keys, label, show
from aod_core.agents.textmodel import words


def _robust_scale(resid: np.ndarray, floor: float) -> float:
    if len(resid) == 0:
        return floor
    mad = float(np.median(np.abs(resid - np.median(resid)))) * 1.4826
    if mad <= floor:
        mad = max(float(np.std(resid)), floor)
    return max(mad, floor)


def _describe_group(cols: Columns, fields: Sequence[str], i: int) -> str:
    out = []
    for f in fields:
        v = cols.keys(f)[i] if f.endswith("#month") else show(cols.values(f)[i])
        out.append(f"{label(f)} = {v}")
    return " and ".join(out)


@dataclass
class ConditionalRule(Rule):
    """``fields = (number, category[, category])``: the number given the combination of categories."""

    kind: str = "conditional"

    def _fit(self, cols, ctx):
        x, keys = cols.num(self.fields[0]), group_keys(cols, self.fields[1:])
        groups: dict[str, list[float]] = defaultdict(list)
        for v, k in zip(x, keys):
            if math.isfinite(v):
                groups[k].append(float(v))
        allx = x[np.isfinite(x)]
        floor = max(1e-9, 1e-6 * (float(np.ptp(allx)) if len(allx) else 1.0))
        self.stats: dict[str, tuple[float, float, float, float, int]] = {}
        resid = [v - float(np.median(vs)) for vs in groups.values() if len(vs) >= 2 for v in vs]
        pooled = _robust_scale(np.asarray(resid), floor)
        for k, vs in groups.items():
            if len(vs) < 2:
                continue
            a = np.asarray(vs)
            med = float(np.median(a))
            own = _robust_scale(a - med, floor) if len(a) >= 8 else pooled
            sd = math.sqrt((len(a) * own**2 + 5 * pooled**2) / (len(a) + 5))  # shrunk to the pooled spread
            self.stats[k] = (med, sd, float(a.min()), float(a.max()), len(a))
        self.active = bool(self.stats)

    def _stat(self, cols, ctx):
        x, keys = cols.num(self.fields[0]), group_keys(cols, self.fields[1:])
        out = np.full(cols.n, np.nan)
        for i, (v, k) in enumerate(zip(x, keys)):
            s = self.stats.get(k)
            if s is not None and math.isfinite(v):
                out[i] = 0.5 * ((v - s[0]) / s[1]) ** 2
        return out

    def explain(self, cols, i, ctx):
        num = self.fields[0]
        v, k = float(cols.num(num)[i]), group_keys(cols, self.fields[1:])[i]
        med, _sd, lo, hi, n = self.stats[k]
        who = _describe_group(cols, self.fields[1:], i)
        if v > hi:
            return (
                f"{label(num)} above every seed with {who}",
                f"{label(num)} = {fmt(v)} is above every seed with {who} ({n} seeds: {fmt(lo)}–{fmt(hi)}){self.where()}",
            )
        if v < lo:
            return (
                f"{label(num)} below every seed with {who}",
                f"{label(num)} = {fmt(v)} is below every seed with {who} ({n} seeds: {fmt(lo)}–{fmt(hi)}){self.where()}",
            )
        return (
            f"{label(num)} unusual for {who}",
            f"{label(num)} = {fmt(v)} is unusual for {who} (median {fmt(med)}, {n} seeds: {fmt(lo)}–{fmt(hi)}){self.where()}",
        )


@dataclass
class DependencyRule(Rule):
    """``fields = (x, y[, categories...])``: y predicted from x by a Theil-Sen line, within groups of
    the categories when given (both centred on their group medians), so that a trend between groups
    does not stand in for the trend inside them (Simpson's paradox: across species, deeper bills
    go with shorter flippers; within a species, with longer ones)."""

    kind: str = "dependency"

    def _centred(self, cols: Columns) -> tuple[np.ndarray, np.ndarray]:
        x, y = cols.num(self.fields[0]), cols.num(self.fields[1])
        if len(self.fields) == 2:
            return x, y
        keys = group_keys(cols, self.fields[2:])
        cx = np.array([self.centres.get(k, (math.nan, math.nan))[0] for k in keys])
        cy = np.array([self.centres.get(k, (math.nan, math.nan))[1] for k in keys])
        return x - cx, y - cy

    def _fit(self, cols, ctx):
        from scipy.stats import theilslopes

        self.centres: dict[str, tuple[float, float]] = {}
        if len(self.fields) > 2:
            x, y = cols.num(self.fields[0]), cols.num(self.fields[1])
            groups: dict[str, list[int]] = defaultdict(list)
            for i, k in enumerate(group_keys(cols, self.fields[2:])):
                if math.isfinite(x[i]) and math.isfinite(y[i]):
                    groups[k].append(i)
            self.centres = {
                k: (float(np.median(x[ix])), float(np.median(y[ix]))) for k, ix in groups.items() if len(ix) >= 3
            }
        x, y = self._centred(cols)
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.sum() < 10 or np.ptp(x[ok]) == 0:
            self.active = False
            return
        xs, ys = x[ok], y[ok]
        if len(xs) > 800:  # Theil-Sen is quadratic in the points; a fixed subsample keeps it fast
            pick = np.random.default_rng(ctx.seed).choice(len(xs), 800, replace=False)
            xs, ys = xs[pick], ys[pick]
        res = theilslopes(ys, xs)
        self.slope, self.intercept = float(res.slope), float(res.intercept)
        r = ys - (self.slope * xs + self.intercept)
        self.sd = _robust_scale(r, max(1e-9, 1e-6 * float(np.ptp(ys)) if len(ys) else 1e-9))

    def _stat(self, cols, ctx):
        x, y = self._centred(cols)
        r = (y - (self.slope * x + self.intercept)) / self.sd
        return 0.5 * r**2  # NaN where either is missing (or the group is unknown)

    def explain(self, cols, i, ctx):
        a, b = self.fields[:2]
        x, y = float(cols.num(a)[i]), float(cols.num(b)[i])
        cx, cy = self._centred(cols)
        pred = y - (cy[i] - (self.slope * cx[i] + self.intercept))
        within = f" among seeds with {_describe_group(cols, self.fields[2:], i)}" if len(self.fields) > 2 else ""
        return (
            f"{label(b)} does not fit {label(a)}",
            f"{label(a)} = {fmt(x)} and {label(b)} = {fmt(y)} do not fit together: in the seeds{within}, "
            f"{label(a)} = {fmt(x)} goes with {label(b)} ≈ {fmt(pred)} ± {fmt(2 * self.sd)}{self.where()}",
        )


@dataclass
class PairRule(Rule):
    """``fields = (a, b)``, two categories: a combination the seeds show less often than if the two were
    unrelated, ``log((expected + 1) / (observed + 1))`` with expected = count(a) count(b) / n, never
    below 0; 0 for a value the seeds do not have at all (the category rule sees that)."""

    kind: str = "pair"

    def _fit(self, cols, ctx):
        a, b = cols.keys(self.fields[0]), cols.keys(self.fields[1])
        self.na, self.nb, self.nab = Counter(a), Counter(b), Counter(zip(a, b))
        self.n = cols.n

    def _expected(self, ka: str, kb: str) -> float:
        return self.na[ka] * self.nb[kb] / self.n if self.n else 0.0

    def _stat(self, cols, ctx):
        a, b = cols.keys(self.fields[0]), cols.keys(self.fields[1])
        out = np.zeros(cols.n)
        for i, (ka, kb) in enumerate(zip(a, b)):
            if ka in self.na and kb in self.nb:
                out[i] = max(0.0, math.log((self._expected(ka, kb) + 1) / (self.nab.get((ka, kb), 0) + 1)))
        return out

    def explain(self, cols, i, ctx):
        fa, fb = self.fields
        ka, kb = cols.keys(fa)[i], cols.keys(fb)[i]
        va, vb = cols.values(fa)[i], cols.values(fb)[i]
        e, k = self._expected(ka, kb), self.nab.get((ka, kb), 0)
        what = f"{label(fa)} = {show(va)} with {label(fb)} = {show(vb)}"
        if not k:
            return what, f"{what} never occurs in the seeds ({e:.0f} expected if they were unrelated){self.where()}"
        return what, f"{what} is rare in the seeds ({k} seeds; {e:.0f} expected if they were unrelated){self.where()}"


@dataclass
class DeterminesRule(Rule):
    """``fields = (a, b)``: a functional dependency the seeds hold, each value of a seen at least twice
    always with the same b. A row that breaks it scores ``1 + log(1 + support)``, support being the
    seeds with that value of a; applies when at least 3 values of a are repeated."""

    kind: str = "determines"

    def _fit(self, cols, ctx):
        a, b = cols.keys(self.fields[0]), cols.keys(self.fields[1])
        seen: dict[str, Counter] = defaultdict(Counter)
        for ka, kb in zip(a, b):
            seen[ka][kb] += 1
        self.map = {
            ka: (next(iter(c)), sum(c.values())) for ka, c in seen.items() if len(c) == 1 and sum(c.values()) >= 2
        }
        self.active = len(self.map) >= 3

    def _stat(self, cols, ctx):
        a, b = cols.keys(self.fields[0]), cols.keys(self.fields[1])
        out = np.zeros(cols.n)
        for i, (ka, kb) in enumerate(zip(a, b)):
            m = self.map.get(ka)
            if m is not None and m[0] != kb:
                out[i] = 1.0 + math.log1p(m[1])
        return out

    def explain(self, cols, i, ctx):
        fa, fb = self.fields
        ka = cols.keys(fa)[i]
        expected, support = self.map[ka]
        va, vb = cols.values(fa)[i], cols.values(fb)[i]
        return (
            f"{label(fa)} and {label(fb)} disagree",
            f"{label(fa)} = {show(va)} goes with {label(fb)} = {show(json.loads(expected)) if expected != '<absent>' else '(absent)'} "
            f"in all {support} seeds that have it; here {label(fb)} = {show(vb)}{self.where()}",
        )


@dataclass
class TextCategoryRule(Rule):
    """``fields = (text, category)``: a text value that reads like another category (a Toyota from the
    USA). A naive Bayes model of the category from the text's words gives ``log P(best) - log P(given)``."""

    kind: str = "text-category"

    def _fit(self, cols, ctx):
        from sklearn.feature_extraction.text import CountVectorizer
        from sklearn.naive_bayes import MultinomialNB

        texts, keys = cols.texts(self.fields[0]), cols.keys(self.fields[1])
        pairs = [(t, k) for t, k in zip(texts, keys) if t is not None]
        if len(pairs) < 10 or len({k for _, k in pairs}) < 2:
            self.active = False
            return
        self.vec = CountVectorizer(analyzer=word_features, binary=True)
        try:
            X = self.vec.fit_transform([t for t, _ in pairs])
        except ValueError:  # no words at all
            self.active = False
            return
        self.nb = MultinomialNB(alpha=0.5).fit(X, [k for _, k in pairs])
        self.classes = list(self.nb.classes_)

    def _stat(self, cols, ctx):
        texts, keys = cols.texts(self.fields[0]), cols.keys(self.fields[1])
        out = np.full(cols.n, np.nan)
        idx = [i for i, (t, k) in enumerate(zip(texts, keys)) if t is not None and k in self.classes]
        if idx:
            lp = self.nb.predict_log_proba(self.vec.transform([texts[i] for i in idx]))
            for row, i in zip(lp, idx):
                out[i] = float(row.max() - row[self.classes.index(keys[i])])
        return out

    def explain(self, cols, i, ctx):
        ft, fc = self.fields
        t = cols.texts(ft)[i] or ""
        lp = self.nb.predict_log_proba(self.vec.transform([t]))[0]
        best = self.classes[int(lp.argmax())]
        shown_best = show(json.loads(best)) if best != "<absent>" else "(absent)"
        return (
            f"{label(ft)} does not fit {label(fc)}",
            f"{label(ft)} = {show(t)!r} reads like {label(fc)} = {shown_best}, not {show(cols.values(fc)[i])}{self.where()}",
        )


def word_features(text: str) -> list[str]:
    ws = words(text)
    return ws + ([f"^{ws[0]}"] if ws else [])


@dataclass
class EqualRule(Rule):
    """``fields = (a, b)``, two integers equal in every seed (group_size and the number of birds): 1
    where they differ, 0 where they are equal."""

    kind: str = "equal"

    def _fit(self, cols, ctx):
        self.n = cols.n

    def _stat(self, cols, ctx):
        a, b = cols.num(self.fields[0]), cols.num(self.fields[1])
        out = np.where(np.isfinite(a) & np.isfinite(b), (np.abs(a - b) > 1e-9).astype(float), np.nan)
        return out

    def explain(self, cols, i, ctx):
        fa, fb = self.fields
        a, b = cols.num(fa)[i], cols.num(fb)[i]
        return (
            f"{label(fa)} differs from {label(fb)}",
            f"{label(fa)} = {fmt(a)} but {label(fb)} = {fmt(b)}; they are equal in all {self.n} seeds{self.where()}",
        )
