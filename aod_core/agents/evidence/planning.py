"""Which rules apply to a dataset: ``plan_rules`` reads the seed tables and lists the rules to fit.

Every field gets the rules of its kind (``fields.py``); a number gets a ``conditional`` rule on the
category (or pair of categories) that explains most of its variance; two numbers that move
together a ``dependency``; common categories a ``pair``; a functional dependency the seeds hold a
``determines``; a text that predicts a category a ``text-category``; every table with two or more
columns the two whole-row tests (``whole.py``). The tests that decide this (variance explained,
Spearman correlation, functional dependencies, cross-validated naive Bayes) are here.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from aod_core.agents.evidence import fields as F
from aod_core.agents.evidence import relations as R
from aod_core.agents.evidence.rule import Rule
from aod_core.agents.evidence.tables import MAX_CONDITION_CATEGORIES, ColumnInfo, Columns, column_kinds, group_keys
from aod_core.agents.evidence.whole import CombinationRule, NeighbourhoodRule


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
    pipe = make_pipeline(CountVectorizer(analyzer=R.word_features, binary=True), MultinomialNB(alpha=0.5))
    try:
        acc = float(np.mean(cross_val_score(pipe, [t for t, _ in pairs], [k for _, k in pairs], cv=3)))
    except ValueError:
        return False
    return acc >= base + 0.1


def best_grouping(
    cols: Columns, number: str, conditions: Sequence[ColumnInfo], *, exclude: str = ""
) -> tuple[str, ...]:
    """The category (or pair of categories) that explains most of a number's variance in the seeds:
    the best single one if it explains >= 10%, joined with a second when that adds >= 5 points and
    the joint groups still hold 8 rows at the median. () when no category matters."""
    x = cols.num(number)
    usable = [
        c
        for c in conditions
        if c.name != exclude
        and not c.name.startswith(exclude + "#")
        and c.name != number
        and not number.startswith(c.name + "#")
    ]
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
                rules += [F.RangeRule(table, (name,)), F.DensityRule(table, (name,)), F.NullRule(table, (c.name,))]
            elif c.kind == "category" and not c.name.endswith("#month"):
                rules.append(F.CategoryRule(table, (c.name,)))
            elif c.kind == "text":
                rules += [
                    F.SpellingRule(table, (c.name,)),
                    F.RangeRule(table, (c.name + "#len",)),
                    F.WordsRule(table, (c.name,)),
                    F.PiecesRule(table, (c.name,)),
                    F.NullRule(table, (c.name,)),
                ]
                if semantic:
                    rules.append(F.MeaningRule(table, (c.name,)))
        numbers = [c for c in infos if c.kind in ("number", "date")]
        conditions = [c for c in infos if c.condition]
        grouping: dict[str, tuple[str, ...]] = {}
        for n in numbers:
            nname = n.name + "#days" if n.kind == "date" else n.name
            grouping[nname] = best_grouping(cols, nname, conditions, exclude=n.name)
            if grouping[nname] and (n.own or any(c.own for c in infos if c.name in grouping[nname])):
                rules.append(R.ConditionalRule(table, (nname, *grouping[nname])))
        for i, a in enumerate(numbers):
            for b in numbers[i + 1 :]:
                if not (a.own or b.own):
                    continue
                an = a.name + "#days" if a.kind == "date" else a.name
                bn = b.name + "#days" if b.kind == "date" else b.name
                xa, xb = cols.num(an), cols.num(bn)
                both = np.isfinite(xa) & np.isfinite(xb)
                if (
                    a.kind == b.kind == "number"
                    and both.sum() >= 10
                    and len(np.unique(xa[both])) >= 2
                    and np.array_equal(xa[both], xb[both])
                ):
                    rules.append(R.EqualRule(table, (an, bn)))
                elif abs(_spearman(xa, xb)) >= 0.5:
                    groups = tuple(g for g in grouping.get(bn, ()) if g not in (a.name, b.name))
                    rules.append(R.DependencyRule(table, (an, bn, *groups)))
        cats = [c for c in infos if c.kind == "category" and 2 <= c.distinct <= MAX_CONDITION_CATEGORIES]
        for i, a in enumerate(cats):
            for b in cats[i + 1 :]:
                if (a.own or b.own) and not (a.name.endswith("#month") and b.name.endswith("#month")):
                    rules.append(R.PairRule(table, (a.name, b.name)))
        keyed = [c for c in infos if c.kind in ("category", "text") and not c.name.endswith("#month")]
        for a in keyed:
            if a.kind == "category" and a.distinct <= MAX_CONDITION_CATEGORIES:
                continue  # few categories: R.PairRule already sees which values go together
            ka = cols.keys(a.name)
            for b in keyed + [c for c in infos if c.kind == "number" and c.condition]:
                if b.name == a.name or not (a.own or b.own):
                    continue
                if _holds_fd(ka, cols.keys(b.name)):
                    rules.append(R.DeterminesRule(table, (a.name, b.name)))
        for t in [c for c in infos if c.kind == "text"]:
            for c in conditions:
                if (t.own or c.own) and _predicts(cols.texts(t.name), cols.keys(c.name), seed):
                    rules.append(R.TextCategoryRule(table, (t.name, c.name)))
        features = [c for c in infos if not c.name.endswith("#month")]
        if len(features) >= 2:
            rules.append(CombinationRule(table, tuple(c.name for c in features), infos=features))
            rules.append(NeighbourhoodRule(table, tuple(c.name for c in features), infos=features))
    return rules
