"""Evidence rules: what the plausibility model checks in a record, each fitted on the seeds.

A record is split into *tables* of rows: the root object is one row of the table ``$`` (its scalar
leaves, nested objects flattened, plus ``path[#]``, the length of each array), and every array adds
one row per item to the table ``path[*]`` (an object item's scalar leaves, or a scalar item's value),
carrying its parent row's fields as context. So ``birds[*].body_mass_g`` is judged per bird, given
that bird's species and the group's island.

A column's kind comes from the seeds: ``number``; ``date`` (ISO dates or date-times, compared as
days, with the month as a derived category); ``category`` (booleans, nulls, and strings with few
distinct values: at most max(12, 40% of the values)); ``text`` (other strings). Integers with at most
12 distinct values are numbers that can also condition other fields (cylinders, year).

Each rule gives every row a *statistic* (0 = as usual as it gets, larger = more unusual; NaN where
the rule does not apply) and explains a row in words with numbers. A record's statistic for a rule
is the largest over its rows. The rules (``plan_rules`` decides which apply to a dataset):

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
``combination``     a classifier two-sample test: gradient-boosted trees trained to tell the seeds from
                    seeds with every field shuffled independently; statistic = logit P(shuffled)
==================  =========================================================================
"""
from __future__ import annotations

import copy
import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np

from aod_core.agents.textmodel import CharNGram, char_classes, first_letter_case, words

ABSENT = object()  # a key the row does not have (an optional property left out)
MAX_CONDITION_CATEGORIES = 30
SMALL_INT = 12
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


# ---- tables -------------------------------------------------------------------------------------


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if key.isidentifier() else f"{path}[{json.dumps(key)}]"


def record_tables(record: Any) -> dict[str, list[dict[str, Any]]]:
    """Rows of every table of one record (see the module docstring)."""
    out: dict[str, list[dict[str, Any]]] = {}

    def visit(value: Any, path: str, table: str, context: dict[str, Any]) -> None:
        own: dict[str, Any] = {}
        arrays: list[tuple[list, str]] = []

        def walk(v: Any, p: str) -> None:
            if isinstance(v, dict) and v:
                for k, x in v.items():
                    walk(x, _child(p, k))
            elif isinstance(v, list):
                own[f"{p}[#]"] = len(v)
                arrays.append((v, f"{p}[*]"))
            else:
                own[p] = "{}" if isinstance(v, dict) else v

        walk(value, path)
        row = {**context, **own}
        out.setdefault(table, []).append(row)
        for items, item_path in arrays:
            for item in items:
                if isinstance(item, (dict, list)):
                    visit(item, item_path, item_path, row)
                else:
                    out.setdefault(item_path, []).append({**row, item_path: item})

    visit(record, "$", "$", {})
    return out


def key_of(v: Any) -> str:
    """A value as a category: canonical JSON, ``<absent>`` for a missing key."""
    if v is ABSENT:
        return "<absent>"
    return json.dumps(v, sort_keys=True, ensure_ascii=False)


def show(v: Any, limit: int = 40) -> str:
    """A value as a reader sees it: strings bare (shortened), the rest as JSON."""
    if v is ABSENT:
        return "(absent)"
    if isinstance(v, str):
        return v if len(v) <= limit else v[: limit - 1] + "…"
    if isinstance(v, float):
        return fmt(v)
    return json.dumps(v, ensure_ascii=False)


def fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    if float(x).is_integer() and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.4g}" if abs(x) >= 1 else f"{x:.3g}"


def label(col: str) -> str:
    """``$.birds[*].sex`` -> ``birds[*].sex``; ``$.birds[#]`` -> ``the number of birds``."""
    if col.endswith("[#]"):
        return f"the number of {col[2:-3] or 'items'}"
    for suffix, words_ in (("#len", "the length of "), ("#days", ""), ("#month", "the month of ")):
        if col.endswith(suffix):
            return words_ + label(col[: -len(suffix)])
    return col[2:] if col.startswith("$.") else col


