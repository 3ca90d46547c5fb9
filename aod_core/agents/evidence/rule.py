"""The rule interface every piece of evidence implements, and what a rule reports.

A rule is fitted on one table of the seeds (``fit`` returns a fitted copy; ``active`` is False when
the seeds give it nothing to go on), gives every row of a table a *statistic* (0 = as usual as it
gets, larger = more unusual; NaN where the rule does not apply) and explains a row in words with
numbers. The plausibility model turns statistics into rarities and a rule's explanation into a
:class:`Finding`. The rule families are in ``fields.py`` (one field), ``relations.py`` (two or more
fields) and ``whole.py`` (the whole row at once).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aod_core.agents.evidence.tables import Columns, label


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
