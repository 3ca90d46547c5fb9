"""Rules about one field at a time: is this value, on its own, like the seeds' values of the field?

==================  =========================================================================
``range``           a number (a date, a text's length) against the seeds' quantiles: -log(2 p) for its
                    two-sided tail share p, extrapolated exponentially past the extremes
``density``         a number in a sparse part of the seeds' range: log density under a Gaussian KDE
                    relative to the densest point
``null``            null / absent where the seeds rarely or never are: -log of its smoothed share
``category``        a category's frequency: log(count of the most common + 0.5) - log(count + 0.5)
``spelling``        a text value's characters: mean negative log-likelihood per character under a
                    4-gram character model of the seeds' values (case, digits, letter soup)
``words``           share of a text value's words that no seed value has
``pieces``          how word-like a text is: WordPiece pieces beyond one per word, per sqrt(letters)
``meaning``         1 - cosine similarity to the closest seed value (all-MiniLM-L6-v2), when installed
==================  =========================================================================
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from aod_core.agents.evidence.rule import Rule
from aod_core.agents.evidence.tables import ABSENT, fmt, label, show
from aod_core.agents.textmodel import CharNGram, char_classes, first_letter_case, words


@dataclass
class RangeRule(Rule):
    """A number (a date, a text's length) against the seeds' range: two-sided empirical tail
    probability ``p = min(F(x), 1 - F(x))`` (with +1 smoothing), and beyond the seeds' extremes an
    exponential tail whose scale is the mean excess of the outer 10% of seed values (so being 3 mm
    shorter than the shortest bill counts by how far the outermost seeds already spread). Statistic
    ``-log(2 p)``."""

    kind: str = "range"

    def _fit(self, cols, ctx):
        x = cols.num(self.fields[0])
        x = np.sort(x[np.isfinite(x)])
        self.n = len(x)
        if self.n < 3:
            self.active = False
            return
        self.sorted = x
        self.lo, self.hi = float(x[0]), float(x[-1])
        self.q05, self.med, self.q95 = (float(v) for v in np.percentile(x, [5, 50, 95]))
        spread = float(np.ptp(x)) or max(abs(self.hi), 1.0) * 0.01
        k = max(2, self.n // 10)
        self.scale_hi = max(float(np.mean(x[-k:] - x[-k - 1])) if self.n > k else 0.0, 0.01 * spread)
        self.scale_lo = max(float(np.mean(x[k] - x[:k])) if self.n > k else 0.0, 0.01 * spread)

    def _stat(self, cols, ctx):
        x = cols.num(self.fields[0])
        out = np.full(cols.n, np.nan)
        ok = np.isfinite(x)
        if not ok.any():
            return out
        v = x[ok]
        below = np.searchsorted(self.sorted, v, side="right")  # seeds <= v
        above = self.n - np.searchsorted(self.sorted, v, side="left")  # seeds >= v
        # in logs, so a value far outside the seeds gives a large finite rarity (no exp overflow)
        log_n = np.log(self.n + 1)
        logp = np.log(np.minimum(below + 1, above + 1)) - log_n
        logp = np.where(v > self.hi, -np.maximum(v - self.hi, 0.0) / self.scale_hi - log_n, logp)
        logp = np.where(v < self.lo, -np.maximum(self.lo - v, 0.0) / self.scale_lo - log_n, logp)
        out[ok] = np.maximum(0.0, -(np.log(2.0) + logp))  # -log(min(1, 2p))
        return out

    def explain(self, cols, i, ctx):
        col, x = self.fields[0], float(cols.num(self.fields[0])[i])
        name = label(col)
        seen = f"seeds: {fmt(self.lo)}–{fmt(self.hi)}"
        if x > self.hi:
            return f"{name} above every seed", f"{name} = {fmt(x)} is above every seed ({seen}){self.where()}"
        if x < self.lo:
            return f"{name} below every seed", f"{name} = {fmt(x)} is below every seed ({seen}){self.where()}"
        side = "high" if x > self.med else "low"
        return (
            f"{name} unusually {side}",
            f"{name} = {fmt(x)} is unusually {side} (seed median {fmt(self.med)}, 90% within {fmt(self.q05)}–{fmt(self.q95)}){self.where()}",
        )


@dataclass
class DensityRule(Rule):
    """A number in a sparse part of the seeds' range (between two clusters): its log density under a
    Gaussian kernel density estimate of the seeds (Scott's bandwidth), relative to the densest point."""

    kind: str = "density"

    def _fit(self, cols, ctx):
        x = cols.num(self.fields[0])
        x = x[np.isfinite(x)]
        self.n = len(x)
        if self.n < 10 or len(np.unique(x)) <= 2 or float(np.std(x)) == 0:
            self.active = False
            return
        # Scott's rule, as scipy.stats.gaussian_kde; the 1-D density itself is a few numpy lines, far
        # cheaper per call than gaussian_kde's general d-dimensional code on small batches.
        self.width = float(np.std(x, ddof=1)) * self.n ** (-1 / 5)
        self.points = x
        self.lo, self.hi, self.med = float(x.min()), float(x.max()), float(np.median(x))
        grid = np.linspace(self.lo - 3 * self.width, self.hi + 3 * self.width, 400)
        self.logmax = float(self._logpdf(grid).max())

    def _logpdf(self, v: np.ndarray) -> np.ndarray:
        from scipy.special import logsumexp

        z = (v[:, None] - self.points[None, :]) / self.width
        return logsumexp(-0.5 * z * z, axis=1) - math.log(self.n * self.width * math.sqrt(2 * math.pi))

    def _stat(self, cols, ctx):
        x = cols.num(self.fields[0])
        out = np.full(cols.n, np.nan)
        ok = np.isfinite(x)
        if ok.any():
            out[ok] = np.maximum(0.0, self.logmax - self._logpdf(x[ok]))
        return out

    def explain(self, cols, i, ctx):
        col, x = self.fields[0], float(cols.num(self.fields[0])[i])
        name = label(col)
        near = int(np.sum(np.abs(self.points - x) <= self.width))
        return (
            f"{name} in a sparse range",
            f"{name} = {fmt(x)} lies where seeds are sparse ({near} of {self.n} seeds within ±{fmt(self.width)}; "
            f"seeds: {fmt(self.lo)}–{fmt(self.hi)}){self.where()}",
        )


@dataclass
class NullRule(Rule):
    """A null or an absent key where the seeds rarely or never have one: ``-log((count + 0.5) / (n + 1))``
    for the share of the seeds' rows in the same state (null, or absent); 0 for a value."""

    kind: str = "null"

    def _fit(self, cols, ctx):
        vals = cols.values(self.fields[0])
        self.n = len(vals)
        self.counts = Counter("null" if v is None else "absent" if v is ABSENT else "value" for v in vals)

    def _stat(self, cols, ctx):
        out = np.zeros(cols.n)
        for i, v in enumerate(cols.values(self.fields[0])):
            state = "null" if v is None else "absent" if v is ABSENT else None
            if state:
                out[i] = -math.log((self.counts.get(state, 0) + 0.5) / (self.n + 1))
        return out

    def explain(self, cols, i, ctx):
        v = cols.values(self.fields[0])[i]
        state = "null" if v is None else "absent"
        k, name = self.counts.get(state, 0), label(self.fields[0])
        if not k:
            return f"{name} {state}", f"{name} is {state}, which no seed is{self.where()}"
        return f"{name} {state}", f"{name} is {state} (only {k} of {self.n} seeds are){self.where()}"


@dataclass
class CategoryRule(Rule):
    """A category's frequency among the seeds' rows: ``log(top + 0.5) - log(count + 0.5)``, where top is
    the count of the commonest category; 0 for the commonest, largest for a value no seed has."""

    kind: str = "category"

    def _fit(self, cols, ctx):
        self.counts = Counter(cols.keys(self.fields[0]))
        self.n = cols.n
        self.top = max(self.counts.values(), default=0)

    def _stat(self, cols, ctx):
        keys = cols.keys(self.fields[0])
        return np.array([math.log(self.top + 0.5) - math.log(self.counts.get(k, 0) + 0.5) for k in keys])

    def explain(self, cols, i, ctx):
        v = cols.values(self.fields[0])[i]
        k, name = self.counts.get(cols.keys(self.fields[0])[i], 0), label(self.fields[0])
        if not k:
            return f"{name} = {show(v)} unseen", f"{name} = {show(v)} never occurs in the {self.n} seeds{self.where()}"
        return f"{name} = {show(v)} rare", f"{name} = {show(v)} is rare ({k} of {self.n} seeds){self.where()}"


@dataclass
class SpellingRule(Rule):
    """How a text value's characters read against the seeds' values: mean negative log-likelihood per
    character under a 4-gram character model of the seeds (``textmodel.CharNGram``). The explanation
    names what stands out: a character class the seeds (almost) never use, a first letter in the other
    case, or else the spelling itself, against a typical new real value's score."""

    kind: str = "spelling"

    def _fit(self, cols, ctx):
        texts = [t for t in cols.texts(self.fields[0]) if t is not None]
        if len(texts) < 3:
            self.active = False
            return
        self.model = CharNGram(4).fit(texts)
        self.n = len(texts)
        self.classes = Counter(c for t in texts for c in char_classes(t))
        self.cases = Counter(first_letter_case(t) for t in texts)
        # What a value the model has not seen scores: half the values scored by a model of the other half.
        half = CharNGram(4).fit(texts[::2])
        self.typical = float(np.median([half.nll(t) for t in texts[1::2][:200]])) if len(texts) > 1 else 0.0

    def _stat(self, cols, ctx):
        return np.array([self.model.nll(t) if t is not None else np.nan for t in cols.texts(self.fields[0])])

    def explain(self, cols, i, ctx):
        t = cols.texts(self.fields[0])[i] or ""
        name = label(self.fields[0])
        for cls in sorted(char_classes(t)):
            share = self.classes.get(cls, 0) / self.n
            if share < 0.02:
                who = "no seed value does" if not self.classes.get(cls) else f"only {share:.0%} of the seeds do"
                return f"{name} with {cls}", f"{name} = {show(t)!r} contains {cls}, which {who}{self.where()}"
        case = first_letter_case(t)
        if case and self.cases.get(case, 0) / self.n < 0.05:
            other = "upper" if case == "lower" else "lower"
            return (
                f"{name} starts in {case} case",
                f"{name} = {show(t)!r} starts in {case} case; {self.cases.get(other, 0) / self.n:.0%} of the seeds start in {other} case{self.where()}",
            )
        nll = self.model.nll(t)
        return (
            f"{name} spelled unlike the seeds",
            f"{name} = {show(t)!r} is spelled unlike the seeds' values ({nll:.2f} nats per character under "
            f"a character model of the seeds; a typical new real value: {self.typical:.2f}){self.where()}",
        )


@dataclass
class WordsRule(Rule):
    """The share of a text value's words (two or more letters) that no seed value has; applies when the
    seeds' values have at least 10 distinct words."""

    kind: str = "words"

    def _fit(self, cols, ctx):
        texts = [t for t in cols.texts(self.fields[0]) if t is not None]
        self.vocab = {w for t in texts for w in words(t)}
        self.active = len(self.vocab) >= 10

    def _stat(self, cols, ctx):
        out = np.full(cols.n, np.nan)
        for i, t in enumerate(cols.texts(self.fields[0])):
            if t is not None:
                ws = words(t)
                out[i] = sum(w not in self.vocab for w in ws) / len(ws) if ws else 0.0
        return out

    def explain(self, cols, i, ctx):
        t = cols.texts(self.fields[0])[i] or ""
        ws = words(t)
        new = [w for w in ws if w not in self.vocab]
        name = label(self.fields[0])
        if len(new) == len(ws):
            return f"{name} words unseen", f"none of the words of {name} = {show(t)!r} occur in the seeds{self.where()}"
        return (
            f"{name} words unseen",
            f"{len(new)} of the {len(ws)} words of {name} = {show(t)!r} never occur in the seeds ({', '.join(new[:3])}){self.where()}",
        )


@dataclass
class PiecesRule(Rule):
    """How word-like a text is: the number of WordPiece pieces (all-MiniLM-L6-v2's 30k-word English
    vocabulary) beyond one per word, divided by the square root of its letters. Real words split into
    few pieces ("sheboygan county" -> she ##boy ##gan county), letter soup into many
    ("dgomlr" -> d ##go ##ml ##r); codes and IDs split a lot too, which the seeds' own values show."""

    kind: str = "pieces"

    @staticmethod
    def _pieces(tok: Any, text: str) -> tuple[int, int, int]:
        n = len(tok.encode(text, add_special_tokens=False).tokens)
        return n, len(text.split()), sum(ch.isalpha() for ch in text)

    def _fit(self, cols, ctx):
        from aod_core.eval import embedder

        self.tok = embedder.wordpiece_tokenizer()
        texts = [t for t in cols.texts(self.fields[0]) if t is not None]
        if self.tok is None or len(texts) < 5:
            self.active = False
            return
        rates = [p / max(1, n) for p, _w, n in (self._pieces(self.tok, t) for t in texts)]
        self.typical = float(np.median(rates))

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("tok", None)  # a process-wide resource, not pickled with the model
        return state

    def _tokenizer(self) -> Any:
        if getattr(self, "tok", None) is None:
            from aod_core.eval import embedder

            self.tok = embedder.wordpiece_tokenizer()
        return self.tok

    def _stat(self, cols, ctx):
        tok = self._tokenizer()
        out = np.full(cols.n, np.nan)
        if tok is None:
            return out
        for i, t in enumerate(cols.texts(self.fields[0])):
            if t is not None:
                p, w, letters = self._pieces(tok, t)
                out[i] = (p - w) / math.sqrt(max(1, letters))
        return out

    def explain(self, cols, i, ctx):
        t = cols.texts(self.fields[0])[i] or ""
        p, _w, letters = self._pieces(self._tokenizer(), t)
        name = label(self.fields[0])
        return (
            f"{name} not made of real words",
            f"{name} = {show(t)!r} does not read as real words: it splits into {p} word pieces for {letters} "
            f"letters (a typical seed: {self.typical:.2f} pieces per letter){self.where()}",
        )


@dataclass
class MeaningRule(Rule):
    """1 - cosine similarity of a text value to the closest distinct seed value, in the sentence
    embedder's space (all-MiniLM-L6-v2); applies when the embedder is installed and the seeds have at
    least 5 distinct values."""

    kind: str = "meaning"

    def _fit(self, cols, ctx):
        self.values_ = sorted({t for t in cols.texts(self.fields[0]) if t is not None})
        if ctx.embedder is None or len(self.values_) < 5:
            self.active = False
            return
        self.matrix = ctx.embedder.encode(self.values_)

    def _nearest(self, texts: list[str], ctx) -> tuple[np.ndarray, np.ndarray]:
        e = ctx.embedder.encode(texts)
        sims = e @ self.matrix.T
        return sims.max(axis=1), sims.argmax(axis=1)

    def _stat(self, cols, ctx):
        out = np.full(cols.n, np.nan)
        texts = cols.texts(self.fields[0])
        idx = [i for i, t in enumerate(texts) if t is not None]
        if idx and ctx.embedder is not None:
            best, _ = self._nearest([texts[i] for i in idx], ctx)
            out[idx] = 1.0 - best
        return out

    def explain(self, cols, i, ctx):
        t = cols.texts(self.fields[0])[i] or ""
        best, arg = self._nearest([t], ctx)
        name = label(self.fields[0])
        return (
            f"{name} unlike the seeds in meaning",
            f"{name} = {show(t)!r} is unlike every seed value in meaning (closest: "
            f"{show(self.values_[int(arg[0])])!r}, cosine {float(best[0]):.2f}){self.where()}",
        )