def _as_days(v: Any) -> float:
    try:
        if isinstance(v, str) and _DATE.match(v):
            return float(date.fromisoformat(v).toordinal())
        if isinstance(v, str) and _DATETIME.match(v):
            d = datetime.fromisoformat(v.replace("Z", "+00:00"))
            return d.toordinal() + (d.hour * 3600 + d.minute * 60 + d.second) / 86400
    except ValueError:
        pass
    return math.nan


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


class Columns:
    """One table's rows as columns; ``record`` maps each row to its record's index."""

    def __init__(self, rows: Sequence[dict[str, Any]], record: Sequence[int]):
        self.rows = list(rows)
        self.record = np.asarray(record, dtype=int)
        self.n = len(self.rows)
        self._num: dict[str, np.ndarray] = {}
        self._keys: dict[str, list[str]] = {}

    def values(self, col: str) -> list[Any]:
        return [r.get(col, ABSENT) for r in self.rows]

    def num(self, col: str) -> np.ndarray:
        """Numbers (dates as days, ``#len`` as string length); NaN where there is none."""
        if col not in self._num:
            if col.endswith("#days"):
                vals = [_as_days(v) for v in self.values(col[:-5])]
            elif col.endswith("#len"):
                vals = [float(len(v)) if isinstance(v, str) else math.nan for v in self.values(col[:-4])]
            else:
                vals = [float(v) if _is_num(v) else math.nan for v in self.values(col)]
            self._num[col] = np.asarray(vals, dtype=float)
        return self._num[col]

    def keys(self, col: str) -> list[str]:
        """Category keys; ``#month`` gives the month of a date column."""
        if col not in self._keys:
            if col.endswith("#month"):
                days = self.num(col[:-6] + "#days")
                self._keys[col] = [str(date.fromordinal(int(d)).month) if math.isfinite(d) else "<none>" for d in days]
            else:
                self._keys[col] = [key_of(v) for v in self.values(col)]
        return self._keys[col]

    def texts(self, col: str) -> list[str | None]:
        return [v if isinstance(v, str) else None for v in self.values(col)]

    def subset(self, mask: np.ndarray) -> Columns:
        idx = np.flatnonzero(mask)
        return Columns([self.rows[i] for i in idx], self.record[idx])


def build_tables(records: Sequence[Any]) -> dict[str, Columns]:
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    owner: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        for table, trows in record_tables(r).items():
            rows[table] += trows
            owner[table] += [i] * len(trows)
    return {t: Columns(rows[t], owner[t]) for t in rows}


@dataclass
class ColumnInfo:
    name: str
    kind: str  # number | date | category | text
    own: bool  # belongs to this table (not context from a parent row)
    condition: bool = False  # usable as a category that other fields depend on
    distinct: int = 0


