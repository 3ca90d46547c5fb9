"""Copying, measured honestly: how close generated records come to the seeds, against how close real
new records come, and which records are near copies by their values.

A generator can pass every exact check and still hand back perturbed seeds: a seed's key with its
numbers nudged. Privacy metrics (SDMetrics' DCR baseline, synthcity's distance-to-closest-record)
answer that by comparing against *real* records the generator never saw:

* **reference distances**: each holdout record's distance to its closest seed, or, when there is no
  holdout, each seed's distance to its closest *other* seed (out of fold). Distances are the audit's
  (``distance.py``: numbers min-max scaled, categories one-hot);
* ``closer_than_reference_p05``: the share of generated records closer to a seed than the reference's
  5th percentile (about 0.05 for records as new as real ones);
* ``dcr_median_ratio``: the generated records' median distance over the reference's (about 1 for real
  ones; near 0 for perturbed seeds);
* ``key_reuse``: the share of records whose key (``data/dependencies.py``: ``(country, year)``, a
  code) some seed already has, next to the reference's (the holdout's; 0 for seeds out of fold,
  since no two seeds share a key).

A **near copy by values** (``ValueNearCopies``) is a record with a seed's key (or, where the seeds
have no key, every value that is not a number equal to one seed's) and every number within
``tolerance`` of that field's seed range of the seed's value. The judge rejects them
(``--near-numbers``); MinHash near copies (``nearcopy.py``) stay the other half of the definition.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from aod_core.data.dependencies import Dependencies, detect, key_name
from aod_core.eval.distance import FeatureSpace, _sqdist, closest_distances
from aod_core.eval.fidelity import FieldSets
from aod_core.records import Candidate, canonical_json, leaves

NEAR_NUMBERS = 0.01  # numbers within this share of the field's seed range count as near-identical
REFERENCE_P = 5  # percentile of the reference distances


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _fold(path: str) -> str:
    import re

    return re.sub(r"\[\d+\]", "[*]", path)


class ValueNearCopies:
    """Near copies of seeds by their values (module docstring)."""

    def __init__(self, seeds: Sequence[Any], dependencies: Dependencies | None = None, tolerance: float = NEAR_NUMBERS):
        self.tolerance = float(tolerance)
        self.deps = dependencies if dependencies is not None else detect(seeds)
        nums: dict[str, list[float]] = defaultdict(list)
        for s in seeds:
            for p, v in leaves(s):
                if _is_number(v):
                    nums[_fold(p)].append(float(v))
        self.span = {p: (max(v) - min(v)) for p, v in nums.items()}
        self.index: dict[tuple[str, str], list[tuple[int, dict[str, float]]]] = defaultdict(list)
        for i, s in enumerate(seeds):
            for sig in self._signatures(s):
                self.index[sig].append((i, self._numbers(s)))

    def _signatures(self, record: Any) -> list[tuple[str, str]]:
        """(what, value): what a seed and a near copy share exactly: a key's value (one per key), else
        every value that is not a number, with the paths of the numbers."""
        if self.deps.keys:
            out = []
            for k in self.deps.keys:
                v = self.deps.key_of(record, k)
                if v is not None:
                    out.append((f"the key {key_name(k)}", v))
            return out
        rest = sorted((p, canonical_json(v) if not _is_number(v) else "#") for p, v in leaves(record))
        return [("every value that is not a number", canonical_json(rest))]

    @staticmethod
    def _numbers(record: Any) -> dict[str, float]:
        return {p: float(v) for p, v in leaves(record) if _is_number(v)}

    def find(self, record: Any) -> tuple[int, str] | None:
        """(seed index, what it shares with that seed) of a seed this record nearly copies, or None."""
        if self.tolerance < 0:
            return None
        mine = self._numbers(record)
        for sig in self._signatures(record):
            for i, theirs in self.index.get(sig, ()):
                if set(theirs) == set(mine) and all(
                    abs(mine[p] - v) <= self.tolerance * self.span.get(_fold(p), 0.0) for p, v in theirs.items()
                ):
                    return i, sig[0]
        return None


def reference_distances(seeds: Sequence[Any], holdout: Sequence[Any] | None = None) -> tuple[np.ndarray, str]:
    """(distances, source): each holdout record's distance to its closest seed, or, without a
    holdout, each seed's to its closest other seed."""
    hold = list(holdout) if holdout else None
    f = FieldSets.of(hold or [], list(seeds), hold)
    space = FeatureSpace(f.seeds, f.kinds, f.others, f.high)
    if not space.n_fields or not len(seeds):
        return np.zeros(0), "none"
    fs = space.transform(f.seeds)
    if hold:
        return closest_distances(space.transform(f.holdout), fs), "holdout"
    if len(fs) < 2:
        return np.zeros(0), "none"
    out = np.empty(len(fs))
    step = max(1, 4_000_000 // len(fs))
    for a in range(0, len(fs), step):
        d = _sqdist(fs[a : a + step], fs)
        d[np.arange(len(d)), np.arange(a, a + len(d))] = np.inf
        out[a : a + len(d)] = np.sqrt(d.min(1))
    return out, "seeds out of fold"


def copying(
    records: Sequence[Any],
    seeds: Sequence[Any],
    holdout: Sequence[Any] | None = None,
    dependencies: Dependencies | None = None,
    tolerance: float = NEAR_NUMBERS,
) -> dict[str, Any]:
    """The copying figures of a batch (module docstring); None where a figure has nothing to stand on."""
    recs = [c.record for c in map(Candidate.of, records) if c.parsed and c.record is not None]
    seeds = list(seeds)
    deps = dependencies if dependencies is not None else detect(seeds)
    out: dict[str, Any] = {
        "closer_than_reference_p05": None,
        "dcr_median": None,
        "reference_dcr_median": None,
        "dcr_median_ratio": None,
        "reference": "none",
        "keys": [key_name(k) for k in deps.keys],
        "key_reuse": None,
        "reference_key_reuse": None,
        "near_copies_by_values": None,
    }
    if not recs or not seeds:
        return out
    ref, source = reference_distances(seeds, holdout)
    hold = list(holdout) if holdout else None
    f = FieldSets.of(recs, seeds, hold)
    space = FeatureSpace(f.seeds, f.kinds, f.others, f.high)
    if space.n_fields and len(ref):
        dcr = closest_distances(space.transform(f.records), space.transform(f.seeds))
        p = float(np.percentile(ref, REFERENCE_P))
        out.update(
            closer_than_reference_p05=float(np.mean(dcr < p)),
            dcr_median=float(np.median(dcr)),
            reference_dcr_median=float(np.median(ref)),
            dcr_median_ratio=float(np.median(dcr) / np.median(ref)) if np.median(ref) > 0 else None,
            reference=source,
        )
    if deps.keys:
        have = deps.seed_keys(seeds)
        out["key_reuse"] = float(np.mean([bool(deps.reused_keys(r, have)) for r in recs]))
        out["reference_key_reuse"] = float(np.mean([bool(deps.reused_keys(r, have)) for r in hold])) if hold else 0.0
    near = ValueNearCopies(seeds, deps, tolerance)
    out["near_copies_by_values"] = float(np.mean([near.find(r) is not None for r in recs]))
    return out


def copying_lines(fig: dict[str, Any]) -> list[str]:
    """The copying figures in words, for the CLI and the judge's feedback."""
    out = []
    if fig.get("closer_than_reference_p05") is not None:
        out.append(
            f"{fig['closer_than_reference_p05']:.0%} of records are closer to a seed than 95% of real "
            f"{'held-out' if fig['reference'] == 'holdout' else 'seeds (to the other seeds)'} records are"
            f" (about 5% for records as new as real ones)"
        )
    if fig.get("dcr_median_ratio") is not None:
        out.append(
            f"median distance to the closest seed {fig['dcr_median']:.3f}, {fig['dcr_median_ratio']:.2f}x that of "
            f"real records ({fig['reference_dcr_median']:.3f})"
        )
    if fig.get("key_reuse") is not None:
        out.append(
            f"{fig['key_reuse']:.0%} of records reuse a seed's {' or '.join(fig['keys'])} "
            f"(real records: {fig['reference_key_reuse']:.0%})"
        )
    return out
