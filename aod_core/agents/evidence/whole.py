"""The two tests of a whole row at once, for what no rule about one or two fields sees.

==================  =========================================================================
``combination``     a classifier two-sample test: a random forest trained to tell the seeds from
                    seeds with every field shuffled independently; statistic = logit P(shuffled)
``neighbourhood``   the mean distance to the 5 nearest seeds in the feature space
==================  =========================================================================

Both are whole-row rules (:class:`WholeRowRule`) and place rows in one :class:`FeatureSpace` built on
the seeds' columns.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np

from aod_core.agents.evidence.rule import Rule
from aod_core.agents.evidence.tables import ColumnInfo, Columns, label, show
from aod_core.agents.textmodel import CharNGram


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
                self.scales[info.name + "#nll"] = self._scale(
                    np.array([self.text_models[info.name].nll(t) for t in texts[:300]], dtype=float)
                )
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
                    doy = np.array(
                        [
                            date.fromordinal(int(d)).timetuple().tm_yday if math.isfinite(d) else 0
                            for d in cols.num(self._num_name(info))
                        ],
                        dtype=float,
                    )
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
                feats += self._numeric(
                    np.array([len(t) if t is not None else np.nan for t in texts], dtype=float), info.name + "#len"
                )[:1]
                feats += self._numeric(
                    np.array([model.nll(t) if t is not None else np.nan for t in texts], dtype=float),
                    info.name + "#nll",
                )
            self.blocks.append(slice(start, len(feats)))
        return np.column_stack(feats) if feats else np.zeros((cols.n, 0))


@dataclass
class WholeRowRule(Rule):
    """A test of a table's whole row at once, over the columns ``infos``; its id names the table only
    (it reads every column)."""

    infos: list[ColumnInfo] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.kind + ("" if self.table == "$" else f" in {self.table}")

    def _subject(self, record: str) -> str:
        """How an explanation names the row: ``record`` for a root row, else one of the record's items."""
        return record if self.table == "$" else f"one of its {label(self.table[:-3])} items"

    def remembered(self, cols: Columns, i: int, compute) -> np.ndarray:
        """Row ``i`` of what ``compute`` gave for the batch ``cols`` when it was last scored (stored as
        ``_last`` by one assignment, so a concurrent batch replaces it whole); otherwise ``compute``
        on that row alone. Explaining a rejected row then costs no second pass of the forest or of
        the neighbour search, which dominated judging batches of implausible records."""
        last = getattr(self, "_last", None)
        if last is not None and last[0] is cols:
            return last[1][i]
        return compute(cols.subset(np.arange(cols.n) == i))[0]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_last", None)  # a scored batch is not part of the fitted model
        return state


@dataclass
class CombinationRule(WholeRowRule):
    """The classifier two-sample test over every column of the table: a random forest trained to tell
    the seeds from copies of the seeds with every column shuffled independently (the product of the
    marginals). Its statistic is the log-odds that a row is one of the shuffled copies. (A forest, not
    boosted trees: shuffled copies have exactly the seeds' marginals, so the first split of a boosted
    tree has no gain at all and it never starts; a forest's bootstrap samples let it find the
    interactions.)"""

    kind: str = "combination"
    copies: int = 3
    trees: int = 100
    leaf: int = 3

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
        self.clf = RandomForestClassifier(
            n_estimators=self.trees, min_samples_leaf=self.leaf, max_features="sqrt", n_jobs=1, random_state=ctx.seed
        )
        self.clf.fit(X, y)
        self.prior = math.log(self.copies)  # the log-odds of a row the forest cannot tell apart

    def _proba(self, cols: Columns) -> np.ndarray:
        p = self.clf.predict_proba(self.space.transform(cols))[:, 1]
        self._last = (cols, p)  # the batch last scored (see WholeRowRule.remembered)
        return p

    def _stat(self, cols, ctx):
        p = np.clip(self._proba(cols), 1e-3, 1 - 1e-3)
        return np.log(p / (1 - p)) - self.prior

    def explain(self, cols, i, ctx):
        p = float(self.remembered(cols, i, self._proba))
        what = self._subject("its combination of values")
        return (
            "combination of values unlike the seeds",
            f"{what} is unlike the seeds: a classifier trained to tell the seeds from seeds with shuffled fields rates it {p:.0%} likely shuffled",
        )


@dataclass
class NeighbourhoodRule(WholeRowRule):
    """Distance to the nearest seeds in the feature space (mean over the 5 nearest): a record in a region
    where no seed lies (a latitude and longitude that no airport has together)."""

    kind: str = "neighbourhood"
    k: int = 5

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

    def _distances(self, cols: Columns) -> np.ndarray:
        """[n, 2k]: the distances, then the indices, of each row's ``k`` nearest seeds."""
        d, idx = self.nn.kneighbors(self.space.transform(cols))
        got = np.concatenate([d, idx], axis=1)
        self._last = (cols, got)  # the batch last scored (see WholeRowRule.remembered)
        return got

    def _stat(self, cols, ctx):
        return self._distances(cols)[:, : self.k].mean(axis=1)

    def explain(self, cols, i, ctx):
        got = self.remembered(cols, i, self._distances)
        d, idx = got[None, : self.k], got[None, self.k :]
        near = self.rows[int(idx[0, 0])]
        shown = ", ".join(f"{label(k)} = {show(v, 20)}" for k, v in list(near.items())[:4])
        what = self._subject("it")
        return (
            "far from every seed",
            f"{what} lies far from every seed (distance {d[0].mean():.2f} to its nearest seeds; a typical seed: {self.typical:.2f}; nearest: {shown})",
        )