def column_kinds(cols: Columns, table: str) -> list[ColumnInfo]:
    names: list[str] = []
    for r in cols.rows:
        for k in r:
            if k not in names:
                names.append(k)
    out = []
    most = max(MAX_CONDITION_CATEGORIES, cols.n // 4)  # a category conditions numbers when its groups have rows
    for name in names:
        own = table == "$" or name.startswith(table)
        present = [v for v in cols.values(name) if v is not ABSENT and v is not None]
        distinct = len({key_of(v) for v in cols.values(name)})
        if present and all(_is_num(v) for v in present):
            small = all(float(v).is_integer() for v in present) and 2 <= len(set(present)) <= SMALL_INT
            out.append(ColumnInfo(name, "number", own, condition=small, distinct=distinct))
        elif present and all(isinstance(v, str) for v in present) and all(_DATE.match(v) or _DATETIME.match(v) for v in present):
            out.append(ColumnInfo(name, "date", own, distinct=distinct))
            months = {v[5:7] for v in present}
            if len(months) > 1:
                out.append(ColumnInfo(name + "#month", "category", own, condition=True, distinct=len(months)))
        elif present and all(isinstance(v, str) for v in present) and len(set(present)) > max(SMALL_INT, 0.4 * len(present)):
            out.append(ColumnInfo(name, "text", own, distinct=distinct))
        else:
            out.append(ColumnInfo(name, "category", own, condition=2 <= distinct <= most, distinct=distinct))
    return out


# ---- rules --------------------------------------------------------------------------------------


@dataclass
class Finding:
    """What one rule says about one record."""

    rule: str  # the rule's id, e.g. "conditional $.body_mass_g | $.species"
    kind: str  # range, category, conditional, ...
    fields: list[str]
    key: str  # what many records can share ("body_mass_g above every Adelie seed"): the feedback groups by it
    text: str  # the explanation with this record's numbers
    nats: float = 0.0  # rarity among real records: -log(share of held-out seeds at least as unusual)
    rarity: float = 1.0


@dataclass
class Rule:
    table: str
    fields: tuple[str, ...]
    kind: str = ""
    active: bool = field(default=True, init=False)

    @property
    def id(self) -> str:
        return f"{self.kind} " + " | ".join(self.fields) + ("" if self.table == "$" else f" in {self.table}")

    def fit(self, cols: Columns, ctx: FitContext) -> Rule:
        r = copy.copy(self)
        r.active = True
        r._fit(cols, ctx)
        return r

    def _fit(self, cols: Columns, ctx: FitContext) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def stat(self, cols: Columns, ctx: FitContext) -> np.ndarray:
        if not self.active or cols.n == 0:
            return np.full(cols.n, np.nan)
        return self._stat(cols, ctx)

    def _stat(self, cols: Columns, ctx: FitContext) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def explain(self, cols: Columns, i: int, ctx: FitContext) -> tuple[str, str]:  # pragma: no cover
        raise NotImplementedError

    def where(self) -> str:
        """How a child-table finding names its row."""
        return "" if self.table == "$" else f" (in {label(self.table)})"


@dataclass
class FitContext:
    """Shared, fit-independent helpers: the sentence embedder (or None), a seed for randomness."""

    embedder: Any = None
    seed: int = 0


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
        return (f"{name} unusually {side}",
                f"{name} = {fmt(x)} is unusually {side} (seed median {fmt(self.med)}, 90% within "
                f"{fmt(self.q05)}–{fmt(self.q95)}){self.where()}")


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
        return (f"{name} in a sparse range",
                f"{name} = {fmt(x)} lies where seeds are sparse ({near} of {self.n} seeds within ±{fmt(self.width)}; "
                f"seeds: {fmt(self.lo)}–{fmt(self.hi)}){self.where()}")


@dataclass
class NullRule(Rule):
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
            return (f"{name} starts in {case} case",
                    f"{name} = {show(t)!r} starts in {case} case; {self.cases.get(other, 0) / self.n:.0%} of the "
                    f"seeds start in {other} case{self.where()}")
        nll = self.model.nll(t)
        return (f"{name} spelled unlike the seeds",
                f"{name} = {show(t)!r} is spelled unlike the seeds' values ({nll:.2f} nats per character under "
                f"a character model of the seeds; a typical new real value: {self.typical:.2f}){self.where()}")


@dataclass
class WordsRule(Rule):
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
        return (f"{name} words unseen",
                f"{len(new)} of the {len(ws)} words of {name} = {show(t)!r} never occur in the seeds "
                f"({', '.join(new[:3])}){self.where()}")


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
        rates = [p / max(1, l) for p, _w, l in (self._pieces(self.tok, t) for t in texts)]
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
        return (f"{name} not made of real words",
                f"{name} = {show(t)!r} does not read as real words: it splits into {p} word pieces for {letters} "
                f"letters (a typical seed: {self.typical:.2f} pieces per letter){self.where()}")


@dataclass
class MeaningRule(Rule):
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
        return (f"{name} unlike the seeds in meaning",
                f"{name} = {show(t)!r} is unlike every seed value in meaning (closest: "
                f"{show(self.values_[int(arg[0])])!r}, cosine {float(best[0]):.2f}){self.where()}")


def _robust_scale(resid: np.ndarray, floor: float) -> float:
    if len(resid) == 0:
        return floor
    mad = float(np.median(np.abs(resid - np.median(resid)))) * 1.4826
    if mad <= floor:
        mad = max(float(np.std(resid)), floor)
    return max(mad, floor)


def group_keys(cols: Columns, fields: Sequence[str]) -> list[str]:
    """One key per row for the combination of several category columns."""
    parts = [cols.keys(f) for f in fields]
    return ["\x1f".join(p) for p in zip(*parts)] if len(parts) > 1 else parts[0]


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
            sd = math.sqrt((len(a) * own ** 2 + 5 * pooled ** 2) / (len(a) + 5))  # shrunk to the pooled spread
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
            return (f"{label(num)} above every seed with {who}",
                    f"{label(num)} = {fmt(v)} is above every seed with {who} ({n} seeds: {fmt(lo)}–{fmt(hi)}){self.where()}")
        if v < lo:
            return (f"{label(num)} below every seed with {who}",
                    f"{label(num)} = {fmt(v)} is below every seed with {who} ({n} seeds: {fmt(lo)}–{fmt(hi)}){self.where()}")
        return (f"{label(num)} unusual for {who}",
                f"{label(num)} = {fmt(v)} is unusual for {who} (median {fmt(med)}, {n} seeds: "
                f"{fmt(lo)}–{fmt(hi)}){self.where()}")


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
            self.centres = {k: (float(np.median(x[ix])), float(np.median(y[ix]))) for k, ix in groups.items() if len(ix) >= 3}
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
        return 0.5 * r ** 2  # NaN where either is missing (or the group is unknown)

    def explain(self, cols, i, ctx):
        a, b = self.fields[:2]
        x, y = float(cols.num(a)[i]), float(cols.num(b)[i])
        cx, cy = self._centred(cols)
        pred = y - (cy[i] - (self.slope * cx[i] + self.intercept))
        within = f" among seeds with {_describe_group(cols, self.fields[2:], i)}" if len(self.fields) > 2 else ""
        return (f"{label(b)} does not fit {label(a)}",
                f"{label(a)} = {fmt(x)} and {label(b)} = {fmt(y)} do not fit together: in the seeds{within}, "
                f"{label(a)} = {fmt(x)} goes with {label(b)} ≈ {fmt(pred)} ± {fmt(2 * self.sd)}{self.where()}")


@dataclass
class PairRule(Rule):
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
    """``fields = (a, b)``: each repeated value of a comes with one value of b."""

    kind: str = "determines"

    def _fit(self, cols, ctx):
        a, b = cols.keys(self.fields[0]), cols.keys(self.fields[1])
        seen: dict[str, Counter] = defaultdict(Counter)
        for ka, kb in zip(a, b):
            seen[ka][kb] += 1
        self.map = {ka: (next(iter(c)), sum(c.values())) for ka, c in seen.items() if len(c) == 1 and sum(c.values()) >= 2}
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
        return (f"{label(fa)} and {label(fb)} disagree",
                f"{label(fa)} = {show(va)} goes with {label(fb)} = {show(json.loads(expected)) if expected != '<absent>' else '(absent)'} "
                f"in all {support} seeds that have it; here {label(fb)} = {show(vb)}{self.where()}")


@dataclass
class TextCategoryRule(Rule):
    """``fields = (text, category)``."""

    kind: str = "text-category"

    def _fit(self, cols, ctx):
        from sklearn.feature_extraction.text import CountVectorizer
        from sklearn.naive_bayes import MultinomialNB

        texts, keys = cols.texts(self.fields[0]), cols.keys(self.fields[1])
        pairs = [(t, k) for t, k in zip(texts, keys) if t is not None]
        if len(pairs) < 10 or len({k for _, k in pairs}) < 2:
            self.active = False
            return
        self.vec = CountVectorizer(analyzer=_word_features, binary=True)
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
        return (f"{label(ft)} does not fit {label(fc)}",
                f"{label(ft)} = {show(t)!r} reads like {label(fc)} = {shown_best}, not {show(cols.values(fc)[i])}"
                f"{self.where()}")


def _word_features(text: str) -> list[str]:
    ws = words(text)
    return ws + ([f"^{ws[0]}"] if ws else [])


@dataclass
class EqualRule(Rule):
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
        return (f"{label(fa)} differs from {label(fb)}",
                f"{label(fa)} = {fmt(a)} but {label(fb)} = {fmt(b)}; they are equal in all {self.n} seeds{self.where()}")


class FeatureSpace:
    """Rows as points for the multivariate rules: numbers (and dates) centred on the seeds' median and
    divided by their interquartile range, plus a 0/1 column when missing; categories one-hot, scaled
    by 1/sqrt(2) so that two different categories are 1 apart (at most 60 of them, the rest as one
    "other"); text as its scaled length and character log-likelihood. ``blocks`` maps each column to
    its feature columns, so a whole column can be shuffled at once."""

    def __init__(self, infos: Sequence[ColumnInfo], cols: Columns):
        self.infos = list(infos)
        self.scales: dict[str, tuple[float, float]] = {}
        self.cats: dict[str, dict[str, int]] = {}
        self.text_models: dict[str, CharNGram] = {}
        for info in self.infos:
            if info.kind in ("number", "date"):
                self.scales[info.name] = self._scale(cols.num(self._num_name(info)))
            elif info.kind == "category":
                common = [k for k, _ in Counter(cols.keys(info.name)).most_common(60)]
                self.cats[info.name] = {k: i for i, k in enumerate(common)}
            else:
                texts = [t for t in cols.texts(info.name) if t is not None]
                self.text_models[info.name] = CharNGram(3).fit(texts)
                self.scales[info.name + "#len"] = self._scale(np.array([len(t) for t in texts], dtype=float))
                self.scales[info.name + "#nll"] = self._scale(np.array([self.text_models[info.name].nll(t)
                                                                        for t in texts[:300]], dtype=float))
        self.blocks: list[slice] = []

    @staticmethod
    def _num_name(info: ColumnInfo) -> str:
        return info.name + "#days" if info.kind == "date" else info.name

    @staticmethod
    def _scale(x: np.ndarray) -> tuple[float, float]:
        x = x[np.isfinite(x)]
        if not len(x):
            return 0.0, 1.0
        q25, med, q75 = np.percentile(x, [25, 50, 75])
        iqr = float(q75 - q25) or float(np.std(x)) or 1.0
        return float(med), iqr

    def _numeric(self, x: np.ndarray, key: str) -> list[np.ndarray]:
        med, iqr = self.scales[key]
        miss = ~np.isfinite(x)
        return [np.where(miss, 0.0, (x - med) / iqr), miss.astype(float)]

    def transform(self, cols: Columns) -> np.ndarray:
        feats: list[np.ndarray] = []
        self.blocks = []
        for info in self.infos:
            start = len(feats)
            if info.kind in ("number", "date"):
                feats += self._numeric(cols.num(self._num_name(info)), info.name)
                if info.kind == "date":  # the season: where the day falls in its year, on a circle
                    doy = np.array([date.fromordinal(int(d)).timetuple().tm_yday if math.isfinite(d) else 0
                                    for d in cols.num(self._num_name(info))], dtype=float)
                    feats += [np.sin(2 * np.pi * doy / 365.25), np.cos(2 * np.pi * doy / 365.25)]
            elif info.kind == "category":
                index = self.cats[info.name]
                onehot = np.zeros((cols.n, len(index) + 1))
                for i, k in enumerate(cols.keys(info.name)):
                    onehot[i, index.get(k, len(index))] = 1.0
                feats += list((onehot / math.sqrt(2)).T)
            else:
                texts = cols.texts(info.name)
                model = self.text_models[info.name]
                feats += self._numeric(np.array([len(t) if t is not None else np.nan for t in texts], dtype=float),
                                       info.name + "#len")[:1]
                feats += self._numeric(np.array([model.nll(t) if t is not None else np.nan for t in texts], dtype=float),
                                       info.name + "#nll")
            self.blocks.append(slice(start, len(feats)))
        return np.column_stack(feats) if feats else np.zeros((cols.n, 0))


@dataclass
class CombinationRule(Rule):
    """The classifier two-sample test over every column of the table: a random forest trained to tell
    the seeds from copies of the seeds with every column shuffled independently (the product of the
    marginals). Its statistic is the log-odds that a row is one of the shuffled copies. (A forest, not
    boosted trees: shuffled copies have exactly the seeds' marginals, so the first split of a boosted
    tree has no gain at all and it never starts; a forest's bootstrap samples let it find the
    interactions.)"""

    kind: str = "combination"
    infos: list[ColumnInfo] = field(default_factory=list)
    copies: int = 3
    trees: int = 100
    leaf: int = 3

    @property
    def id(self) -> str:
        return "combination" + ("" if self.table == "$" else f" in {self.table}")

    def _fit(self, cols, ctx):
        from sklearn.ensemble import RandomForestClassifier

        if cols.n < 20:
            self.active = False
            return
        self.space = FeatureSpace(self.infos, cols)
        real = self.space.transform(cols)
        rng = np.random.default_rng(ctx.seed)
        fakes = []
        for _ in range(self.copies):
            fake = real.copy()
            for block in self.space.blocks:  # a column moves as a whole (one-hot blocks stay one-hot)
                fake[:, block] = real[rng.permutation(len(real)), block]
            fakes.append(fake)
        X = np.concatenate([real] + fakes)
        y = np.concatenate([np.zeros(len(real)), np.ones(len(real) * self.copies)])
        self.clf = RandomForestClassifier(n_estimators=self.trees, min_samples_leaf=self.leaf, max_features="sqrt", n_jobs=1,
                                          random_state=ctx.seed)
        self.clf.fit(X, y)
        self.prior = math.log(self.copies)  # the log-odds of a row the forest cannot tell apart

    def _proba(self, cols: Columns) -> np.ndarray:
        return self.clf.predict_proba(self.space.transform(cols))[:, 1]

    def _stat(self, cols, ctx):
        p = np.clip(self._proba(cols), 1e-3, 1 - 1e-3)
        return np.log(p / (1 - p)) - self.prior

    def explain(self, cols, i, ctx):
        p = float(self._proba(cols.subset(np.arange(cols.n) == i))[0])
        what = "its combination of values" if self.table == "$" else f"one of its {label(self.table[:-3])} items"
        return ("combination of values unlike the seeds",
                f"{what} is unlike the seeds: a classifier trained to tell the seeds from seeds with shuffled "
                f"fields rates it {p:.0%} likely shuffled")


@dataclass
class NeighbourhoodRule(Rule):
    """Distance to the nearest seeds in the feature space (mean over the 5 nearest): a record in a region
    where no seed lies (a latitude and longitude that no airport has together)."""

    kind: str = "neighbourhood"
    infos: list[ColumnInfo] = field(default_factory=list)
    k: int = 5

    @property
    def id(self) -> str:
        return "neighbourhood" + ("" if self.table == "$" else f" in {self.table}")

    def _fit(self, cols, ctx):
        from sklearn.neighbors import NearestNeighbors

        if cols.n <= self.k:
            self.active = False
            return
        self.space = FeatureSpace(self.infos, cols)
        self.points = self.space.transform(cols)
        self.nn = NearestNeighbors(n_neighbors=self.k).fit(self.points)
        own = self.nn.kneighbors(self.points, n_neighbors=self.k + 1)[0][:, 1:].mean(axis=1)
        self.typical = float(np.median(own))
        self.rows = cols.rows

    def _distances(self, cols: Columns) -> tuple[np.ndarray, np.ndarray]:
        return self.nn.kneighbors(self.space.transform(cols))

    def _stat(self, cols, ctx):
        return self._distances(cols)[0].mean(axis=1)

    def explain(self, cols, i, ctx):
        d, idx = self._distances(cols.subset(np.arange(cols.n) == i))
        near = self.rows[int(idx[0, 0])]
        shown = ", ".join(f"{label(k)} = {show(v, 20)}" for k, v in list(near.items())[:4])
        what = "it" if self.table == "$" else f"one of its {label(self.table[:-3])} items"
        return ("far from every seed",
                f"{what} lies far from every seed (distance {d[0].mean():.2f} to its nearest seeds; a typical seed: "
                f"{self.typical:.2f}; nearest: {shown})")


# ---- planning -----------------------------------------------------------------------------------


def _eta2(x: np.ndarray, keys: list[str]) -> float:
    ok = np.isfinite(x)
    if ok.sum() < 10:
        return 0.0
    xs, ks = x[ok], [k for k, o in zip(keys, ok) if o]
    total = float(((xs - xs.mean()) ** 2).sum())
    if total <= 0:
        return 0.0
    groups: dict[str, list[float]] = defaultdict(list)
    for v, k in zip(xs, ks):
        groups[k].append(v)
    within = sum(float(((np.asarray(g) - np.mean(g)) ** 2).sum()) for g in groups.values())
    return 1.0 - within / total


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import spearmanr

    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 20 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return 0.0
    r = spearmanr(x[ok], y[ok]).statistic
    return 0.0 if not math.isfinite(r) else float(r)


def _holds_fd(a: list[str], b: list[str]) -> bool:
    seen: dict[str, set[str]] = defaultdict(set)
    count: Counter = Counter(a)
    for ka, kb in zip(a, b):
        seen[ka].add(kb)
    repeated = [k for k, c in count.items() if c >= 2]
    if len(repeated) < 5 or len(set(b)) < 2:
        return False
    if sum(count[k] for k in repeated) < 0.2 * len(a):
        return False
    return all(len(seen[k]) == 1 for k in repeated)


def _predicts(texts: list[str | None], keys: list[str], seed: int) -> bool:
    """Whether a text's words predict a category better than always guessing the commonest (3-fold CV)."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.model_selection import cross_val_score
    from sklearn.naive_bayes import MultinomialNB
    from sklearn.pipeline import make_pipeline

    pairs = [(t, k) for t, k in zip(texts, keys) if t is not None]
    counts = Counter(k for _, k in pairs)
    if len(pairs) < 30 or len(counts) < 2 or min(counts.values()) < 3:
        return False
    base = max(counts.values()) / len(pairs)
    pipe = make_pipeline(CountVectorizer(analyzer=_word_features, binary=True), MultinomialNB(alpha=0.5))
    try:
        acc = float(np.mean(cross_val_score(pipe, [t for t, _ in pairs], [k for _, k in pairs], cv=3)))
    except ValueError:
        return False
    return acc >= base + 0.1


def best_grouping(cols: Columns, number: str, conditions: Sequence[ColumnInfo], *, exclude: str = "") -> tuple[str, ...]:
    """The category (or pair of categories) that explains most of a number's variance in the seeds:
    the best single one if it explains >= 10%, joined with a second when that adds >= 5 points and
    the joint groups still hold 8 rows at the median. () when no category matters."""
    x = cols.num(number)
    usable = [c for c in conditions if c.name != exclude and not c.name.startswith(exclude + "#")
              and c.name != number and not number.startswith(c.name + "#")]
    scored = sorted(((_eta2(x, cols.keys(c.name)), c.name) for c in usable), reverse=True)
    if not scored or scored[0][0] < 0.1:
        return ()
    best_eta, first = scored[0]
    chosen: tuple[str, ...] = (first,)
    gain = 0.05
    for _, other in scored[1:4]:
        keys = group_keys(cols, (first, other))
        sizes = Counter(k for k, v in zip(keys, x) if math.isfinite(v))
        if not sizes or float(np.median(list(sizes.values()))) < 8:
            continue
        eta = _eta2(x, keys)
        if eta >= best_eta + gain:
            chosen, gain = (first, other), eta - best_eta
    return chosen


def plan_rules(tables: dict[str, Columns], *, semantic: bool, seed: int = 0) -> list[Rule]:
    """Which rules apply to data shaped like these seed tables (each still to be fitted)."""
    rules: list[Rule] = []
    for table, cols in tables.items():
        infos = column_kinds(cols, table)
        own = [c for c in infos if c.own]
        for c in own:
            if c.kind in ("number", "date"):
                name = c.name + "#days" if c.kind == "date" else c.name
                rules += [RangeRule(table, (name,)), DensityRule(table, (name,)), NullRule(table, (c.name,))]
            elif c.kind == "category" and not c.name.endswith("#month"):
                rules.append(CategoryRule(table, (c.name,)))
            elif c.kind == "text":
                rules += [SpellingRule(table, (c.name,)), RangeRule(table, (c.name + "#len",)),
                          WordsRule(table, (c.name,)), PiecesRule(table, (c.name,)), NullRule(table, (c.name,))]
                if semantic:
                    rules.append(MeaningRule(table, (c.name,)))
        numbers = [c for c in infos if c.kind in ("number", "date")]
        conditions = [c for c in infos if c.condition]
        grouping: dict[str, tuple[str, ...]] = {}
        for n in numbers:
            nname = n.name + "#days" if n.kind == "date" else n.name
            grouping[nname] = best_grouping(cols, nname, conditions, exclude=n.name)
            if grouping[nname] and (n.own or any(c.own for c in infos if c.name in grouping[nname])):
                rules.append(ConditionalRule(table, (nname, *grouping[nname])))
        for i, a in enumerate(numbers):
            for b in numbers[i + 1:]:
                if not (a.own or b.own):
                    continue
                an = a.name + "#days" if a.kind == "date" else a.name
                bn = b.name + "#days" if b.kind == "date" else b.name
                xa, xb = cols.num(an), cols.num(bn)
                both = np.isfinite(xa) & np.isfinite(xb)
                if (a.kind == b.kind == "number" and both.sum() >= 10 and len(np.unique(xa[both])) >= 2
                        and np.array_equal(xa[both], xb[both])):
                    rules.append(EqualRule(table, (an, bn)))
                elif abs(_spearman(xa, xb)) >= 0.5:
                    groups = tuple(g for g in grouping.get(bn, ()) if g not in (a.name, b.name))
                    rules.append(DependencyRule(table, (an, bn, *groups)))
        cats = [c for c in infos if c.kind == "category" and 2 <= c.distinct <= MAX_CONDITION_CATEGORIES]
        for i, a in enumerate(cats):
            for b in cats[i + 1:]:
                if (a.own or b.own) and not (a.name.endswith("#month") and b.name.endswith("#month")):
                    rules.append(PairRule(table, (a.name, b.name)))
        keyed = [c for c in infos if c.kind in ("category", "text") and not c.name.endswith("#month")]
        for a in keyed:
            if a.kind == "category" and a.distinct <= MAX_CONDITION_CATEGORIES:
                continue  # few categories: PairRule already sees which values go together
            ka = cols.keys(a.name)
            for b in keyed + [c for c in infos if c.kind == "number" and c.condition]:
                if b.name == a.name or not (a.own or b.own):
                    continue
                if _holds_fd(ka, cols.keys(b.name)):
                    rules.append(DeterminesRule(table, (a.name, b.name)))
        for t in [c for c in infos if c.kind == "text"]:
            for c in conditions:
                if (t.own or c.own) and _predicts(cols.texts(t.name), cols.keys(c.name), seed):
                    rules.append(TextCategoryRule(table, (t.name, c.name)))
        features = [c for c in infos if not c.name.endswith("#month")]
        if len(features) >= 2:
            rules.append(CombinationRule(table, tuple(c.name for c in features), infos=features))
            rules.append(NeighbourhoodRule(table, tuple(c.name for c in features), infos=features))
    return rules
