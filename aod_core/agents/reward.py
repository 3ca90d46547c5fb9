"""The surrogate reward the loop maximises, and the per-batch evaluation it is computed from.

reward = (w_tsr * TSR + w_judge * mean judge score + w_novelty * (1 - field overlap)
          + w_diversity * distinct-2) / (sum of weights)

All four terms lie in [0, 1], so the reward does too. The judge score of a candidate rejected by
the exact checks, or one the judge could not score, counts as 0. Weights are configurable; the
defaults favour task success, then the judge's opinion, then novelty and diversity.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from aod_core.errors import InputError
from aod_core.eval.metrics import (
    Outcomes,
    distinct_n,
    duplicate_rate,
    exact_copy_rate,
    field_overlap,
    rate,
    schema_valid_rate,
    task_success_rate,
    valid_json_rate,
)
from aod_core.records import Candidate


@dataclass
class RewardWeights:
    """The weights of the reward's four terms (any values >= 0 with a positive sum; see above)."""

    tsr: float = 0.4
    judge: float = 0.3
    novelty: float = 0.2
    diversity: float = 0.1

    def check(self) -> None:
        values = asdict(self).values()
        # NaN passes both comparisons below, and a weight that is not a number cannot be compared
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
            raise InputError(f"reward weights must be finite numbers, got {asdict(self)}")
        if any(v < 0 for v in values) or sum(values) <= 0:
            raise InputError(f"reward weights must be >= 0 with a positive sum, got {asdict(self)}")

    @classmethod
    def parse(cls, text: str) -> RewardWeights:
        """``tsr=0.5,judge=0.2,novelty=0.2,diversity=0.1`` (omitted keys keep their default)."""
        w = cls()
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, _, val = part.partition("=")
            if key.strip() not in asdict(w):
                raise InputError(f"unknown reward weight {key.strip()!r} (use tsr, judge, novelty, diversity)")
            try:
                setattr(w, key.strip(), float(val))
            except ValueError:
                raise InputError(f"reward weight {key.strip()} must be a number, got {val!r}") from None
        w.check()
        return w


def evaluate(
    cands: Sequence[Candidate], judgement: Any, seeds: Sequence[Any], weights: RewardWeights
) -> dict[str, Any]:
    """Every per-batch figure the loop reports (docs/METRICS.md), plus the reward. The rates come from
    the judge's exact checks (whose duplicates include records accepted earlier in the run)."""
    n = len(cands)
    checks, verdicts = judgement.checks, judgement.verdicts
    outcomes = Outcomes(
        parsed=[c.parses for c in checks],
        valid=[c.parses and not c.schema_errors for c in checks],
        duplicate=[c.duplicate for c in checks],
        copy=[c.seed_copy for c in checks],
        accepted=[v.accept for v in verdicts],
    )
    records = [c.record for c, ch in zip(cands, checks) if ch.parses]
    scores = [v.score or 0.0 for v in verdicts]
    m = {
        "candidates": n,
        "valid_json_rate": valid_json_rate(outcomes),
        "schema_valid_rate": schema_valid_rate(outcomes),
        "duplicate_rate": duplicate_rate(outcomes),
        "exact_copy_rate": exact_copy_rate(outcomes),
        "field_overlap": field_overlap(records, seeds),
        "distinct_2": distinct_n(records, 2),
        "judge_score": sum(scores) / n if n else 0.0,
        "judge_accept_rate": rate(sum(v.accept for v in verdicts), n),
        "judge_failures": sum(v.source == "failed" for v in verdicts),
        "task_success_rate": task_success_rate(outcomes),
        "dependency_violation_rate": rate(sum(bool(c.dependency_errors) for c in checks), n),
        "near_copy_rate": rate(sum(c.near_copy for c in checks), n),
    }
    fig = getattr(judgement, "copying", None) or {}
    if fig.get("keys"):
        m["key_reuse_rate"] = rate(sum(c.key_reused for c in checks), n)
    if fig.get("closer_than_reference_p05") is not None:
        m["dcr_closer_share"] = fig["closer_than_reference_p05"]
        m["dcr_median_ratio"] = fig["dcr_median_ratio"]
    total = sum(asdict(weights).values())
    m["reward"] = (
        weights.tsr * m["task_success_rate"]
        + weights.judge * m["judge_score"]
        + weights.novelty * (1 - m["field_overlap"])
        + weights.diversity * m["distinct_2"]
    ) / total
    m["_success"] = outcomes.success  # per candidate, for the loop; not stored
    return m
